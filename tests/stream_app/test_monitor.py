"""The worker's monitoring hook: drift counts per committed day, withdrawals as outcomes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import redis

from contracts import CourseCalendar, encode, enrolment_event
from models.drift import build_reference
from models.registry import Registry
from riskstream.stack import Stack
from stream_app.monitor import StreamMonitor
from stream_app.processor import Processor
from stream_app.state import connect
from tests.stream_app.helpers import START, ListPublisher, event, handle_for, record


def _reference(tmp_path: Path, version: str, n_day: int, names: tuple[str, ...]) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((50, 40, n_day)) * (rng.random((50, 40, 1)) < 0.5)).astype(np.float32)
    Registry(tmp_path).attach(
        version, "drift_reference.json", build_reference(x, np.full(50, 39), names).to_dict()
    )


def test_committed_days_are_counted_once_and_unenrolments_become_outcomes(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path, hidden=8)
    spec = handle.loaded.spec
    _reference(tmp_path, handle.version, spec.n_day, spec.day_features)
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=60)
    redis_client.set("rs:cal:s1:7", encode(cal))
    evs = [event(i + 1, user=1 + i % 3, day=float(i // 3) * 2 + 0.5) for i in range(30)]
    gone = enrolment_event("s1", 7, 2, START.replace(day=START.day + 15), event_id=31, ended=True)
    recs = [record(e, i) for i, e in enumerate([*evs, gone])]

    async def go(batches):  # type: ignore[no-untyped-def]
        r = connect(stack.redis_url)
        try:
            proc = Processor(r, ListPublisher(), handle)
            proc.monitor = StreamMonitor(tmp_path, flush_every_s=0)
            for b in batches:
                await proc.process(b)
        finally:
            await r.aclose()

    asyncio.run(go([recs[:15], recs[15:]]))
    key = f"rs:drift:s1:7:{handle.version}"
    raw = {k.decode(): int(v) for k, v in redis_client.hgetall(key).items()}
    counted = sum(v for k, v in raw.items() if k.endswith(":n"))
    # every committed day of every student, i.e. the open day is not counted yet
    committed = 0
    for user in (1, 2, 3):
        h = redis_client.hget(f"rs:st:s1:7:{user}", "traj")
        committed += len(h or b"") // 2
    assert counted == committed > 0
    per_week = {k: v for k, v in raw.items() if k.startswith("0:") and not k.endswith(":n")}
    assert sum(per_week.values()) == raw["0:n"] * spec.n_day  # one bin per feature
    out = json.loads(redis_client.hget("rs:outcome:s1:7", "2") or b"{}")
    assert out["result"] == "withdrawn" and out["day"] == 15 and out["source"] == "unenrolment"
    # the same records again (a replay after a crash): nothing is counted twice
    asyncio.run(go([recs]))
    again = {k.decode(): int(v) for k, v in redis_client.hgetall(key).items()}
    assert again == raw
    # a final result is not overwritten by a replayed withdrawal
    redis_client.hset("rs:outcome:s1:7", "2", json.dumps({"result": "fail", "final": True}))
    asyncio.run(go([recs[-1:]]))
    assert json.loads(redis_client.hget("rs:outcome:s1:7", "2") or b"{}")["result"] == "fail"


def test_a_version_without_reference_counts_nothing(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path, hidden=8)
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=60)
    redis_client.set("rs:cal:s1:7", encode(cal))
    recs = [record(event(i + 1, user=1, day=float(i)), i) for i in range(5)]

    async def go() -> StreamMonitor:
        r = connect(stack.redis_url)
        try:
            proc = Processor(r, ListPublisher(), handle)
            proc.monitor = StreamMonitor(tmp_path, flush_every_s=0)
            await proc.process(recs)
            return proc.monitor
        finally:
            await r.aclose()

    mon = asyncio.run(go())
    assert redis_client.keys("rs:drift:*") == []
    assert mon.days_counted._value.get() == 0  # type: ignore[attr-defined]


def test_in_memory_counts_equal_the_reference_binning(tmp_path: Path) -> None:
    from models.drift import bin_increments
    from stream_app.drift import DriftCounter

    names = ("clicks_total", "active", "score")
    rng = np.random.default_rng(5)
    x = (rng.random((40, 30, 3)) * (rng.random((40, 30, 1)) < 0.5)).astype(np.float32)
    ref = build_reference(x, np.full(40, 29), names)
    dc = DriftCounter(tmp_path)
    dc._refs["v1"] = ref
    vec = x[:10, 3:24].reshape(-1, 3)
    days = list(np.tile(np.arange(3, 24), 10))
    courses = [("s", 1 + i % 2) for i in range(len(vec))]
    half = len(vec) // 2  # two batches, summed before one flush
    dc.add("v1", vec[:half], days[:half], courses[:half])
    dc.add("v1", vec[half:], days[half:], courses[half:])

    class Pipe:
        def __init__(self) -> None:
            self.got: dict[tuple[str, str], int] = {}

        def hincrby(self, key: str, field: str, n: int) -> None:
            self.got[(key, field)] = self.got.get((key, field), 0) + n

    pipe = Pipe()
    dc.flush(pipe)
    assert dc.pending == 0
    for course in (1, 2):
        m = [i for i, c in enumerate(courses) if c[1] == course]
        want = bin_increments(ref, vec[m], np.asarray(days)[m])
        got = {f: n for (k, f), n in pipe.got.items() if k == f"rs:drift:s:{course}:v1"}
        assert got == want


@pytest.mark.slow
def test_stream_counts_equal_the_offline_day_vectors_on_oulad(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The drift the API reports comes from the very day vectors the model steps on: an
    OULAD course replayed through the processor counts exactly what binning the trainer's
    day tensors of the same students and days gives."""
    from models.dataset import build_day_tensors
    from models.drift import DriftReference, bin_increments
    from models.oulad import Oulad
    from models.pretrained import SHIPPED
    from riskstream.replay import load_oulad, write_context
    from stream_app.reload import load_handle
    from tests.conftest import OULAD_DIR

    if not (OULAD_DIR / "studentVle.parquet").is_file():
        pytest.skip("OULAD not present")
    Registry(tmp_path).import_version(SHIPPED)
    handle = load_handle(tmp_path, "cpu")
    src = load_oulad(OULAD_DIR, "BBB/2014B", "oulad", max_students=40)
    write_context(redis_client, calendars=src.calendars, profiles=src.profiles)
    recs = [record(e, i) for i, e in enumerate(src.events)]

    async def go() -> None:
        r = connect(stack.redis_url)
        try:
            proc = Processor(r, ListPublisher(), handle)
            proc.monitor = StreamMonitor(tmp_path, flush_every_s=3600)
            for i in range(0, len(recs), 2000):
                await proc.process(recs[i : i + 2000])
            await proc.monitor.flush(r)
        finally:
            await r.aclose()

    asyncio.run(go())
    (course,) = src.course_ids
    ref = DriftReference.load(tmp_path / handle.version)
    assert ref is not None
    got = {
        k.decode(): int(v)
        for k, v in redis_client.hgetall(f"rs:drift:oulad:{course}:{handle.version}").items()
    }
    t = build_day_tensors(Oulad(OULAD_DIR), handle.featurizer, ("2014B",), "BBB")
    vecs, days = [], []
    for i, u in enumerate(t.user_id):
        raw = redis_client.hget(f"rs:st:oulad:{course}:{int(u)}", "day")
        if raw is None:
            continue
        open_day = int(raw)  # days 0 .. open_day - 1 are committed
        vecs.append(t.x[i, :open_day])
        days.append(np.arange(open_day))
    assert len(vecs) >= 30
    want = bin_increments(ref, np.concatenate(vecs), np.concatenate(days))
    assert sum(v for k, v in got.items() if k.endswith(":n")) > 1000
    assert got == want

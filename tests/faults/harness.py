"""Fault-matrix helpers: a replay, a worker in a child process, and the exactly-once checks.

The yardstick for every fault is an uninterrupted run of the same records through the same
batch logic (``stream_app.processor.Processor``) in this process, on another Redis database
of the same server: after the fault, every student's state must equal it (event for event,
so nothing applied twice or skipped), the set of alert ids must equal it (nothing lost, and
the Redis alert stream holds no duplicate), and every malformed record must sit on the
dead-letter topic with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import redis
import redis.asyncio as aredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import (
    TOPICS,
    CourseCalendar,
    DeadLetter,
    LmsEvent,
    RiskAlert,
    decode,
    encode,
    keys,
)
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack
from tests.conftest import REPO, subprocess_env

SITE = "fault"
START = datetime(2024, 2, 5, tzinfo=UTC)
COURSES = (11, 12)
COMPONENTS = ("mod_quiz", "mod_forum", "mod_resource", "mod_page", "core", "mod_url", "mod_assign")
SESSION_MS = 6000


# -- the replay ---------------------------------------------------------------------------
@dataclass
class Replay:
    """Events in time order (ids increasing) with malformed records mixed in."""

    events: list[LmsEvent]
    junk: list[bytes]
    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value) as sent
    site: str = SITE

    @property
    def last_ids(self) -> dict[tuple[int, int], int]:
        """(course, user) -> the highest event id sent: what the state must end at."""
        out: dict[tuple[int, int], int] = {}
        for ev in self.events:
            out[(ev.course_id, ev.user_id)] = ev.event_id
        return out


def make_replay(
    students: int = 30, days: int = 16, per_day: float = 3.0, junk: int = 25, seed: int = 7
) -> Replay:
    """Synthetic students over ``days`` course days in two courses; some skip days."""
    rng = np.random.default_rng(seed)
    raw: list[tuple[datetime, int, int, str]] = []
    for u in range(students):
        course = COURSES[u % len(COURSES)]
        activity = rng.uniform(0.2, 1.0)  # some students fade: risk moves, alerts fire
        for d in range(days):
            if rng.random() > activity * (1.0 - d / (days * 1.5) if u % 3 == 0 else 1.0):
                continue
            for _ in range(int(rng.poisson(per_day)) + 1):
                t = START + timedelta(days=d, seconds=float(rng.uniform(0, 86_000)))
                raw.append((t, 1000 + u, course, str(rng.choice(COMPONENTS))))
    raw.sort()
    events = [
        LmsEvent(
            site=SITE,
            event_id=i + 1,
            user_id=u,
            course_id=c,
            time=t,
            eventname=f"\\{comp}\\event\\course_module_viewed",
            component=comp,
            action="viewed",
            target="course_module",
            count=1 + i % 3,
        )
        for i, (t, u, c, comp) in enumerate(raw)
    ]
    bad = malformed(junk, rng)
    rep = Replay(events, bad)
    # Interleave: junk lands at random positions of the replay, keyed like real students.
    slots = sorted(rng.choice(len(events) + 1, size=len(bad), replace=True).tolist())
    j = 0
    for i, ev in enumerate(events):
        while j < len(bad) and slots[j] == i:
            rep.records.append((f"{SITE}:junk{j}".encode(), bad[j]))
            j += 1
        rep.records.append((ev.key, encode(ev)))
    rep.records.extend((f"{SITE}:junk{k}".encode(), bad[k]) for k in range(j, len(bad)))
    return rep


def malformed(n: int, rng: np.random.Generator) -> list[bytes]:
    """Distinct payloads the worker must dead-letter: not JSON, wrong fields, bad values."""
    good = {
        "site": SITE,
        "event_id": 1,
        "user_id": 1,
        "course_id": COURSES[0],
        "time": START.isoformat(),
        "eventname": "e",
        "component": "mod_page",
        "action": "viewed",
    }
    kinds: list[Callable[[int], bytes]] = [
        lambda i: bytes(rng.integers(0, 256, size=12 + i % 9, dtype=np.uint8)),
        lambda i: f"not json {i}".encode(),
        lambda i: encode_json(good | {"event_id": -i - 1}),
        lambda i: encode_json(good | {"time": f"2024-02-{1 + i % 27:02d}T10:00:00"}),  # naive
        lambda i: encode_json(good | {"colour": f"red{i}"}),
        lambda i: encode_json({k: v for k, v in good.items() if k != "user_id"} | {"n": i}),
        lambda i: encode_json(good | {"grade": 5.0 + i, "max_grade": 1.0}),
        lambda i: b"",
    ]
    out = []
    for i in range(n):
        payload = kinds[i % len(kinds)](i)
        out.append(payload if payload else f"   {i}".encode())  # blank-ish but distinct
    return out


def encode_json(obj: dict[str, Any]) -> bytes:
    import json

    return json.dumps(obj).encode()


def calendars() -> list[CourseCalendar]:
    return [CourseCalendar(site=SITE, course_id=c, start=START, length_days=60) for c in COURSES]


def put_calendars(client: redis.Redis) -> None:
    for cal in calendars():
        client.set(keys.calendar_key(cal.site, cal.course_id), encode(cal))


async def publish(
    bootstrap: str,
    records: Iterable[tuple[bytes, bytes]],
    rate: float | None = None,
    on_progress: Callable[[int], Any] | None = None,
) -> int:
    """Send records (keyed) at about ``rate`` per second (None: as fast as acks allow)."""
    prod = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=2
    )
    await prod.start()
    n = 0
    t0 = time.perf_counter()
    try:
        for key, value in records:
            await prod.send(TOPICS.events, value, key=key)
            n += 1
            if rate is not None and n % 20 == 0:
                ahead = n / rate - (time.perf_counter() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if on_progress is not None and n % 50 == 0:
                res = on_progress(n)
                if asyncio.iscoroutine(res):
                    await res
        await prod.flush()
    finally:
        await prod.stop()
    return n


async def create_topics(bootstrap: str) -> None:
    await ensure_topics(bootstrap, TOPICS.all(), PARTITIONS)


async def read_topic(bootstrap: str, topic: str, idle_s: float = 1.5) -> list[bytes]:
    """Every value on a topic, from the start of every partition."""
    cons = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await cons.start()
    try:
        await cons.topics()
        parts = cons.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        cons.assign(tps)
        await cons.seek_to_beginning(*tps)
        out: list[bytes] = []
        idle = 0.0
        while idle < idle_s:
            batch = await cons.getmany(timeout_ms=250, max_records=5000)
            got = [m.value for msgs in batch.values() for m in msgs if m.value is not None]
            out.extend(got)
            idle = 0.0 if got else idle + 0.25
        return out
    finally:
        await cons.stop()


PARTITIONS = 4  # of every topic the fault tests create


def _partition(key: bytes | None) -> int:
    from aiokafka.partitioner import murmur2

    return 0 if key is None else (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


# -- the worker in a child process -----------------------------------------------------------
class Worker:
    """``python3 -m riskstream worker`` against a stack, as an operator runs it."""

    def __init__(self, stack: Stack, registry: Path, log_dir: Path, **env: str) -> None:
        self.stack, self.registry, self.log_dir = stack, registry, log_dir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"worker-{self.starts}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        settings = {
            "RISKSTREAM_KAFKA_BOOTSTRAP": self.stack.bootstrap,
            "RISKSTREAM_REDIS_URL": self.stack.redis_url,
            "RISKSTREAM_MODEL_REGISTRY": str(self.registry),
            "RISKSTREAM_DEVICE": "cpu",
            "RISKSTREAM_STREAM_SESSION_TIMEOUT_MS": str(SESSION_MS),
            "RISKSTREAM_STREAM_BATCH_MAX": "200",
            "RISKSTREAM_STREAM_METRICS_PORT": "0",
            "RISKSTREAM_LOG_LEVEL": "INFO",
        }
        env = subprocess_env(**(settings | self.env))
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "riskstream", "worker", "--device", "cpu"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.log_dir.glob("worker-*"))
        )


# -- state and outcome -----------------------------------------------------------------------
COMPARED = ("h", "c", "acc", "win", "traj", "day", "d0", "last_id", "risk", "level", "alert")


def snapshot(client: redis.Redis, site: str = SITE) -> dict[str, dict[str, bytes]]:
    """Every student's state hash (minus the wall-clock ``upd``)."""
    out: dict[str, dict[str, bytes]] = {}
    for key in client.scan_iter(keys.state_pattern(site), count=1000):
        h = client.hgetall(key)
        out[key.decode()] = {k.decode(): v for k, v in h.items() if k != b"upd"}
    return out


def alert_ids_in_stream(client: redis.Redis) -> list[str]:
    """Alert ids in the ``rs:alerts`` Redis stream, in order, duplicates kept."""
    ids = []
    for _, fields in client.xrange("rs:alerts"):
        ids.append(decode(RiskAlert, fields[b"alert"]).alert_id)
    return ids


def applied_everything(client: redis.Redis, replay: Replay) -> bool:
    pipe = client.pipeline(transaction=False)
    want = replay.last_ids
    for course, user in want:
        pipe.hget(keys.state_key(replay.site, course, user), "last_id")
    got = pipe.execute()
    return all(g is not None and int(g) == v for g, v in zip(got, want.values(), strict=True))


def wait_until(cond: Callable[[], bool], timeout: float, what: str, worker: Worker | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        time.sleep(0.2)
    logs = worker.logs() if worker is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs[-3000:]}")


def same_state(got: dict[str, dict[str, bytes]], ref: dict[str, dict[str, bytes]]) -> list[str]:
    """Differences between two snapshots; float arrays to 1e-5 (batching changes BLAS paths)."""
    problems = []
    if set(got) != set(ref):
        problems.append(f"students differ: {sorted(set(got) ^ set(ref))[:5]}")
    for key in sorted(set(got) & set(ref)):
        for name in COMPARED:
            a, b = got[key].get(name), ref[key].get(name)
            if a == b:
                continue
            if a is None or b is None:
                problems.append(f"{key}.{name}: {a!r} vs {b!r}")
            elif name in ("h", "c", "acc", "win"):
                x, y = np.frombuffer(a, np.float32), np.frombuffer(b, np.float32)
                if x.shape != y.shape or not np.allclose(x, y, atol=1e-5, rtol=0):
                    problems.append(f"{key}.{name} differs")
            elif name == "traj":
                x, y = np.frombuffer(a, np.float16), np.frombuffer(b, np.float16)
                if x.shape != y.shape or not np.allclose(x, y, atol=2e-3, rtol=0):
                    problems.append(f"{key}.traj differs")
            elif name == "risk":
                if abs(float(a) - float(b)) > 1e-5:
                    problems.append(f"{key}.risk {a!r} vs {b!r}")
            else:
                problems.append(f"{key}.{name}: {a!r} vs {b!r}")
    return problems


@dataclass
class Outcome:
    state: dict[str, dict[str, bytes]]
    alert_ids: set[str]
    stream_alert_ids: list[str]
    dead_payloads: set[bytes]
    dead_reasons_ok: bool


async def reference(
    redis_url: str,
    registry: Path,
    replay: Replay,
    batch: int = 200,
    setup: Callable[[redis.Redis], None] = put_calendars,
) -> Outcome:
    """The uninterrupted run: the same records through the worker's batch logic, in process."""
    from stream_app.processor import Processor
    from stream_app.records import InRecord, OutRecord
    from stream_app.reload import load_handle

    class Keep:
        def __init__(self) -> None:
            self.out: list[OutRecord] = []

        async def publish(self, records: list[OutRecord]) -> None:
            self.out.extend(records)

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    setup(client)
    r = aredis.Redis.from_url(redis_url)
    pub = Keep()
    try:
        # the worker sweeps the course clock per partition (the default), and alerts are
        # admitted per partition: the reference sees the partitions the broker will use
        proc = Processor(r, pub, load_handle(registry, "cpu"), sweep_partitions=PARTITIONS)
        recs = [
            InRecord(TOPICS.events, _partition(k), i, k, v, None)
            for i, (k, v) in enumerate(replay.records)
        ]
        for i in range(0, len(recs), batch):
            await proc.process(recs[i : i + batch])
    finally:
        await r.aclose()
    alerts = {decode(RiskAlert, o.value).alert_id for o in pub.out if o.topic == TOPICS.alerts}
    dead = [decode(DeadLetter, o.value) for o in pub.out if o.topic == TOPICS.dead_letter]
    outcome = Outcome(
        snapshot(client, replay.site),
        alerts,
        alert_ids_in_stream(client),
        {d.raw_bytes() for d in dead},
        all(d.reason for d in dead),
    )
    client.close()
    return outcome


async def outcome_of(stack: Stack, site: str = SITE) -> Outcome:
    """What the worker left: Redis state, the alerts topic, the dead-letter topic."""
    alerts = {
        decode(RiskAlert, v).alert_id for v in await read_topic(stack.bootstrap, TOPICS.alerts)
    }
    dead = [decode(DeadLetter, v) for v in await read_topic(stack.bootstrap, TOPICS.dead_letter)]
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return Outcome(
            snapshot(client, site),
            alerts,
            alert_ids_in_stream(client),
            {d.raw_bytes() for d in dead},
            all(d.reason and d.stage for d in dead),
        )
    finally:
        client.close()


def finish(stack: Stack, replay: Replay, worker: Worker, timeout: float = 60.0) -> Outcome:
    """Wait until every student's last applied id is the last one sent, and every malformed
    record was dead-lettered (they may sit in a later batch than the last good event)."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        wait_until(lambda: applied_everything(client, replay), timeout, "every event", worker)
    finally:
        client.close()
    deadline = time.monotonic() + 20
    while True:
        got = asyncio.run(outcome_of(stack, replay.site))
        if got.dead_payloads >= set(replay.junk) or time.monotonic() > deadline:
            return got


def assert_exactly_once(got: Outcome, ref: Outcome, replay: Replay) -> None:
    """The fault matrix's one verdict, the same for every fault."""
    top = max((float(v.get("risk", b"0")) for v in ref.state.values()), default=0.0)
    assert ref.alert_ids, (
        f"the replay must raise alerts, else 'none lost' proves nothing (highest latest "
        f"risk {top:.3f}, {len(ref.state)} states)"
    )
    problems = same_state(got.state, ref.state)
    assert not problems, "state differs from the uninterrupted run:\n" + "\n".join(problems[:20])
    assert got.alert_ids == ref.alert_ids, (
        f"alerts lost {sorted(ref.alert_ids - got.alert_ids)[:5]}, "
        f"extra {sorted(got.alert_ids - ref.alert_ids)[:5]}"
    )
    assert len(got.stream_alert_ids) == len(set(got.stream_alert_ids)), "duplicate in rs:alerts"
    assert set(got.stream_alert_ids) == ref.alert_ids
    assert got.dead_payloads == set(replay.junk), "malformed records not all dead-lettered"
    assert got.dead_reasons_ok


def publish_model(root: Path, seed: int = 0, gain: float = 20.0, **th: float) -> str:
    """A small random LSTM whose risk head is scaled so risks spread over (0, 1): alerts
    fire and re-arm, and no decision sits within float noise of a threshold."""
    import torch

    from models.features import DEFAULT_SPEC
    from models.lstm import LstmRisk
    from models.registry import Registry, Thresholds

    torch.manual_seed(seed)
    model = LstmRisk(DEFAULT_SPEC.n_day, DEFAULT_SPEC.n_static, hidden=8).eval()
    with torch.no_grad():
        model.heads.out.weight[0] *= gain
        model.heads.out.bias[0] = 0.0
    thresholds = Thresholds(
        medium=th.get("medium", 0.5),
        high=th.get("high", 0.7),
        rearm=th.get("rearm", 0.4),
        min_days=int(th.get("min_days", 3)),
        cooldown_days=int(th.get("cooldown_days", 2)),
        # short replays: a day's risk is enough, and no capacity limit, so that many alerts
        # (the fault verdict compares them) come out of a few simulated days
        persist_days=int(th.get("persist_days", 1)),
        day_cap=float(th.get("day_cap", 1.0)),
        week_cap=float(th.get("week_cap", 1.0)),
    )
    return Registry(root).publish(
        model, DEFAULT_SPEC, thresholds, metrics={}, data_summary={"source": "tests/faults"}
    )

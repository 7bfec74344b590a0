"""Course-clock sweep: idle students' risk moves on empty days, and the outcome (state and
alerts) is the same as when their next event commits those days without a sweep."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import redis
import torch

from contracts import CourseCalendar, encode, keys
from models.registry import Thresholds
from riskstream.stack import Stack
from stream_app.processor import Processor
from stream_app.state import connect, decode_state
from tests.stream_app.helpers import START, ListPublisher, event, handle_for, record

A, B = 1, 2  # A is active every day, B only on day 0 and day 12


def _batches() -> list[list]:  # type: ignore[type-arg]
    out = []
    eid = 0
    for day in range(13):
        evs = []
        for user in (A, B) if day in (0, 12) else (A,):
            eid += 1
            evs.append(event(eid, user, day + 0.3, component="mod_quiz"))
        out.append([record(e, e.event_id) for e in evs])
    return out


def _run(url: str, handle, sweep: bool, stop_after: int | None = None, merge: int = 1):  # type: ignore[no-untyped-def]
    pub = ListPublisher()
    batches = _batches()[:stop_after]
    batches = [
        [r for b in batches[i : i + merge] for r in b] for i in range(0, len(batches), merge)
    ]

    async def go() -> None:
        r = connect(url)
        proc = Processor(r, pub, handle, sweep_partitions=1 if sweep else 0)
        for b in batches:
            await proc.process(b)
        await r.aclose()

    asyncio.run(go())
    return pub


def test_sweep_advances_idle_students_and_matches_the_unswept_outcome(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path / "a", hidden=8, seed=5)
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=60)

    def reset() -> None:
        redis_client.flushdb()
        redis_client.set(keys.calendar_key("s1", 7), encode(cal))

    # 1. after A's day-10 batch, B (silent since day 0) was advanced to day 9 (lag 1)
    reset()
    _run(stack.redis_url, handle, sweep=True, stop_after=11)
    st = decode_state(redis_client.hgetall(keys.state_key("s1", 7, 2)), handle.n_day)
    assert st.day == 9 and len(st.traj) == 9
    fz = handle.featurizer
    accs = np.zeros((9, fz.n_acc), dtype=np.float32)
    fz.fold(accs[0], event(2, B, 0.3, component="mod_quiz"))
    x = torch.from_numpy(fz.day_vectors(accs, np.arange(9), cal))[None]
    static = torch.from_numpy(fz.static_vector(None))[None]
    with torch.inference_mode():
        off = handle.loaded.model(x, static).risk[0].numpy()
    assert abs(st.risk - off[8]) < 1e-5  # end of day 8, the last day committed by the sweep

    # 2. whole run with and without sweeps: same final states
    reset()
    _run(stack.redis_url, handle, sweep=True)
    swept = {u: redis_client.hgetall(keys.state_key("s1", 7, u)) for u in (A, B)}
    reset()
    _run(stack.redis_url, handle, sweep=False)
    plain = {u: redis_client.hgetall(keys.state_key("s1", 7, u)) for u in (A, B)}
    for u in (A, B):
        s1, s2 = decode_state(swept[u], handle.n_day), decode_state(plain[u], handle.n_day)
        assert (s1.day, s1.last_id, s1.alert) == (s2.day, s2.last_id, s2.alert)
        np.testing.assert_allclose(s1.model_state["h"], s2.model_state["h"], atol=1e-6)
        np.testing.assert_allclose(s1.traj.astype(float), s2.traj.astype(float), atol=1e-3)


def test_sweep_alerts_do_not_depend_on_the_batching(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # min_days 7: both alert on course day 7 (A on an event's day, B on an empty day); no
    # capacity limit here, so the two students do not compete for one day's room
    handle = handle_for(
        tmp_path / "b", constant_risk=0.9, thresholds=Thresholds(day_cap=1.0, week_cap=1.0)
    )
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=60)
    got = {}
    for merge in (1, 4):
        redis_client.flushdb()
        redis_client.set(keys.calendar_key("s1", 7), encode(cal))
        pub = _run(stack.redis_url, handle, sweep=True, merge=merge)
        got[merge] = {(a.user_id, a.day, a.alert_id) for a in pub.alerts()}
    assert got[1] == got[4]
    assert {(u, d) for u, d, _ in got[1]} == {(A, 7), (B, 7)}


def test_sweep_reads_only_students_that_may_be_behind(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path, monkeypatch: object
) -> None:
    """A student this process itself wrote at the sweep's day or later is not read again
    (their day only moves forward); one it never wrote, or wrote at an earlier day, is."""
    import stream_app.processor as processor_mod

    handle = handle_for(tmp_path / "a", hidden=8, seed=5)
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=60)
    redis_client.flushdb()
    redis_client.set(keys.calendar_key("s1", 7), encode(cal))
    real = processor_mod.read_batch
    read: list[list[int]] = []

    async def spy(r, keys_, courses):  # type: ignore[no-untyped-def]
        read.append(sorted(k.user for k in keys_))
        return await real(r, keys_, courses)

    monkeypatch.setattr(processor_mod, "read_batch", spy)  # type: ignore[attr-defined]

    async def go() -> None:
        r = connect(stack.redis_url)
        proc = Processor(r, ListPublisher(), handle, sweep_partitions=1)
        await proc.process([record(event(1, A, 0.3), 1), record(event(2, B, 0.3), 2)])
        await proc.process([record(event(3, A, 5.3), 3)])  # A at day 5, B still at day 0
        read.clear()
        assert await proc.sweep("s1", 7, 0, 5) == 1  # B advanced; A not even read
        assert read == [[B]]
        read.clear()
        assert await proc.sweep("s1", 7, 0, 5) == 0  # both known to be at day 5
        assert read == []
        fresh = Processor(r, ListPublisher(), handle, sweep_partitions=1)
        assert await fresh.sweep("s1", 7, 0, 5) == 0  # another process reads both
        assert read == [[A, B]]
        await r.aclose()

    asyncio.run(go())
    st = decode_state(redis_client.hgetall(keys.state_key("s1", 7, B)), handle.n_day)
    assert st.day == 5 and len(st.traj) == 5

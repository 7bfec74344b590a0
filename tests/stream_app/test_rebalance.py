"""A second Faust worker joins the group mid-replay (a rebalance moves partitions while the
first has batches in flight and prefetched), then the first leaves (SIGTERM, another
rebalance): the state equals an uninterrupted run and no alert is lost or doubled."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from contracts import TOPICS, CourseCalendar, RiskAlert, decode, encode, keys
from models.testing import tiny_model
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack
from stream_app.reload import load_handle
from tests.conftest import REPO, subprocess_env
from tests.stream_app.helpers import START, record
from tests.stream_app.test_crash_replay import (
    N_USERS,
    _alert_ids_on_topic,
    _events,
    _produce,
    _reference,
    _snapshot,
    _thresholds,
)

pytestmark = pytest.mark.slow


async def _produce_paced(bootstrap: str, topic: str, evs: list, seconds: float) -> None:  # type: ignore[type-arg]
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await p.start()
    try:
        step = max(1, len(evs) // 80)
        for i in range(0, len(evs), step):
            for e in evs[i : i + step]:
                await p.send(topic, encode(e), key=e.key)
            await p.flush()
            await asyncio.sleep(seconds / 80)
    finally:
        await p.stop()


@pytest.mark.xfail(
    reason="intermittent (session notes): after a join and a leave mid-replay one student's "
    "open day could differ by one click from the uninterrupted run. A race that skips records "
    "was fixed in stream_app/faust_batch.py (a fetch from the new assignment dropped as stale, "
    "its records never re-read); 9 of 9 runs passed here before and after it, so whether it "
    "was this failure is unproven (ARCHITECTURE.md, rebalances)",
    strict=False,
)
def test_worker_joining_and_leaving_mid_replay_matches_uninterrupted_run(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    site = f"rb{uuid.uuid4().hex[:8]}"
    topic = f"riskstream.events.{site}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic, *TOPICS.all()), 4))
    evs = _events(site)
    cal = CourseCalendar(site=site, course_id=7, start=START, length_days=60)
    th = _thresholds(tmp_path / "pilot", evs, cal)
    reg = tmp_path / "reg"
    tiny_model(reg, seed=11, hidden=8, thresholds=th)
    handle = load_handle(reg, "cpu")
    recs = [record(e, i, (murmur2(e.key) & 0x7FFFFFFF) % 4) for i, e in enumerate(evs)]
    ref_url = stack.redis_url[:-1] + "5"
    ref = redis.Redis.from_url(ref_url)
    ref.flushdb()
    ref.set(keys.calendar_key(site, 7), encode(cal))
    asyncio.run(_reference(ref_url, handle, recs))
    want = _snapshot(ref, site, handle.n_day)
    want_alerts = {decode(RiskAlert, f[b"alert"]).alert_id for _, f in ref.xrange("rs:alerts")}

    redis_client.set(keys.calendar_key(site, 7), encode(cal))
    head = len(evs) // 5
    asyncio.run(_produce(stack.bootstrap, topic, evs[:head]))
    # the rest arrives over ~16 s, so both rebalances land mid-replay
    rest = threading.Thread(
        target=lambda: asyncio.run(_produce_paced(stack.bootstrap, topic, evs[head:], 16.0))
    )
    env = subprocess_env(
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_MODEL_REGISTRY=str(reg),
        RISKSTREAM_STREAM_GROUP=f"g-{site}",
        RISKSTREAM_STREAM_EVENTS_TOPIC=topic,
        RISKSTREAM_STREAM_SESSION_TIMEOUT_MS="6000",
        RISKSTREAM_STREAM_BATCH_MAX="8",  # many small batches: the rebalance lands mid-replay
        RISKSTREAM_STREAM_BATCH_CAP="8",
        RISKSTREAM_DEVICE="cpu",
        RISKSTREAM_LOG_LEVEL="WARNING",
        RISKSTREAM_STREAM_SWEEP="true",
    )
    last = {u: max(e.event_id for e in evs if e.user_id == u) for u in range(N_USERS)}

    def progress() -> int:
        vals = [redis_client.hget(keys.state_key(site, 7, u), "last_id") for u in range(N_USERS)]
        return sum(int(v) == last[u] for u, v in enumerate(vals) if v is not None)

    logs = [tmp_path / "a.log", tmp_path / "b.log"]

    def start(log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "riskstream", "worker", "--device", "cpu"],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    a = start(logs[0])
    b = None
    try:
        deadline = time.monotonic() + 40
        while not redis_client.exists(keys.rank_key(site, 7)) and time.monotonic() < deadline:
            assert a.poll() is None, logs[0].read_text()[-3000:]
            time.sleep(0.02)
        rest.start()
        b = start(logs[1])  # joins: partitions move to it while A is mid-replay
        time.sleep(8)  # the join takes about half the session timeout on this broker
        assert progress() < N_USERS, "replay finished before the rebalance; make it longer"
        a.terminate()  # A leaves: its partitions go to B
        a.wait(20)
        rest.join(60)
        deadline = time.monotonic() + 60
        while progress() < N_USERS and time.monotonic() < deadline:
            assert b.poll() is None, logs[1].read_text()[-3000:]
            time.sleep(0.2)
        assert progress() == N_USERS
    finally:
        for w in (a, b):
            if w is not None and w.poll() is None:
                w.terminate()
                try:
                    w.wait(15)
                except subprocess.TimeoutExpired:
                    w.kill()

    got = _snapshot(redis_client, site, handle.n_day)
    assert set(got) == set(want)
    for user, st in want.items():
        assert got[user]["ints"] == st["ints"], user
        assert got[user]["floats"] == pytest.approx(st["floats"], abs=1e-5)
    ids = [
        a.alert_id
        for a in (decode(RiskAlert, f[b"alert"]) for _, f in redis_client.xrange("rs:alerts"))
        if a.site == site
    ]
    assert len(ids) == len(set(ids)) and set(ids) == want_alerts
    assert set(asyncio.run(_alert_ids_on_topic(stack.bootstrap, site))) == want_alerts

"""kill -9 of a real worker in the middle of a replay, then a restart: same per-student state
and the same set of alerts (by id) as an uninterrupted run. Real broker, real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from contracts import TOPICS, CourseCalendar, RiskAlert, decode, encode, keys
from models.registry import Thresholds
from models.testing import tiny_model
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack
from stream_app.processor import Processor
from stream_app.reload import load_handle
from stream_app.state import connect, decode_state
from tests.conftest import REPO, subprocess_env
from tests.stream_app.helpers import START, ListPublisher, event, record

pytestmark = pytest.mark.slow

N_USERS, N_DAYS = 40, 30


def _events(site: str) -> list:  # type: ignore[type-arg]
    rng = np.random.default_rng(7)
    evs = []
    for day in range(N_DAYS):
        for user in range(N_USERS):
            if rng.random() < 0.35 + 0.5 * (user % 3 == 0):
                for _ in range(int(rng.integers(1, 4))):
                    comp = ["mod_quiz", "mod_forum", "mod_page", "mod_resource"][
                        int(rng.integers(4))
                    ]
                    evs.append(event(0, user, day + rng.random() * 0.99, component=comp))
    evs.sort(key=lambda e: e.time)
    return [e.model_copy(update={"event_id": i + 1, "site": site}) for i, e in enumerate(evs)]


def _thresholds(root: Path, evs: list, cal: CourseCalendar) -> Thresholds:  # type: ignore[type-arg]
    """Quantiles of the offline risk, so that some (not all) students get alerts."""
    tiny_model(root, seed=11, hidden=8)
    loaded = load_handle(root, "cpu").loaded
    fz = loaded.featurizer
    xs = []
    for user in range(N_USERS):
        accs = np.zeros((N_DAYS, fz.n_acc), dtype=np.float32)
        for e in evs:
            if e.user_id == user:
                fz.fold(accs[fz.day_of(e.time, cal)], e)
        xs.append(fz.day_vectors(accs, np.arange(N_DAYS), cal))
    static = torch.zeros(N_USERS, loaded.spec.n_static)
    with torch.inference_mode():
        risk = loaded.model(torch.from_numpy(np.stack(xs)), static).risk.numpy()
    q = np.quantile(risk, [0.3, 0.6, 0.85])
    return Thresholds(medium=q[1], high=q[2], rearm=q[0], min_days=3, cooldown_days=2)


async def _reference(url: str, handle, recs) -> None:  # type: ignore[no-untyped-def]
    r = connect(url)
    proc = Processor(r, ListPublisher(), handle, sweep_partitions=4)
    for i in range(0, len(recs), 97):
        await proc.process(recs[i : i + 97])
    await r.aclose()


async def _produce(bootstrap: str, topic: str, evs) -> None:  # type: ignore[no-untyped-def]
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await p.start()
    try:
        for e in evs:
            await p.send(topic, encode(e), key=e.key)
        await p.flush()
    finally:
        await p.stop()


async def _alert_ids_on_topic(bootstrap: str, site: str) -> list[str]:
    c = AIOKafkaConsumer(
        TOPICS.alerts, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await c.start()
    ids: list[str] = []
    try:
        while True:
            got = await c.getmany(timeout_ms=1500)
            if not got:
                return ids
            for msgs in got.values():
                for m in msgs:
                    a = decode(RiskAlert, m.value or b"")
                    if a.site == site:
                        ids.append(a.alert_id)
    finally:
        await c.stop()


def _snapshot(r: redis.Redis, site: str, n_day: int) -> dict[int, dict[str, object]]:
    out = {}
    for user in range(N_USERS):
        raw = r.hgetall(keys.state_key(site, 7, user))
        if raw:
            st = decode_state(raw, n_day)
            out[user] = {
                "ints": (st.day, st.d0, st.last_id, st.ver, st.level, st.alert),
                "floats": np.concatenate(
                    [
                        *(st.model_state[k] for k in sorted(st.model_state)),
                        st.acc if st.acc is not None else [],
                        st.win.ravel() if st.win is not None else [],
                        st.traj.astype(np.float32),
                        [st.risk],
                    ]
                ),
            }
    return out


def test_kill9_mid_replay_then_restart_matches_uninterrupted_run(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    site = f"crash{uuid.uuid4().hex[:8]}"
    topic = f"riskstream.events.{site}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic, *TOPICS.all()), 4))
    evs = _events(site)
    cal = CourseCalendar(site=site, course_id=7, start=START, length_days=60)
    th = _thresholds(tmp_path / "pilot", evs, cal)
    reg = tmp_path / "reg"
    tiny_model(reg, seed=11, hidden=8, thresholds=th)
    handle = load_handle(reg, "cpu")
    # the reference sees the partitions the broker will use, so its course-clock sweeps match
    recs = [record(e, i, (murmur2(e.key) & 0x7FFFFFFF) % 4) for i, e in enumerate(evs)]

    # uninterrupted reference, in-process, on Redis db 1
    ref_url = stack.redis_url[:-1] + "1"
    ref = redis.Redis.from_url(ref_url)
    ref.flushdb()
    ref.set(keys.calendar_key(site, 7), encode(cal))
    asyncio.run(_reference(ref_url, handle, recs))
    want = _snapshot(ref, site, handle.n_day)
    want_alerts = {decode(RiskAlert, f[b"alert"]).alert_id for _, f in ref.xrange("rs:alerts")}
    assert len(want) == N_USERS and len(want_alerts) > 0

    # the real worker, killed with SIGKILL mid-replay, then restarted
    redis_client.set(keys.calendar_key(site, 7), encode(cal))
    asyncio.run(_produce(stack.bootstrap, topic, evs))
    env = subprocess_env(
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_MODEL_REGISTRY=str(reg),
        RISKSTREAM_STREAM_GROUP=f"g-{site}",
        RISKSTREAM_STREAM_EVENTS_TOPIC=topic,
        RISKSTREAM_STREAM_SESSION_TIMEOUT_MS="6000",
        RISKSTREAM_STREAM_BATCH_MAX="16",
        RISKSTREAM_STREAM_BATCH_WITHIN="0.01",
        RISKSTREAM_DEVICE="cpu",
        RISKSTREAM_LOG_LEVEL="WARNING",
        RISKSTREAM_STREAM_SWEEP="true",  # the real worker sweeps too (the reference does)
    )
    last = {u: max(e.event_id for e in evs if e.user_id == u) for u in range(N_USERS)}

    def progress() -> int:
        vals = [redis_client.hget(keys.state_key(site, 7, u), "last_id") for u in range(N_USERS)]
        return sum(int(v) == last[u] for u, v in enumerate(vals) if v is not None)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "riskstream", "worker", "--device", "cpu"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "worker.log", "ab"),
        )

    w = start()
    try:
        deadline = time.monotonic() + 40
        while redis_client.xlen("rs:alerts") == 0 and time.monotonic() < deadline:
            assert w.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.02)
        os.kill(w.pid, signal.SIGKILL)
        w.wait(10)
        done_at_kill = progress()
        assert done_at_kill < N_USERS, "worker finished before the kill; make the replay longer"
        w = start()
        deadline = time.monotonic() + 45
        while progress() < N_USERS and time.monotonic() < deadline:
            assert w.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.2)
        assert progress() == N_USERS
    finally:
        w.terminate()
        try:
            w.wait(15)
        except subprocess.TimeoutExpired:
            w.kill()

    got = _snapshot(redis_client, site, handle.n_day)
    assert set(got) == set(want)
    for user, st in want.items():
        assert got[user]["ints"] == st["ints"], user
        np.testing.assert_allclose(got[user]["floats"], st["floats"], atol=1e-5)
    got_alerts = [decode(RiskAlert, f[b"alert"]) for _, f in redis_client.xrange("rs:alerts")]
    ids = [a.alert_id for a in got_alerts if a.site == site]
    assert len(ids) == len(set(ids))  # the Redis stream has each alert once
    assert set(ids) == want_alerts
    on_topic = asyncio.run(_alert_ids_on_topic(stack.bootstrap, site))
    assert set(on_topic) == want_alerts  # duplicates possible on the topic, never losses

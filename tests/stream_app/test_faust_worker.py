"""The default (Faust) worker as a real process: it runs on uvloop, applies every event,
and commits the group's offsets to the end of what it applied (batches, not events)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import TOPICS, CourseCalendar, encode, keys
from models.testing import tiny_model
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack
from tests.conftest import REPO, subprocess_env
from tests.stream_app.helpers import START, event
from tests.stream_app.test_crash_replay import _produce

pytestmark = pytest.mark.slow


async def _committed(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        out = {}
        for p in range(4):
            off = await c.committed(TopicPartition(topic, p))
            out[p] = -1 if off is None else off
        return out
    finally:
        await c.stop()


def test_faust_worker_uvloop_applies_all_and_commits(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    site = f"fw{uuid.uuid4().hex[:8]}"
    topic = f"riskstream.events.{site}"
    group = f"g-{site}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic, *TOPICS.all()), 4))
    evs = [
        event(0, user, day + user / 100).model_copy(update={"site": site})
        for day in range(6)
        for user in range(30)
    ]
    evs = [e.model_copy(update={"event_id": i + 1}) for i, e in enumerate(evs)]
    redis_client.set(
        keys.calendar_key(site, 7), encode(CourseCalendar(site=site, course_id=7, start=START))
    )
    asyncio.run(_produce(stack.bootstrap, topic, evs))
    reg = tmp_path / "reg"
    tiny_model(reg, seed=3, hidden=8)
    env = subprocess_env(
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_MODEL_REGISTRY=str(reg),
        RISKSTREAM_STREAM_GROUP=group,
        RISKSTREAM_STREAM_EVENTS_TOPIC=topic,
        RISKSTREAM_STREAM_SESSION_TIMEOUT_MS="6000",
        RISKSTREAM_STREAM_BATCH_MAX="16",
        RISKSTREAM_DEVICE="cpu",
        RISKSTREAM_LOG_LEVEL="INFO",
    )
    log = tmp_path / "worker.log"
    with open(log, "ab") as out:
        w = subprocess.Popen(
            [sys.executable, "-m", "riskstream", "worker", "--device", "cpu"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    last = {u: max(e.event_id for e in evs if e.user_id == u) for u in range(30)}

    def applied() -> int:
        vals = [redis_client.hget(keys.state_key(site, 7, u), "last_id") for u in range(30)]
        return sum(v is not None and int(v) == last[u] for u, v in enumerate(vals))

    try:
        deadline = time.monotonic() + 60
        while applied() < 30 and time.monotonic() < deadline:
            assert w.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        assert applied() == 30
    finally:
        w.terminate()
        try:
            w.wait(20)
        except subprocess.TimeoutExpired:
            w.kill()
    text = log.read_text()
    assert "+uvloop" in text  # Faust's banner names the loop it runs on
    assert "loop=uvloop" in text.replace("'", "").replace('"', "")  # worker.started
    # every event applied and committed on stop: the group's offsets are the partitions' ends
    per_part: dict[int, int] = {}
    from aiokafka.partitioner import murmur2

    for e in evs:
        p = (murmur2(e.key) & 0x7FFFFFFF) % 4
        per_part[p] = per_part.get(p, 0) + 1
    got = asyncio.run(_committed(stack.bootstrap, topic, group))
    assert {p: got[p] for p in per_part} == per_part

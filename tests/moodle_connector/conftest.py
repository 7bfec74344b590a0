"""Fixtures for connector tests: a fake Moodle on loopback, unique topics on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from moodle_connector.client import MoodleClient, RetryPolicy
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack
from tests.conftest import MOODLE_RECORDED
from tests.moodle_connector.fake_moodle import FakeMoodle

FAST = RetryPolicy(attempts=4, base_s=0.01, max_s=0.05)


@pytest.fixture
def fake() -> Iterator[FakeMoodle]:
    if not MOODLE_RECORDED.is_dir():
        pytest.skip(f"recorded Moodle responses not found at {MOODLE_RECORDED}")
    with FakeMoodle() as m:
        yield m


@pytest_asyncio.fixture
async def client(fake: FakeMoodle) -> AsyncIterator[MoodleClient]:
    async with MoodleClient(fake.url, fake.token, timeout_s=2.0, retry=FAST) as c:
        yield c


@dataclass
class Topics:
    events: str
    alerts: str
    dead: str


@pytest_asyncio.fixture
async def topics(stack: Stack) -> Topics:
    tag = uuid.uuid4().hex[:8]
    t = Topics(f"t{tag}.events", f"t{tag}.alerts", f"t{tag}.dead")
    await ensure_topics(stack.bootstrap, (t.events, t.alerts, t.dead), partitions=4)
    return t


@pytest_asyncio.fixture
async def producer(stack: Stack) -> AsyncIterator[AIOKafkaProducer]:
    from moodle_connector.run import producer_for

    p = producer_for(stack.bootstrap)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest_asyncio.fixture
async def aredis(stack: Stack, redis_client: object) -> AsyncIterator[Redis]:
    r = Redis.from_url(stack.redis_url)
    try:
        yield r
    finally:
        await r.aclose()


async def read_topic(
    bootstrap: str, topic: str, expect: int | None = None, idle_s: float = 1.5
) -> list[tuple[bytes | None, bytes | None]]:
    """Everything on a topic (all partitions, from the start) as (key, value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # fetches metadata for every topic
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            n = sum(len(v) for v in batch.values())
            for msgs in batch.values():
                out.extend((m.key, m.value) for m in msgs)
            if n:
                last = loop.time()
            if expect is not None and len(out) >= expect and loop.time() - last > 0.3:
                break
            if loop.time() - last > idle_s:
                break
        return out
    finally:
        await consumer.stop()

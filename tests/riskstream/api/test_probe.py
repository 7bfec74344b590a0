"""Lag and throughput of the worker's group, read from the real broker."""

from __future__ import annotations

import time
from dataclasses import replace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi.testclient import TestClient

from riskstream.api import ApiConfig, create_app
from riskstream.api.probe import LagProbe, LagSample, sample_lag
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack
from tests.riskstream.api.conftest import AUTH


async def _produce(bootstrap: str, topic: str, n: int) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await p.start()
    try:
        for i in range(n):
            await p.send_and_wait(topic, f"e{i}".encode(), key=f"s:{i}".encode())
    finally:
        await p.stop()


async def _consume_and_commit(bootstrap: str, topic: str, group: str, n: int) -> int:
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
    )
    await c.start()
    got = 0
    try:
        deadline = time.monotonic() + 20
        while got < n and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=500, max_records=n - got)
            got += sum(len(v) for v in batch.values())
        await c.commit()
    finally:
        await c.stop()
    return got


async def test_lag_is_events_minus_committed(stack: Stack) -> None:
    topic, group = f"lagtest.{time.monotonic_ns()}", "lag-group"
    await ensure_topics(stack.bootstrap, [topic], 4)
    await _produce(stack.bootstrap, topic, 40)
    before = await sample_lag(stack.bootstrap, topic, group)
    assert (before.committed, before.end, before.lag) == (0, 40, 40)
    done = await _consume_and_commit(stack.bootstrap, topic, group, 15)
    after = await sample_lag(stack.bootstrap, topic, group)
    assert after.committed == done >= 15
    assert after.end == 40 and after.lag == 40 - done


def test_throughput_is_committed_per_second() -> None:
    probe = LagProbe("unused:1", "t", "g")
    assert probe.throughput() is None
    probe.history = [LagSample(at=100.0, committed=1000, end=5000), LagSample(105.0, 6000, 9000)]
    assert probe.throughput() == 1000.0
    assert probe.latest() is not None and probe.latest().lag == 3000  # type: ignore[union-attr]


async def test_stats_route_reports_the_lag(stack: Stack, cfg: ApiConfig) -> None:
    topic = f"statstest.{time.monotonic_ns()}"
    await ensure_topics(stack.bootstrap, [topic], 4)
    await _produce(stack.bootstrap, topic, 12)
    live_cfg = replace(cfg, kafka_bootstrap=stack.bootstrap, events_topic=topic, lag_period_s=0.2)
    with TestClient(create_app(live_cfg)) as client:
        deadline = time.monotonic() + 10
        body = client.get("/v1/stats", headers=AUTH).json()
        while body["lag"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
            body = client.get("/v1/stats", headers=AUTH).json()
        assert body["lag"] == 12 and body["lag_error"] is None
        health = client.get("/healthz").json()
        assert health["broker"] is True and health["status"] == "ok"
        assert "riskstream_stream_lag_events 12.0" in client.get("/metrics").text

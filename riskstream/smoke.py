"""A round trip through the real broker: publish a few events keyed by student, read them back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import LmsEvent, decode_event, encode


def sample_events(n: int = 6, site: str = "smoke") -> list[LmsEvent]:
    start = datetime(2024, 2, 5, 9, 0, tzinfo=UTC)
    kinds = [
        ("mod_page", "course_module", "viewed", "r"),
        ("mod_quiz", "attempt", "submitted", "u"),
        ("mod_forum", "discussion", "viewed", "r"),
    ]
    out = []
    for i in range(n):
        comp, target, action, crud = kinds[i % len(kinds)]
        raw: dict[str, object] = dict(
            site=site,
            event_id=1000 + i,
            user_id=1 + i % 2,
            course_id=2,
            time=start + timedelta(minutes=i),
            eventname=f"\\{comp}\\event\\{target}_{action}",
            component=comp,
            action=action,
            target=target,
            crud=crud,
            cmid=10 + i,
        )
        if comp == "mod_quiz":
            raw.update(attempt_id=100 + i, grade=7.5, max_grade=10.0)
        out.append(LmsEvent.model_validate(raw))
    return out


async def round_trip(
    bootstrap: str, topic: str | None = None, n: int = 6, timeout: float = 20.0
) -> list[tuple[int, LmsEvent]]:
    """Publish ``n`` events (acks=all) and consume them back; returns (partition, event)."""
    topic = topic or f"riskstream.smoke.{uuid.uuid4().hex[:8]}"
    events = sample_events(n)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for ev in events:
            await producer.send_and_wait(topic, key=ev.key, value=encode(ev))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    got: list[tuple[int, LmsEvent]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(got) < n and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                got.extend((tp.partition, decode_event(m.value)) for m in msgs if m.value)
    finally:
        await consumer.stop()
    return got

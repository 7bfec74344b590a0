"""Kafka producer for the worker's outputs (alerts, risk scores, dead letters)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from stream_app.records import OutRecord


class KafkaPublisher:
    """acks="all" and no idempotence (the embedded broker cannot do idempotent producers);
    duplicates after a crash are expected and deduped by consumers (alert_id)."""

    def __init__(self, bootstrap: str, linger_ms: int = 2) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=False,
            linger_ms=linger_ms,
            max_batch_size=1 << 20,
            request_timeout_ms=15_000,
        )

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def publish(self, records: list[OutRecord]) -> None:
        futures = [await self.producer.send(r.topic, r.value, key=r.key) for r in records]
        if futures:
            await asyncio.gather(*futures)

"""Kafka producer for the worker's outputs (alerts, risk scores, dead letters)."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from stream_app.records import OutRecord


class KafkaPublisher:
    """acks="all" and no idempotence (the embedded broker cannot do idempotent producers);
    duplicates after a crash are expected and deduped by consumers (alert_id).

    A batch's records are grouped per partition and sent as whole record batches
    (``send_batch``): one future per partition instead of one per record. Partitions are
    chosen like Kafka's default partitioner (murmur2 of the key), so keyed order holds."""

    def __init__(self, bootstrap: str, linger_ms: int = 2) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=False,
            linger_ms=linger_ms,
            max_batch_size=1 << 20,
            request_timeout_ms=15_000,
        )
        self._partitions: dict[str, int] = {}

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def _n_partitions(self, topic: str) -> int:
        n = self._partitions.get(topic)
        if n is None:
            n = self._partitions[topic] = len(await self.producer.partitions_for(topic))
        return n

    async def publish(self, records: list[OutRecord]) -> None:
        groups: dict[tuple[str, int], list[OutRecord]] = {}
        for r in records:
            n = await self._n_partitions(r.topic)
            key = r.key if r.key is not None else zlib.crc32(r.value).to_bytes(4, "big")
            part = (murmur2(key) & 0x7FFFFFFF) % n
            groups.setdefault((r.topic, part), []).append(r)
        futures: list[Any] = []
        for (topic, part), recs in groups.items():
            batch = self.producer.create_batch()
            for r in recs:
                if batch.append(key=r.key, value=r.value, timestamp=None) is None:
                    batch.close()
                    futures.append(await self.producer.send_batch(batch, topic, partition=part))
                    batch = self.producer.create_batch()
                    batch.append(key=r.key, value=r.value, timestamp=None)
            batch.close()
            futures.append(await self.producer.send_batch(batch, topic, partition=part))
        if futures:
            await asyncio.gather(*futures)

"""Transport-neutral records, so the batch logic runs under Faust or plain aiokafka."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class InRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None  # producer CreateTime; event->alert latency counts from it


class OutRecord(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes


class Publisher(Protocol):
    async def publish(self, records: list[OutRecord]) -> None:
        """Send every record and return only once the broker acknowledged all of them."""
        ...

"""Throughput and lag of the stream worker, read from the broker (no cooperation needed).

Lag = events in the topic minus the worker group's committed offsets. The embedded broker
under-reports ListOffsets, so end offsets come from a fetch's high watermark instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

log = structlog.get_logger(__name__)


@dataclass
class LagSample:
    at: float
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


async def sample_lag(bootstrap: str, topic: str, group: str, timeout_s: float = 5.0) -> LagSample:
    """Committed offsets of ``group`` and the high watermark of every partition of ``topic``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="latest",
        max_partition_fetch_bytes=1024,
        fetch_max_wait_ms=50,
        request_timeout_ms=int(timeout_s * 1000),
    )
    await admin.start()
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()  # topic metadata on first use
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        committed: dict[TopicPartition, int] = {}
        with contextlib.suppress(Exception):
            offs = await admin.list_consumer_group_offsets(group, partitions=tps)
            committed = {tp: max(o.offset, 0) for tp, o in offs.items() if o is not None}
        end: dict[TopicPartition, int] = {}
        if tps:
            consumer.assign(tps)
            for tp in tps:
                # Fetch from the committed position: the reply carries the true high watermark.
                consumer.seek(tp, committed.get(tp, 0))
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=100, max_records=1)
                hw = {tp: consumer.highwater(tp) for tp in tps}
                if all(v is not None for v in hw.values()):
                    end = {tp: int(v or 0) for tp, v in hw.items()}
                    break
            else:
                raise TimeoutError(f"no high watermark for {topic} within {timeout_s}s")
        return LagSample(
            at=time.time(),
            committed=sum(committed.values()),
            end=sum(max(end.get(tp, 0), committed.get(tp, 0)) for tp in tps),
        )
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


class LagProbe:
    """Samples every ``period_s``; keeps a short history for the throughput figure."""

    def __init__(self, bootstrap: str, topic: str, group: str, period_s: float = 5.0) -> None:
        self.bootstrap, self.topic, self.group, self.period_s = bootstrap, topic, group, period_s
        self.history: list[LagSample] = []
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                s = await sample_lag(self.bootstrap, self.topic, self.group)
                self.history = [*self.history[-59:], s]
                self.error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker down: report it, keep trying
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("lag_probe_failed", error=self.error)
            await asyncio.sleep(self.period_s)

    def latest(self) -> LagSample | None:
        return self.history[-1] if self.history else None

    def throughput(self, window_s: float = 15.0) -> float | None:
        """Events/s the worker committed over the last ``window_s`` (at least two samples)."""
        if len(self.history) < 2:
            return None
        b = self.history[-1]
        a = next((s for s in self.history if b.at - s.at <= window_s), self.history[-2])
        if a is b:
            a = self.history[-2]
        dt = b.at - a.at
        return max(b.committed - a.committed, 0) / dt if dt > 0 else None

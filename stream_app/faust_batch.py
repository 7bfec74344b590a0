"""Faust's Kafka consumer with a batch drain loop: whole fetches go to the processor.

Faust still owns the app, the topic subscription, the consumer group, rebalances and offset
commits; only its per-message path (``Consumer._drain_messages`` -> conductor -> stream ->
``Event`` -> ack, about 100 µs of CPU per message measured) is replaced by one loop that hands
each ``getmany`` result to a batch handler. How the guarantees are kept:

- **Commit only what was applied.** An offset is recorded for commit (``_applied``) only after
  the handler returned for its batch; Faust's commit timer and its commits on stop and on
  rebalance commit those offsets (``_new_offset`` is overridden to read them).
- **Rebalances.** Faust stops the flow and calls ``wait_empty`` before it gives partitions
  away; ``wait_empty`` here first waits for the batch in flight. A batch fetched before the
  rebalance is dropped (consumer generation changed, flow stopped, or partition no longer
  active), so no two workers ever apply the same partition at once.
- **Fetching overlaps processing.** The next fetch runs (in Faust's consumer thread) while the
  current batch is processed; the batch size adapts by itself: at low load a fetch returns
  what arrived during the last batch (small batches, low latency), under a backlog it returns
  up to ``max_records`` (large batches, throughput), and ``max_records`` doubles while fetches
  come back full, up to ``batch_cap``, and halves back when they do not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from stream_app.fetch_wait import FetchWaitTuner
from stream_app.records import InRecord

#: handler(records) -> None; returns only once the batch is applied (outputs acked, state written)
BatchHandler = Callable[[list[InRecord]], Awaitable[None]]


def next_fetch_size(got: int, size: int, lo: int, hi: int) -> int:
    """The fetch size after a fetch of ``got`` records with ``size``: doubles while fetches
    come back full (a backlog: large batches for throughput), halves back towards ``lo`` when
    they come back under a quarter full (low load: small batches for latency)."""
    if got >= size:
        return min(size * 2, hi)
    if got < size // 4:
        return max(size // 2, lo)
    return size


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust hard-codes ``fetch_max_wait_ms=1500``, which on Tansu (no fetch wake-ups) puts
    up to 1.5 s on every event at low load; here it starts at ``fetch_max_wait_ms`` and is
    tuned by ``FetchWaitTuner`` (see stream_app/fetch_wait.py)."""

    fetch_max_wait_ms: int = 10

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        self._tuner = FetchWaitTuner()
        return consumer

    async def fetch_batch(
        self, consumer: Any, active: set[TP], timeout: float, max_records: int
    ) -> dict[TP, list[Any]]:
        """``_fetch_records`` plus the fetch-wait tuning; runs in the consumer thread."""
        records = await self._fetch_records(
            consumer, active, timeout=timeout, max_records=max_records
        )
        raised = self._tuner.observe(consumer, active, bool(records))
        if raised:
            self.log.info("fetch wait raised to %d ms (the broker answers late)", raised)
        return dict(records or {})


class BatchConsumer(faust_aiokafka.Consumer):
    """Made by ``stream_app.app`` with the batch ``handler`` and the fetch sizes."""

    _thread: BatchConsumerThread

    def __init__(
        self,
        *args: Any,
        handler: BatchHandler | None = None,
        batch_min: int = 1000,
        batch_cap: int = 8000,
        fetch_max_wait_ms: int = 10,
        idle_timeout_s: float = 0.05,
        **kwargs: Any,
    ) -> None:
        self.handler = handler
        self.idle_timeout_s = idle_timeout_s
        self.batch_min, self.batch_cap = batch_min, max(batch_min, batch_cap)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._applied: dict[TP, int] = {}  # next offset to commit, per TP, once applied
        self._idle = asyncio.Event()
        self._idle.set()
        self._max_records = self.batch_min
        self.fetches = self.fetch_records = 0  # for tests and the profile

    def _new_consumer_thread(self) -> BatchConsumerThread:
        thread = BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)
        thread.fetch_max_wait_ms = self.fetch_max_wait_ms
        return thread

    # -- commits: the offsets the handler applied, nothing else ------------------------
    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        return (
            tp for tp in list(self._applied) if topics is None or tp in topics or tp.topic in topics
        )

    def _new_offset(self, tp: TP) -> int | None:
        return self._applied.pop(tp, None)

    async def wait_empty(self) -> None:
        """Before a rebalance gives partitions away and before stopping: the batch in flight
        finishes (and is then committed by Faust)."""
        await self._idle.wait()
        await super().wait_empty()

    # -- the batch loop ---------------------------------------------------------------
    async def _fetch(self) -> tuple[int, dict[TP, list[Any]]]:
        """One fetch through Faust's consumer thread (which owns the aiokafka consumer)."""
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        # the generation the fetch belongs to: read after a rebalance has resumed the flow,
        # or a fetch from the new assignment would be taken for a stale one and dropped
        generation = self.app.consumer_generation_id
        active = self._get_active_partitions()
        if not active:
            await asyncio.sleep(0.1)
            return generation, {}
        thread = self._thread
        consumer = thread._ensure_consumer()
        records = await thread.call_thread(
            thread.fetch_batch,
            consumer,
            active,
            timeout=self.idle_timeout_s,
            max_records=self._max_records,
        )
        return generation, records or {}

    def _take(self, generation: int, records: dict[TP, list[Any]]) -> list[InRecord]:
        """The fetched records that may still be applied (same generation, partition still
        ours, not read before), in partition order, as InRecords."""
        if (
            not records
            or not self.flow_active
            or generation != self.app.consumer_generation_id
            or self.should_stop
        ):
            return []
        return self._taken(records)

    def _stale(self, generation: int, records: dict[TP, list[Any]]) -> bool:
        """A fetch that returned records but is dropped whole (a rebalance since it began)."""
        return (
            bool(records)
            and not self.should_stop
            and (not self.flow_active or generation != self.app.consumer_generation_id)
        )

    async def _rewind(self, records: dict[TP, list[Any]]) -> None:
        """A dropped fetch moved the consumer's position past records nobody applied: seek
        each partition that is still ours back to the next offset to apply (``_read_offset``:
        the committed offset after an assignment, then one past each applied batch). Without
        it, a fetch made from a new assignment but dropped as stale was skipped for good (a
        student lost a click after a worker joined or left; tests/stream_app/test_rebalance.py).
        A partition being given away is left alone: its next owner starts at the commit."""
        active = self._get_active_partitions()
        for tp, msgs in records.items():
            nxt = self._read_offset.get(tp)
            if not msgs or tp not in active or nxt is None or msgs[-1].offset < nxt:
                continue
            try:
                await self.seek(tp, nxt)
                self.log.warning(
                    "stale fetch dropped after a rebalance: %r rewound from %r to %r",
                    tp,
                    msgs[-1].offset + 1,
                    nxt,
                )
            except Exception as exc:  # not ours any more: the rebalance settles it
                self.log.warning("rewind of %r to %r failed: %r", tp, nxt, exc)

    def _taken(self, records: dict[TP, list[Any]]) -> list[InRecord]:
        active = self._get_active_partitions()
        read = self._read_offset
        out: list[InRecord] = []
        n = 0
        for tp, msgs in records.items():
            n += len(msgs)
            if tp not in active or not msgs:
                continue
            r = read.get(tp)
            if r is not None and msgs[0].offset < r:
                msgs = [m for m in msgs if m.offset >= r]
            out.extend(
                InRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp) for m in msgs
            )
        self.fetches += 1
        self.fetch_records += n
        self._max_records = next_fetch_size(n, self._max_records, self.batch_min, self.batch_cap)
        return out

    async def _drain_messages(self, fetcher: Any) -> None:
        """Replaces Faust's per-message loop (see the module docstring)."""
        handler = self.handler
        assert handler is not None, "BatchConsumer.handler is not set"
        fetcher_stopped = fetcher._stopped.is_set
        pending: asyncio.Future[tuple[int, dict[TP, list[Any]]]] | None = None
        try:
            while not (self._stopped.is_set() or fetcher_stopped()):
                if pending is None:
                    pending = asyncio.ensure_future(self._fetch())
                generation, records = await pending
                pending = None
                batch = self._take(generation, records)
                if not batch:
                    if self._stale(generation, records):
                        await self._rewind(records)
                    continue
                pending = asyncio.ensure_future(self._fetch())  # overlaps the processing
                self._idle.clear()
                try:
                    await handler(batch)
                    self._mark_applied(batch)  # before wait_empty (rebalance, stop) resumes
                finally:
                    self._idle.set()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            if pending is not None:
                pending.cancel()

    def _mark_applied(self, batch: list[InRecord]) -> None:
        last: dict[tuple[str, int], int] = {}
        for rec in batch:
            last[(rec.topic, rec.partition)] = rec.offset
        now = time.monotonic()
        monitor = self.app.monitor
        for (topic, partition), offset in last.items():
            tp = TP(topic, partition)
            self._applied[tp] = offset + 1
            self._read_offset[tp] = offset + 1
            if monitor is not None:  # Faust's livelock detector reads this
                monitor.stream_inbound_time[tp] = now

"""Backfill: apply a recorded history (e.g. a presentation-year of OULAD) straight to Redis.

The broker is skipped: each event gets the partition Kafka would give it (murmur2 of the key
over ``partitions``, the events topic's partition count), whole partitions are spread over N
processes, and each process runs the worker's ``Processor`` over large batches with the
course-clock sweep on (per partition, as the worker: it closes course days for the alert
policy, whose capacity is per partition). The result is the state live processing gives (the
processor's result does not depend on batch boundaries; tested in
tests/stream_app/test_backfill.py). Outputs (alerts, risk scores, dead letters) go to Kafka
only with ``publish`` (a history should not page teachers); alerts reach ``rs:alerts`` either
way.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2

from stream_app.records import InRecord, OutRecord
from stream_app.runtime import WorkerConfig, use_uvloop

BACKFILL_TOPIC = "backfill"  # InRecord.topic of backfilled events (dead letters name it)


@dataclass
class BackfillReport:
    events: int = 0
    applied: int = 0
    duplicates: int = 0
    dead: int = 0
    alerts: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def shard_of(key: bytes, shards: int) -> int:
    """Kafka's default partitioner: a student's events go to one shard, in order."""
    return (murmur2(key) & 0x7FFFFFFF) % shards


class _Discard:
    """Outputs of a backfill without ``publish``: counted by the report, not sent."""

    async def publish(self, records: list[OutRecord]) -> None:
        return None


async def _apply_shard(
    cfg: WorkerConfig, shard: int, inbox: Any, progress: Any, publish: bool, partitions: int
) -> None:
    from stream_app.inference import InferenceEngine
    from stream_app.kafka_io import KafkaPublisher
    from stream_app.processor import Processor
    from stream_app.reload import find_explainer, load_handle
    from stream_app.state import connect

    engine = InferenceEngine(threads=cfg.torch_threads)
    handle = await engine.call(load_handle, cfg.registry, cfg.device)
    redis_client = connect(cfg.redis_url, socket_timeout=30)
    publisher: Any = KafkaPublisher(cfg.bootstrap) if publish else _Discard()
    if publish:
        await publisher.start()
    proc = Processor(
        redis_client,
        publisher,
        handle,
        engine=engine,
        window_days=cfg.window_days,
        explainer=find_explainer(),
        explain_levels=None if cfg.explain_levels is None else frozenset(cfg.explain_levels),
        sweep_partitions=partitions if cfg.sweep else 0,
        sweep_lag_days=cfg.sweep_lag_days,
    )
    loop = asyncio.get_running_loop()
    offset = 0
    try:
        nxt = loop.run_in_executor(None, inbox.get)
        while True:
            chunk = await nxt
            if chunk is None:
                break
            nxt = loop.run_in_executor(None, inbox.get)  # unpickle the next while applying
            recs = []
            for part, key, value in chunk:
                recs.append(InRecord(BACKFILL_TOPIC, part, offset, key, value, None))
                offset += 1
            rep = await proc.process(recs)
            progress.put(
                (
                    "batch",
                    shard,
                    rep.records,
                    rep.applied,
                    rep.duplicates,
                    rep.dead,
                    len(rep.alerts),
                )
            )
    finally:
        if publish:
            await publisher.stop()
        await redis_client.aclose()
        engine.close()


def _shard_main(
    cfg: WorkerConfig, shard: int, inbox: Any, progress: Any, publish: bool, partitions: int
) -> None:
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    use_uvloop()
    try:
        asyncio.run(_apply_shard(cfg, shard, inbox, progress, publish, partitions))
    except BaseException as exc:
        progress.put(("error", shard, f"{type(exc).__name__}: {exc}"))
        raise
    progress.put(("done", shard))


def run_backfill(
    cfg: WorkerConfig,
    records: Iterable[tuple[bytes, bytes] | tuple[bytes, bytes, Any]],
    *,
    shards: int = 2,
    batch: int = 8000,
    publish: bool = False,
    partitions: int = 4,
    on_progress: Callable[[BackfillReport], None] | None = None,
    cut_days: bool = False,
) -> BackfillReport:
    """Apply ``(key, value[, day])`` event records (in time order) with ``shards`` processes
    (with ``cut_days``, a batch never spans two values of ``day``, e.g. the event's UTC
    date; off by default: the alerts and states do not depend on the batching), as
    the worker would on an events topic of ``partitions`` partitions; ``on_progress`` gets
    the running report after each applied batch."""
    shards = max(1, min(shards, partitions))
    ctx = mp.get_context("spawn")  # torch and threads: no fork
    inboxes = [ctx.Queue(maxsize=4) for _ in range(shards)]
    progress = ctx.Queue()
    procs = [
        ctx.Process(
            target=_shard_main,
            args=(cfg, i, inboxes[i], progress, publish, partitions),
            daemon=True,
        )
        for i in range(shards)
    ]
    for p in procs:
        p.start()
    rep = BackfillReport()
    done: set[int] = set()
    t0 = time.perf_counter()

    def drain(block: bool) -> None:
        while True:
            try:
                msg = progress.get(timeout=0.2) if block else progress.get_nowait()
            except queue.Empty:
                return
            if msg[0] == "batch":
                _, _, n, applied, dup, dead, alerts = msg
                rep.events += n
                rep.applied += applied
                rep.duplicates += dup
                rep.dead += dead
                rep.alerts += alerts
                rep.seconds = time.perf_counter() - t0
                if on_progress is not None:
                    on_progress(rep)
            elif msg[0] == "done":
                done.add(msg[1])
            else:
                rep.errors.append(f"shard {msg[1]}: {msg[2]}")
                done.add(msg[1])
            block = False

    def put(i: int, item: Any) -> None:
        while True:
            try:
                inboxes[i].put(item, timeout=0.2)
                return
            except queue.Full:
                drain(False)
                if not procs[i].is_alive() or rep.errors:
                    msg = "; ".join(rep.errors) or f"backfill shard {i} died"
                    raise RuntimeError(msg) from None

    chunks: list[list[tuple[int, bytes, bytes]]] = [[] for _ in range(shards)]
    days: list[Any] = [None] * shards
    part_of: dict[bytes, int] = {}  # murmur2 is pure Python: once per student, not per event
    try:
        for rec in records:
            key, value = rec[0], rec[1]
            day = rec[2] if len(rec) > 2 else None
            part = part_of.get(key)
            if part is None:
                part = part_of[key] = shard_of(key, partitions)  # the Kafka partition
            i = part % shards  # whole partitions per process: each stays in order
            if cut_days and chunks[i] and day is not None and day != days[i]:
                put(i, chunks[i])  # optional: a batch never spans two days (admission is
                chunks[i] = []  # batch-invariant, so this only bounds a batch's span)
            days[i] = day
            chunks[i].append((part, key, value))
            if len(chunks[i]) >= batch:
                put(i, chunks[i])
                chunks[i] = []
                drain(False)
        for i in range(shards):
            if chunks[i]:
                put(i, chunks[i])
            put(i, None)
        while len(done) < shards:
            drain(True)
            if any(not p.is_alive() and i not in done for i, p in enumerate(procs)):
                drain(False)
                if len(done) < shards:
                    rep.errors.append("a backfill process exited without finishing")
                    break
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
    rep.seconds = time.perf_counter() - t0
    return rep

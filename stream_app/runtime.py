"""Wiring shared by both drivers (Faust app and plain aiokafka loop): config, resources,
processor, model watcher, lag gauge."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aredis
import structlog
from aiokafka import AIOKafkaConsumer

from contracts import TOPICS
from stream_app.feedback import FeedbackConsumer
from stream_app.fetch_wait import FetchWaitTuner
from stream_app.inference import InferenceEngine
from stream_app.kafka_io import KafkaPublisher
from stream_app.metrics import Metrics
from stream_app.monitor import StreamMonitor
from stream_app.processor import BatchReport, Processor
from stream_app.records import InRecord
from stream_app.reload import ModelWatcher, find_explainer, load_handle
from stream_app.state import connect

log = structlog.get_logger("stream_app.runtime")


@dataclass(frozen=True)
class WorkerConfig:
    """Plain values handed down by the CLI (stream_app never reads settings itself)."""

    bootstrap: str
    redis_url: str
    registry: Path
    device: str = "cpu"
    group: str = "riskstream-worker"
    topic: str = TOPICS.events
    batch_max: int = 1000  # fetch size at low load (Faust driver: grows under a backlog)
    batch_within: float = 0.05  # longest wait for a fetch when nothing is there
    # largest fetch under a backlog (Faust driver); 0 = batch_max, i.e. no growth. Admission
    # is batch-invariant (scripts/batching_check.py: 50- and 30,000-event batches give the
    # same alerts and states), so a backlog drains in growing batches
    batch_cap: int = 8000
    fetch_max_wait_ms: int = 10  # broker-side fetch wait (Tansu answers only after it)
    window_days: int = 28
    metrics_port: int = 0
    reload_every: float = 5.0
    session_timeout_ms: int = 10_000
    torch_threads: int = 1
    sweep: bool = True  # advance idle students on the course clock; closes days for alerts
    sweep_lag_days: int = 1
    explain_levels: tuple[str, ...] | None = ("high",)  # None: explain every alert
    feedback: bool = True  # teachers' feedback: store it, hold back contacted students
    sites: frozenset[str] = frozenset()  # sites whose events are applied (empty = every site)
    max_id_jump: int = 100_000_000  # see Processor: implausible event ids
    metrics_host: str = "127.0.0.1"
    monitor: bool = True  # drift counts + withdrawal outcomes (stream_app/monitor.py)


def use_uvloop() -> bool:
    """Install uvloop's event loop policy (what Faust's ``-L uvloop`` does when ``faust`` is
    imported with it in ``sys.argv``); False when uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


class Runtime:
    """Owns the Redis client, the producer, the inference thread and the processor."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.engine = InferenceEngine(threads=cfg.torch_threads)
        self.redis: aredis.Redis | None = None  # made in start(): they need the running loop
        self.publisher: KafkaPublisher | None = None
        self.processor: Processor | None = None
        self._watch: asyncio.Task[None] | None = None
        self._feedback: asyncio.Task[None] | None = None
        self._feedback_stop = asyncio.Event()

    async def start(self) -> Processor:
        cfg = self.cfg
        # Throughput: every batch allocates many short-lived objects; collect young objects
        # less often and keep the (large, long-lived) startup objects out of collections.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        handle = await self.engine.call(load_handle, cfg.registry, cfg.device)
        self.redis = connect(cfg.redis_url, socket_timeout=10)
        self.publisher = KafkaPublisher(cfg.bootstrap)
        await self.publisher.start()
        self.processor = Processor(
            self.redis,
            self.publisher,
            handle,
            engine=self.engine,
            window_days=cfg.window_days,
            metrics=self.metrics,
            explainer=find_explainer(),
            sweep_lag_days=cfg.sweep_lag_days,
            explain_levels=None if cfg.explain_levels is None else frozenset(cfg.explain_levels),
            feedback=cfg.feedback,
            sites=cfg.sites,
            max_id_jump=cfg.max_id_jump,
        )
        if cfg.feedback:  # RISKSTREAM_STREAM_FEEDBACK (on): see ARCHITECTURE, feedback
            # everything on the topic before the first event batch: feedback published while
            # the worker was down (or before a crash) counts for the replayed days too
            consumer = FeedbackConsumer(cfg.bootstrap, self.redis)
            await consumer.catch_up()
            self._feedback = asyncio.create_task(consumer.run(self._feedback_stop))
        if cfg.monitor:
            self.processor.monitor = StreamMonitor(cfg.registry, self.metrics.registry)
        watcher = ModelWatcher(cfg.registry, cfg.device, self.engine, cfg.reload_every)
        self._watch = asyncio.create_task(watcher.run(self.processor))
        self.metrics.serve(cfg.metrics_port, cfg.metrics_host)
        loop = type(asyncio.get_running_loop())
        log.info(
            "worker.started",
            model=handle.version,
            device=cfg.device,
            group=cfg.group,
            loop=f"{loop.__module__}.{loop.__name__}",
            sites=",".join(sorted(cfg.sites)) or "all (set RISKSTREAM_SITES)",
        )
        return self.processor

    async def stop(self) -> None:
        if self._feedback is not None:
            self._feedback_stop.set()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._feedback, timeout=5)
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.publisher is not None:
            await self.publisher.stop()
        if self.redis is not None:
            if self.processor is not None and self.processor.monitor is not None:
                with contextlib.suppress(Exception):  # counts only: never block a shutdown
                    await self.processor.monitor.flush(self.redis)
            await self.redis.aclose()
        self.engine.close()

    def set_partitions(self, n: int | None) -> None:
        """Sweeps need the events topic's partition count (to pick their own students)."""
        if self.cfg.sweep and self.processor is not None and n:
            self.processor.sweep_partitions = n

    def observe_lag(self, partition: int, highwater: int | None, next_offset: int) -> None:
        if highwater is not None:
            self.metrics.lag.labels(str(partition)).set(max(0, highwater - next_offset))

    @staticmethod
    def log_batch(rep: BatchReport) -> None:
        if rep.alerts or rep.dead:
            log.info(
                "batch",
                records=rep.records,
                applied=rep.applied,
                duplicates=rep.duplicates,
                dead=rep.dead,
                alerts=len(rep.alerts),
                ms=round(rep.total_s * 1000, 1),
                inference_ms=round(rep.inference_s * 1000, 1),
                sweep_ms=round(rep.sweep_s * 1000, 1),
                release_ms=round(rep.release_s * 1000, 1),
                explain_ms=round(rep.explain_s * 1000, 1),
            )


async def run_aiokafka(cfg: WorkerConfig, stop: asyncio.Event | None = None) -> None:
    """The plain-aiokafka driver: getmany -> process -> commit. Offsets are committed only
    after ``process`` returned, i.e. after outputs were acked and the state write succeeded."""
    rt = Runtime(cfg)
    proc = await rt.start()
    consumer = AIOKafkaConsumer(
        cfg.topic,
        bootstrap_servers=cfg.bootstrap,
        group_id=cfg.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=cfg.session_timeout_ms,
        heartbeat_interval_ms=max(500, cfg.session_timeout_ms // 4),
        max_poll_records=cfg.batch_max,
        fetch_max_wait_ms=cfg.fetch_max_wait_ms,
    )
    await consumer.start()
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    tuner = FetchWaitTuner()
    try:
        while not stop.is_set():
            got = await consumer.getmany(
                timeout_ms=int(cfg.batch_within * 1000), max_records=cfg.batch_max
            )
            tuner.observe(consumer, consumer.assignment(), bool(got))
            if not got:
                continue
            records = [
                InRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                for msgs in got.values()
                for m in msgs
            ]
            rt.set_partitions(len(consumer.partitions_for_topic(cfg.topic) or ()))
            rep = await proc.process(records)
            rt.log_batch(rep)
            await consumer.commit()
            for tp, msgs in got.items():
                rt.observe_lag(tp.partition, consumer.highwater(tp), msgs[-1].offset + 1)
    finally:
        await consumer.stop()
        await rt.stop()

"""The Faust worker: Faust owns the app, the topic, the consumer group, rebalances and offset
commits; whole fetches go to the processor (``stream_app.faust_batch.BatchConsumer``) instead
of Faust's per-message stream/agent path, which cost most of the worker's speed.

Acks: an offset is committed only after ``handle`` returned for its batch (outputs acked by
the broker, then the Redis transaction). Traps handled here:

- An exception in ``handle`` would let later batches commit past unapplied events.
  ``Processor.process`` never raises for bad data (dead letters) or outages (it retries); a
  bug, or a cancellation in the middle of a batch (shutdown while Redis is down) ends the
  process without a commit (``os._exit``), so those events are replayed.
- No Faust Tables (changelog recovery loses updates with the embedded broker), one batch in
  flight per process (Faust agent concurrency > 1 lost updates and order), no web server
  (``--without-web``).
- uvloop: Faust picks its loop from ``-L uvloop`` in ``sys.argv`` when ``faust`` is first
  imported, which is before ``run_worker`` runs; ``run_worker`` installs the uvloop policy
  itself (``use_uvloop``) before anything makes a loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from typing import Any

import faust
import structlog
from faust.types import TP

from stream_app.faust_batch import BatchConsumer
from stream_app.processor import FatalError
from stream_app.records import InRecord
from stream_app.runtime import Runtime, WorkerConfig, use_uvloop

log = structlog.get_logger("stream_app.app")
EXIT_UNAPPLIED = 70
_SHUTDOWN_GRACE_S = 5.0
_DATADIRS: list[str] = []  # Faust needs a datadir; nothing is stored there, removed on exit


def _remove_datadirs() -> None:
    while _DATADIRS:
        shutil.rmtree(_DATADIRS.pop(), ignore_errors=True)


def _exit_unapplied() -> None:
    """End without committing (the batch is replayed), leaving no temporary folder."""
    _remove_datadirs()
    sys.stderr.flush()
    os._exit(EXIT_UNAPPLIED)


class _App(faust.App):
    """A Faust app whose consumer hands whole fetches to ``handle`` (set by ``make_app``)."""

    batch_config: dict[str, Any] = {}

    def _new_consumer(self) -> Any:
        consumer = BatchConsumer(
            self.transport,
            callback=self.topics.on_message,
            loop=self.transport.loop,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            **self.batch_config,
        )
        return consumer


def make_app(cfg: WorkerConfig) -> faust.App:
    datadir = tempfile.mkdtemp(prefix="riskstream-faust-")
    _DATADIRS.append(datadir)
    app = _App(
        cfg.group,
        broker=f"kafka://{cfg.bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=cfg.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.5, cfg.session_timeout_ms / 4000),
        broker_max_poll_records=cfg.batch_max,
        consumer_max_fetch_size=8 << 20,
        producer_acks=-1,
        topic_disable_leader=True,
        topic_allow_declare=False,
        web_enabled=False,
        datadir=datadir,  # nothing is stored there
    )
    topic = app.topic(cfg.topic, key_type=bytes, value_type=bytes)
    app.topics.add(topic)  # subscribed by Faust's conductor; consumed by the batch loop
    rt = Runtime(cfg)
    started: dict[str, Any] = {}

    async def apply(records: list[InRecord]) -> None:
        proc = started.get("proc")
        if proc is None:
            proc = started["proc"] = await rt.start()
        if cfg.sweep and not proc.sweep_partitions:
            rt.set_partitions(app.consumer.topic_partitions(cfg.topic))
        rep = await proc.process(records)
        rt.log_batch(rep)

    async def handle(records: list[InRecord]) -> None:
        task = asyncio.ensure_future(apply(records))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            done, _ = await asyncio.wait({task}, timeout=_SHUTDOWN_GRACE_S)
            if not done or task.exception() is not None:
                log.error("worker.exit_unapplied", events=len(records))
                _exit_unapplied()
            raise
        except FatalError as exc:  # retrying cannot fix it: one clear line, no traceback
            log.error("worker.fatal", error=str(exc), events=len(records))
            _exit_unapplied()
        except Exception as exc:  # a bug: never commit past this batch
            log.exception("worker.batch_failed", error=str(exc))
            _exit_unapplied()
        last: dict[int, int] = {}
        for rec in records:
            last[rec.partition] = rec.offset
        consumer = app.consumer
        for part, off in last.items():
            try:
                hw = consumer.highwater(TP(cfg.topic, part))
            except Exception:
                hw = None
            rt.observe_lag(part, hw, off + 1)

    app.batch_config = {
        "handler": handle,
        "batch_min": cfg.batch_max,
        "batch_cap": max(cfg.batch_max, cfg.batch_cap),
        "fetch_max_wait_ms": cfg.fetch_max_wait_ms,
        "idle_timeout_s": cfg.batch_within,
    }

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _close(_: Any, **kwargs: Any) -> None:
        if "proc" in started:
            await rt.stop()

    return app


def run_worker(cfg: WorkerConfig, loglevel: str = "warning") -> None:
    """Start one Faust worker in this process (blocks): no web server, uvloop."""
    use_uvloop()
    app = make_app(cfg)
    level = {"warning": "warn", "critical": "crit", "notset": "info"}.get(loglevel, loglevel)
    if level not in {"crit", "error", "warn", "info", "debug"}:
        level = "info"
    sys.argv = ["riskstream-worker", "worker", "--without-web", "-l", level]
    # Faust's worker command redirects stderr into logging at WARNING (hard-coded in the
    # command class, the app setting is ignored), which tagged every structlog line of ours,
    # info included, "[WARNING]". Our lines already carry their own level.
    from faust.cli.worker import worker as worker_command

    worker_command.redirect_stdouts = False
    try:
        app.main()
    finally:
        _remove_datadirs()

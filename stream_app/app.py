"""The Faust worker: one agent consuming the events topic in micro-batches.

Acks: ``stream.take_events`` acks a batch's events only after the agent body returned for
that batch (faust/streams.py), and Faust commits acked offsets. The agent therefore processes
each batch fully (outputs acked by the broker, then the Redis transaction) before taking the
next. Two traps handled here:

- The generator acks in a ``finally``, so an exception in the body would ack unapplied
  events. ``Processor.process`` never raises for bad data (dead letters) or outages (it
  retries), and a cancellation in the middle of a batch (shutdown while Redis is down) ends
  the process without a commit (``os._exit``), so those events are replayed.
- No Faust Tables (changelog recovery loses updates with the embedded broker), agent
  concurrency 1 (concurrency > 1 lost updates and order), no web server (``--without-web``).
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

from stream_app.processor import FatalError
from stream_app.records import InRecord
from stream_app.runtime import Runtime, WorkerConfig

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


def make_app(cfg: WorkerConfig) -> faust.App:
    datadir = tempfile.mkdtemp(prefix="riskstream-faust-")
    _DATADIRS.append(datadir)
    app = faust.App(
        cfg.group,
        broker=f"kafka://{cfg.bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=cfg.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.5, cfg.session_timeout_ms / 4000),
        broker_max_poll_records=cfg.batch_max,
        stream_buffer_maxsize=max(4 * cfg.batch_max, 4096),
        producer_acks=-1,
        topic_disable_leader=True,
        topic_allow_declare=False,
        web_enabled=False,
        datadir=datadir,  # nothing is stored there
    )
    topic = app.topic(cfg.topic, key_type=bytes, value_type=bytes)
    rt = Runtime(cfg)
    started: dict[str, Any] = {}

    async def handle(records: list[InRecord]) -> None:
        proc = started.get("proc")
        if proc is None:
            proc = started["proc"] = await rt.start()
        if cfg.sweep and not proc.sweep_partitions:
            rt.set_partitions(app.consumer.topic_partitions(cfg.topic))
        rep = await proc.process(records)
        rt.log_batch(rep)

    @app.agent(topic, concurrency=1)
    async def process_events(stream: Any) -> None:
        async for batch in stream.take_events(cfg.batch_max, within=cfg.batch_within):
            records = []
            last: dict[int, int] = {}
            for ev in batch:
                m = ev.message
                ts = int(m.timestamp * 1000) if m.timestamp else None
                records.append(InRecord(m.topic, m.partition, m.offset, m.key, m.value, ts))
                last[m.partition] = m.offset
            task = asyncio.ensure_future(handle(records))
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
            except Exception as exc:  # a bug: never let take_events ack this batch
                log.exception("worker.batch_failed", error=str(exc))
                _exit_unapplied()
            for part, off in last.items():
                tp = next(iter(ev.message.tp for ev in batch if ev.message.partition == part))
                try:
                    hw = app.consumer.highwater(tp)
                except Exception:
                    hw = None
                rt.observe_lag(part, hw, off + 1)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _close(_: Any, **kwargs: Any) -> None:
        if "proc" in started:
            await rt.stop()

    return app


def run_worker(cfg: WorkerConfig, loglevel: str = "warning") -> None:
    """Start one Faust worker in this process (blocks): no web server, uvloop."""
    app = make_app(cfg)
    loop: list[str] = []
    try:
        import uvloop  # noqa: F401

        loop = ["-L", "uvloop"]
    except ImportError:
        pass
    level = {"warning": "warn", "critical": "crit", "notset": "info"}.get(loglevel, loglevel)
    if level not in {"crit", "error", "warn", "info", "debug"}:
        level = "info"
    sys.argv = ["riskstream-worker", *loop, "worker", "--without-web", "-l", level]
    # Faust's worker command redirects stderr into logging at WARNING (hard-coded in the
    # command class, the app setting is ignored), which tagged every structlog line of ours,
    # info included, "[WARNING]". Our lines already carry their own level.
    from faust.cli.worker import worker as worker_command

    worker_command.redirect_stdouts = False
    try:
        app.main()
    finally:
        _remove_datadirs()

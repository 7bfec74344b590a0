"""``riskstream worker`` and ``riskstream alerts tail``: thin typer wrappers over stream_app."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

import typer
from rich.console import Console

from riskstream.logs import configure_logging
from riskstream.reachable import fail, require
from riskstream.settings import Settings, load_settings

console = Console()
alerts_app = typer.Typer(help="Read the alerts topic.", no_args_is_help=True)


def _settings() -> Settings:
    s = load_settings()
    configure_logging(s.log_level, s.log_json)
    return s


def _config(s: Settings, device: str) -> Any:
    from stream_app.runtime import WorkerConfig

    return WorkerConfig(
        bootstrap=s.kafka_bootstrap,
        redis_url=s.redis_url,
        registry=s.model_registry,
        device=device,
        group=s.stream_group,
        topic=s.stream_events_topic,
        batch_max=s.stream_batch_max,
        batch_within=s.stream_batch_within,
        batch_cap=s.stream_batch_cap,
        fetch_max_wait_ms=s.stream_fetch_max_wait_ms,
        window_days=s.stream_window_days,
        metrics_port=s.stream_metrics_port,
        reload_every=s.stream_reload_every,
        session_timeout_ms=s.stream_session_timeout_ms,
        sweep=s.stream_sweep,
        sweep_lag_days=s.stream_sweep_lag_days,
        explain_levels=_levels(s.stream_explain_levels),
        feedback=s.stream_feedback,
        sites=s.site_list,
        max_id_jump=s.stream_max_id_jump,
        metrics_host=s.stream_metrics_host,
        monitor=s.stream_monitor,
    )


def _levels(text: str) -> tuple[str, ...] | None:
    """``RISKSTREAM_STREAM_EXPLAIN_LEVELS``: "high", "medium,high" or "*" (every level)."""
    if text.strip() == "*":
        return None
    return tuple(x.strip() for x in text.split(",") if x.strip())


def worker(
    device: str = typer.Option(
        "", "--device", help="cpu or cuda (default: RISKSTREAM_DEVICE); cuda falls back to cpu"
    ),
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="Worker processes"),
    engine: str = typer.Option(
        "faust", "--engine", help="faust (default) or aiokafka (plain getmany loop)"
    ),
) -> None:
    """Run the stream worker: events in, per-student state in Redis, alerts and risk out."""
    s = _settings()
    dev = device or s.device
    if dev not in {"auto", "cpu", "cuda"}:
        raise fail(f"--device must be cpu or cuda, not {dev!r}", 2)
    if engine not in {"faust", "aiokafka"}:
        raise fail(f"--engine must be faust or aiokafka, not {engine!r}", 2)
    from models.registry import Registry

    if Registry(s.model_registry).current_version() is None:
        raise fail(
            f"no current model in {s.model_registry}; train one with `riskstream train` "
            "(or install the shipped one: riskstream model import) or set "
            "RISKSTREAM_MODEL_REGISTRY"
        )
    require(kafka=s.kafka_bootstrap, redis_url=s.redis_url)
    if concurrency > 1:
        raise typer.Exit(_supervise(s, dev, concurrency, engine))
    cfg = _config(s, dev)
    if engine == "aiokafka":
        from stream_app.processor import FatalError
        from stream_app.runtime import run_aiokafka

        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(run_aiokafka(cfg))
        except FatalError as exc:  # retrying cannot fix it: one line, nothing committed
            raise fail(str(exc), 70) from None
        return
    from stream_app.app import run_worker

    run_worker(cfg, loglevel=s.log_level.lower())


def _supervise(s: Settings, device: str, n: int, engine: str) -> int:
    """N worker processes in one consumer group; SIGINT/SIGTERM are passed on to them."""
    procs = []
    for i in range(n):
        env = dict(os.environ)
        if s.stream_metrics_port:
            env["RISKSTREAM_STREAM_METRICS_PORT"] = str(s.stream_metrics_port + i)
        cmd = [sys.executable, "-m", "riskstream", "worker", "--device", device]
        procs.append(subprocess.Popen([*cmd, "--engine", engine], env=env))
    console.print(f"started {n} workers: pids {[p.pid for p in procs]}")

    def forward(signum: int, _: Any) -> None:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [p.wait() for p in procs]
    return max(codes, default=0)


@alerts_app.command("tail")
def alerts_tail(
    user: int | None = typer.Option(None, "--user", help="Only this student"),
    course: int | None = typer.Option(None, "--course", help="Only this course"),
    site: str | None = typer.Option(None, "--site", help="Only this site"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Replay old alerts"),
    max_alerts: int = typer.Option(0, "--max", min=0, help="Stop after N alerts (0 = never)"),
    timeout: float = typer.Option(0, "--timeout", min=0, help="Stop after N s (0 = never)"),
    as_json: bool = typer.Option(False, "--json", help="One RiskAlert JSON per line"),
) -> None:
    """Print alerts as they arrive: the example consumer for other campus systems.

    It reads riskstream.alerts without a consumer group, decodes each message with the
    published contract, and drops repeats by alert_id (after a worker crash the same alert
    can be published twice; it keeps its id).
    """
    s = _settings()
    require(kafka=s.kafka_bootstrap)
    from aiokafka.errors import KafkaError

    try:
        n = asyncio.run(
            _tail(
                s.kafka_bootstrap, user, course, site, from_beginning, max_alerts, timeout, as_json
            )
        )
    except (KafkaError, OSError) as exc:
        raise fail(
            f"reading alerts from Kafka at {s.kafka_bootstrap} failed "
            f"({type(exc).__name__}: {exc}); is the stack up (riskstream stack up)?"
        ) from None
    if not as_json:
        console.print(f"{n} alert(s)")


async def _tail(
    bootstrap: str,
    user: int | None,
    course: int | None,
    site: str | None,
    from_beginning: bool,
    max_alerts: int,
    timeout: float,
    as_json: bool,
) -> int:
    from aiokafka import AIOKafkaConsumer

    from contracts import TOPICS, ContractError, RiskAlert, decode

    consumer = AIOKafkaConsumer(
        TOPICS.alerts,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    seen: set[str] = set()
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while deadline is None or time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    try:
                        a = decode(RiskAlert, m.value or b"")
                    except ContractError as exc:
                        console.print(f"[yellow]skipped an invalid alert:[/] {exc}")
                        continue
                    if a.alert_id in seen:
                        continue
                    if (user is not None and a.user_id != user) or (
                        course is not None and a.course_id != course
                    ):
                        continue
                    if site is not None and a.site != site:
                        continue
                    seen.add(a.alert_id)
                    if as_json:
                        typer.echo(a.model_dump_json())
                    else:
                        why = f" — {a.explanation}" if a.explanation else ""
                        console.print(
                            f"{a.created_at:%Y-%m-%d %H:%M:%S} [bold]{a.level.value}[/] "
                            f"site={a.site} user={a.user_id} course={a.course_id} "
                            f"risk={a.risk:.2f} day={a.day} model={a.model_version}{why}"
                        )
                    if max_alerts and len(seen) >= max_alerts:
                        return len(seen)
    finally:
        await consumer.stop()
    return len(seen)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.add_typer(alerts_app, name="alerts")

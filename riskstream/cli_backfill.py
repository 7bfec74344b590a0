"""``riskstream backfill``: apply a recorded history straight to Redis, with a progress bar."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import redis
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from contracts import encode

console = Console()


def backfill_command(
    oulad: str = typer.Option(
        ..., help="OULAD selection: MODULE/PRESENTATION (GGG/2014B), a presentation (2014B)"
    ),
    max_students: int = typer.Option(0, min=0, help="First N students per course (0 = all)"),
    site: str = typer.Option("", help="Site id on the events (default: settings' site)"),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Processes (0 = one per CPU core); split by student"
    ),
    batch: int = typer.Option(8000, min=1, help="Events per processor batch"),
    partitions: int = typer.Option(
        4,
        min=1,
        help="Partitions of the events topic the live worker reads (`stack up` makes 4); the "
        "course-clock sweep and the alert capacity are per partition",
    ),
    publish: bool = typer.Option(
        False, "--publish", help="Also send alerts, risk scores and dead letters to Kafka"
    ),
    device: str = typer.Option("cpu", help="cpu or cuda"),
) -> None:
    """Apply a history of events to the state in Redis without the broker (N processes,
    large batches): the same final state as the worker consuming the same events.

    Alerts go to rs:alerts; to Kafka only with --publish (a history should not page
    teachers). Rerunning is safe: events already applied are skipped by event id.
    """
    from riskstream.cli import _fail, _settings
    from riskstream.cli_stream import _config
    from riskstream.replay import OuladSourceError, load_oulad, write_context
    from stream_app.backfill import run_backfill

    s = _settings()
    from models.registry import Registry

    if Registry(s.model_registry).current_version() is None:
        raise _fail(
            f"no current model in {s.model_registry}; train one with `riskstream train` or "
            "set RISKSTREAM_MODEL_REGISTRY"
        )
    from riskstream.reachable import redis_down, require

    require(kafka=s.kafka_bootstrap if publish else None, redis_url=s.redis_url)
    try:
        src = load_oulad(s.data_dir, oulad, site or s.site or "oulad", max_students)
    except OuladSourceError as exc:
        raise _fail(str(exc)) from None
    client = redis.Redis.from_url(s.redis_url)
    try:
        ctx = write_context(client, calendars=src.calendars, profiles=src.profiles)
    except redis.RedisError as exc:
        raise _fail(f"{redis_down(s.redis_url)} ({type(exc).__name__})") from None
    finally:
        client.close()
    n = workers or os.cpu_count() or 1
    console.print(
        f"redis: {ctx.calendars} calendar(s), {ctx.profiles} profile(s); applying "
        f"{src.total:,} events of OULAD {oulad} with {n} process(es), batches of {batch:,}"
        f"{', publishing outputs' if publish else ''}"
    )

    def records() -> Iterator[tuple[bytes, bytes, int]]:
        # the event's UTC date rides along (run_backfill(cut_days=True) cuts batches there)
        if src.records is not None:  # formatted straight from the OULAD table (fast)
            yield from src.records()
            return
        for ev in src.events:
            yield ev.key, encode(ev), ev.time.toordinal()

    bar = Progress(
        TextColumn("[bold]backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]:>8} ev/s  {task.fields[alerts]} alerts"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with bar:
        task = bar.add_task("backfill", total=src.total, rate="-", alerts=0)

        def on_progress(rep: Any) -> None:
            bar.update(
                task, completed=rep.events, rate=f"{rep.events_per_s:,.0f}", alerts=rep.alerts
            )

        rep = run_backfill(
            _config(s, device),
            records(),
            shards=n,
            batch=batch,
            publish=publish,
            partitions=partitions,
            on_progress=on_progress,
        )
    table = Table("", "value", title="backfill")
    for k, v in (
        ("events", f"{rep.events:,}"),
        ("applied", f"{rep.applied:,}"),
        ("duplicates (already applied)", f"{rep.duplicates:,}"),
        ("dead letters", f"{rep.dead:,}"),
        ("alerts", f"{rep.alerts:,}"),
        ("seconds", f"{rep.seconds:,.1f}"),
        ("events/s", f"{rep.events_per_s:,.0f}"),
    ):
        table.add_row(k, v)
    console.print(table)
    for err in rep.errors:
        console.print(f"[red]error:[/] {err}")
    if rep.errors or rep.events < src.total:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("backfill")(backfill_command)


__all__ = ["backfill_command", "register"]

"""``riskstream replay``: the command around ``riskstream.replay`` (progress bar, Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

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
)
from rich.table import Table

from contracts import TOPICS, CourseCalendar, LmsEvent, StudentProfile
from riskstream.replay import (
    OuladSourceError,
    Pace,
    ReplayReport,
    derive_calendars,
    load_jsonl,
    load_models_jsonl,
    load_oulad,
    oulad_outcomes,
    replay,
    write_context,
    write_outcomes,
)

console = Console()
T = TypeVar("T")


def make_pace(days_per_s: float | None, rate: float | None) -> Pace:
    if days_per_s is not None and rate is not None:
        raise typer.BadParameter("use --days-per-s or --rate, not both")
    if days_per_s is not None:
        return Pace.days_per_second(days_per_s)
    return Pace(events_per_s=rate)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM) asks the loop to stop cleanly; a second one is not caught."""
    loop = asyncio.get_running_loop()

    def first(sig: signal.Signals) -> None:
        stop.set()
        loop.remove_signal_handler(sig)

    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        loop.add_signal_handler(sig, first, sig)
    try:
        yield
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)


def progress_bar(con: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]:>8} ev/s  course time {task.fields[at]}"),
        TimeElapsedColumn(),
        console=con or console,
        transient=False,
    )


async def replay_with_progress(
    events: Iterable[LmsEvent],
    bootstrap: str,
    pace: Pace,
    topic: str,
    dead_letters: list[Any] | None = None,
    description: str = "replay",
    con: Console | None = None,
    total: int | None = None,
) -> ReplayReport:
    """Replay with a rich bar; Ctrl-C ends it cleanly and still returns the counts."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with progress_bar(con) as bar, stop_on_signals(stop):
        task = bar.add_task(description, total=total, rate="-", at="-")

        def on_progress(n: int, ev: LmsEvent) -> None:
            dt = loop.time() - t0
            bar.update(
                task,
                completed=n,
                rate=f"{n / dt:,.0f}" if dt > 0 else "-",
                at=ev.time.strftime("%Y-%m-%d %H:%M"),
            )

        rep = await replay(
            events,
            bootstrap,
            topic=topic,
            pace=pace,
            stop=stop,
            on_progress=on_progress,
            dead_letters=dead_letters or [],
        )
        bar.update(task, completed=rep.sent, rate=f"{rep.events_per_s:,.0f}")
    return rep


def print_report(rep: ReplayReport, con: Console | None = None) -> None:
    con = con or console
    table = Table("", "value", title="replay")
    for k, v in rep.as_dict().items():
        table.add_row(k, str(v))
    con.print(table)
    for err in rep.errors:
        con.print(f"[red]send failed:[/] {err}")
    if rep.interrupted:
        con.print(
            f"[yellow]stopped early[/]: {rep.acked} events were sent and acknowledged; "
            "replaying the same input again is safe (the worker skips event ids it applied)"
        )


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def replay_command(
    files: list[Path] = typer.Argument(
        None, help="JSONL files of LmsEvents (or folders of them, e.g. a site's archive)"
    ),
    oulad: str = typer.Option(
        "",
        help="Replay OULAD instead of files: MODULE/PRESENTATION (e.g. GGG/2014B), "
        "a presentation (2014B) or 'all'",
    ),
    max_students: int = typer.Option(0, min=0, help="OULAD: first N students only (0 = all)"),
    days_per_s: float | None = typer.Option(
        None, "--days-per-s", help="Pace: course days per wall second"
    ),
    rate: float | None = typer.Option(None, "--rate", help="Pace: events per second"),
    calendars: Path | None = typer.Option(None, help="JSONL of CourseCalendars (files mode)"),
    profiles: Path | None = typer.Option(None, help="JSONL of StudentProfiles (files mode)"),
    site: str = typer.Option("", help="OULAD: site id on the events (default: settings' site)"),
    topic: str = typer.Option(TOPICS.events, help="Target topic"),
    outcomes: bool = typer.Option(
        True, help="OULAD: write the final results to Redis once every event was sent"
    ),
) -> None:
    """Publish recorded events in time order, keyed by student, at a chosen pace.

    Default pace: as fast as possible. Calendars and profiles go to Redis first.

    Ctrl-C stops cleanly and reports what was sent.
    """
    from riskstream.cli import _fail, _settings

    s = _settings()
    pace = make_pace(days_per_s, rate)
    events: Iterable[LmsEvent]
    src = None
    cals: list[CourseCalendar] = []
    profs: list[StudentProfile] = []
    derived: list[CourseCalendar] = []
    bad: list[Any] = []
    if oulad:
        if files:
            raise _fail("give JSONL files or --oulad, not both")
        try:
            src = load_oulad(s.data_dir, oulad, site or s.site or "oulad", max_students)
        except OuladSourceError as exc:
            raise _fail(str(exc)) from None
        events, total, cals, profs = src.events, src.total, src.calendars, src.profiles
        desc = f"OULAD {oulad}"
    else:
        if not files:
            raise _fail("nothing to replay: give JSONL files/folders or --oulad MODULE/PRES")
        try:
            loaded = load_jsonl(files)
            cals = load_models_jsonl(calendars, CourseCalendar) if calendars else []
            profs = load_models_jsonl(profiles, StudentProfile) if profiles else []
        except (FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from None
        events, bad = loaded.events, loaded.bad
        total = len(events)
        given = {(c.site, c.course_id) for c in cals}
        derived = [c for c in derive_calendars(events) if (c.site, c.course_id) not in given]
        desc = "replay"
        for b in bad[:5]:
            console.print(f"[yellow]bad line[/] {b.where}: {b.reason}")
        if bad:
            console.print(f"{len(bad)} bad line(s) go to {TOPICS.dead_letter} with the reason")

    from riskstream.reachable import redis_down, require

    require(kafka=s.kafka_bootstrap, redis_url=s.redis_url)  # before anything is written
    client = redis.Redis.from_url(s.redis_url)
    try:
        ctx = write_context(client, calendars=cals, profiles=profs, derived=derived)
    except redis.RedisError as exc:
        raise _fail(
            f"cannot write calendars/profiles: {redis_down(s.redis_url)} ({type(exc).__name__})"
        ) from None
    finally:
        client.close()
    console.print(
        f"redis: {ctx.calendars} calendar(s), {ctx.derived_calendars} derived calendar(s) "
        f"(kept if one existed), {ctx.profiles} profile(s); "
        f"sending {total:,} events to {topic} at {s.kafka_bootstrap}, {pace.describe()}"
    )
    try:
        rep = run_async(
            replay_with_progress(
                events,
                s.kafka_bootstrap,
                pace,
                topic,
                [b.dead_letter() for b in bad],
                desc,
                total=total,
            )
        )
    except Exception as exc:  # broker unreachable: say what to do
        raise _fail(
            f"replay to {s.kafka_bootstrap} failed: {type(exc).__name__}: {exc}; is the broker "
            "running (riskstream stack up) and RISKSTREAM_KAFKA_BOOTSTRAP right?"
        ) from None
    print_report(rep)
    if src is not None and outcomes and not rep.interrupted and not rep.failed:
        # the presentation is over in course time: its final results are the ground truth
        # of live calibration (riskstream/api/monitoring.py)
        client = redis.Redis.from_url(s.redis_url)
        try:
            n = write_outcomes(client, oulad_outcomes(src, site or s.site or "oulad"))
        finally:
            client.close()
        console.print(f"redis: {n} final result(s) written to rs:outcome:{{site}}:{{course}}")
    if rep.failed:
        raise typer.Exit(1)
    if rep.interrupted:
        raise typer.Exit(130)

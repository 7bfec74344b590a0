"""``riskstream demo``: the whole pipeline on one machine, measured against real outcomes.

Starts the embedded stack, gets a model, starts a worker (a child process in its own
process group) and an alert tail, replays one OULAD module-presentation the model did not
train on, and ends with a summary: throughput, alerts, precision against the students'
real final results, and how many days before the end (or the withdrawal) the alerts came.

Everything it starts is stopped in ``finally`` blocks (SIGINT and SIGTERM included), so a
Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import redis
import redis.asyncio as aredis
import typer
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from contracts import TOPICS, ContractError, LmsEvent, RiskAlert, decode
from contracts.keys import courses_key, site_pattern, state_key
from riskstream.replay import (
    OuladSource,
    Pace,
    load_oulad,
    oulad_outcomes,
    replay,
    write_context,
    write_outcomes,
)

DEMO_SITE_PREFIX = "demo-"


class DemoError(RuntimeError):
    """The demo cannot go on; the message says what to do."""


class Interrupted(Exception):
    """SIGINT/SIGTERM during the demo: clean up and report what was done."""


@dataclass
class DemoConfig:
    """Plain values from the CLI (settings + options)."""

    bootstrap: str
    redis_url: str
    registry: Path
    data_dir: Path
    report_dir: Path
    device: str = "cpu"
    selection: str = "GGG/2014B"
    max_students: int = 0
    pace: Pace = field(default_factory=Pace)
    show_alerts: int = 20
    timeout_s: float = 240.0
    worker_cmd: tuple[str, ...] = (sys.executable, "-m", "riskstream", "worker")
    train_cmd: tuple[str, ...] = (sys.executable, "-m", "riskstream", "train", "--quick")
    use_shipped: bool = True
    env: dict[str, str] = field(default_factory=dict)


# --- child processes -------------------------------------------------------------------


@dataclass
class Children:
    """Processes the demo started, each the leader of its own process group."""

    pid_file: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own group: our Ctrl-C does not reach it half-way
            )
        self.procs[name] = proc
        self._save()

    def _save(self) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(json.dumps({k: p.pid for k, p in self.procs.items()}))

    def stop(self, name: str, timeout: float = 15.0) -> int | None:
        """SIGTERM the whole group, wait, then SIGKILL what is left; returns the exit code."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        # the leader may be gone while others in its group live on
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if code is None:
            code = proc.wait(timeout=5)
        self._save()
        return code

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def install_raise_handlers() -> None:
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted``, so every ``finally`` runs.

    Called again after each ``asyncio.run``: leaving a loop resets its signal handlers.
    """
    for sig in _SIGNALS:
        signal.signal(sig, _raise_interrupted)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    old = {s: signal.getsignal(s) for s in _SIGNALS}
    install_raise_handlers()
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --- Redis housekeeping and progress ----------------------------------------------------


def clear_old_demo_sites(client: redis.Redis) -> int:
    """Remove state of earlier demo runs (each run uses a fresh site id)."""
    n = 0
    for pattern in (site_pattern(f"{DEMO_SITE_PREFIX}*"), courses_key(f"{DEMO_SITE_PREFIX}*")):
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                n += int(client.delete(*batch))
                batch = []
        if batch:
            n += int(client.delete(*batch))
    return n


@dataclass
class Expected:
    """Per student-course, the event ids sent, to count what the worker has applied."""

    ids: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def add(self, ev: LmsEvent) -> None:
        self.ids.setdefault((ev.course_id, ev.user_id), []).append(ev.event_id)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.ids.values())

    def applied(self, last_ids: dict[tuple[int, int], int]) -> int:
        return sum(bisect.bisect_right(v, last_ids.get(k, -1)) for k, v in self.ids.items())


async def read_last_ids(
    client: aredis.Redis, site: str, keys: list[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """One pipelined round trip: ``last_id`` of every student-course the demo sent."""
    pipe = client.pipeline(transaction=False)
    for course, user in keys:
        pipe.hget(state_key(site, course, user), "last_id")
    vals = await pipe.execute()
    return {k: int(v) for k, v in zip(keys, vals, strict=True) if v is not None}


# --- summary ----------------------------------------------------------------------------


@dataclass
class Summary:
    selection: str
    site: str
    model_version: str
    students: int
    at_risk_students: int
    events_sent: int
    events_processed: int
    processing_s: float
    events_per_s: float
    replay_events_per_s: float
    alerts: int
    alerted_students: int
    high_alerted_students: int
    high_precision: float | None
    true_alerts: int
    precision: float | None
    recall: float | None
    base_rate: float | None
    median_days_early: float | None
    alerted_before_outcome: int
    wall_s: float
    interrupted: bool
    report_dir: str
    teacher: dict[str, Any] = field(default_factory=dict)  # riskstream.alert_metrics, D = 56

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score_alerts(
    alerts: list[RiskAlert], outcomes: Any, lengths: dict[int, int], users: set[tuple[int, int]]
) -> dict[str, Any]:
    """Precision and lead time of each student's first alert against OULAD outcomes.

    ``outcomes``: DataFrame with course_id, user_id, label (1 = Fail/Withdrawn) and
    withdraw_day. Lead time: days from the alert to the withdrawal (Withdrawn) or to the
    end of the presentation (Fail).
    """
    first: dict[tuple[int, int], RiskAlert] = {}
    for a in sorted(alerts, key=lambda a: (a.day, a.trigger_event_id)):
        first.setdefault((a.course_id, a.user_id), a)
    oc = {
        (int(r.course_id), int(r.user_id)): (int(r.label), r.withdraw_day)
        for r in outcomes.itertuples(index=False)
        if (int(r.course_id), int(r.user_id)) in users
    }
    at_risk = sum(1 for lab, _ in oc.values() if lab == 1)
    true, early = 0, []
    for key, a in first.items():
        lab, wd = oc.get(key, (0, math.nan))
        if lab != 1:
            continue
        true += 1
        end = float(wd) if wd is not None and not math.isnan(float(wd)) else lengths[key[0]]
        early.append(end - a.day)
    n = len(first)
    high = {k for k, level in _max_levels(alerts).items() if level == "high"}
    high_true = sum(1 for k in high if oc.get(k, (0, 0))[0] == 1)
    return {
        "high_alerted_students": len(high),
        "high_precision": high_true / len(high) if high else None,
        "students": len(oc),
        "at_risk_students": at_risk,
        "alerted_students": n,
        "true_alerts": true,
        "precision": true / n if n else None,
        "recall": true / at_risk if at_risk else None,
        "base_rate": at_risk / len(oc) if oc else None,
        "median_days_early": statistics.median(early) if early else None,
        "alerted_before_outcome": sum(1 for d in early if d > 0),
    }


def _max_levels(alerts: list[RiskAlert]) -> dict[tuple[int, int], str]:
    """Highest level each student-course reached."""
    out: dict[tuple[int, int], RiskAlert] = {}
    for a in alerts:
        k = (a.course_id, a.user_id)
        if k not in out or a.level.rank > out[k].level.rank:
            out[k] = a
    return {k: a.level.value for k, a in out.items()}


# --- the run ----------------------------------------------------------------------------


class Demo:
    def __init__(self, cfg: DemoConfig, console: Console) -> None:
        self.cfg = cfg
        self.console = console
        self.site = f"{DEMO_SITE_PREFIX}{datetime.now(UTC):%Y%m%d%H%M%S}"
        self.alerts: list[RiskAlert] = []
        self.children = Children(cfg.report_dir / "children.json")

    def env(self) -> dict[str, str]:
        # a short session timeout: the worker's first group join takes half of it
        return {
            "RISKSTREAM_STREAM_SESSION_TIMEOUT_MS": "6000",
            # students who stop clicking are the ones to catch: advance them day by day
            "RISKSTREAM_STREAM_SWEEP": "true",
            **os.environ,
            **self.cfg.env,
            "RISKSTREAM_KAFKA_BOOTSTRAP": self.cfg.bootstrap,
            "RISKSTREAM_REDIS_URL": self.cfg.redis_url,
            "RISKSTREAM_MODEL_REGISTRY": str(self.cfg.registry.resolve()),
            "RISKSTREAM_DATA_DIR": str(self.cfg.data_dir.resolve()),
            "RISKSTREAM_DEVICE": self.cfg.device,
        }

    def ensure_model(self) -> str:
        from models.registry import Registry

        reg = Registry(self.cfg.registry)
        version = reg.current_version()
        if version:
            self.console.print(f"model: [bold]{version}[/] from {self.cfg.registry}")
            return version
        shipped = self._import_shipped(reg)
        if shipped:
            return shipped
        self.console.print(
            f"no model in {self.cfg.registry}: training a small one "
            f"([dim]{' '.join(self.cfg.train_cmd[1:])}[/])"
        )
        t0 = time.monotonic()
        log = self.cfg.report_dir / "train.log"
        self.children.spawn("trainer", list(self.cfg.train_cmd), self.env(), log)
        proc = self.children.procs["trainer"]
        while proc.poll() is None:
            time.sleep(0.2)
        self.children.procs.pop("trainer", None)
        version = Registry(self.cfg.registry).current_version()
        if proc.returncode != 0 or not version:
            raise DemoError(f"training failed (exit {proc.returncode}); see {log}")
        self.console.print(f"model: trained [bold]{version}[/] in {time.monotonic() - t0:.0f}s")
        return version

    def _import_shipped(self, reg: Any) -> str | None:
        """The model the project trained and ships (models/pretrained), if this code can load it."""
        from models.pretrained import SHIPPED
        from models.registry import RegistryError

        if not self.cfg.use_shipped or not SHIPPED.is_dir():
            return None
        try:
            version = str(reg.import_version(SHIPPED))
            reg.load(version)
        except (RegistryError, OSError) as exc:  # SpecMismatchError is a RegistryError
            self.console.print(f"[yellow]shipped model not usable here ({exc})[/]")
            return None
        self.console.print(
            f"model: [bold]{version}[/], the shipped OULAD model (trained with "
            "[dim]riskstream train[/]; see README, Training)"
        )
        return version

    def run(self, stack_up: Callable[[], None]) -> Summary:
        t0 = time.monotonic()
        self.cfg.report_dir.mkdir(parents=True, exist_ok=True)
        try:
            stack_up()
            version = self.ensure_model()
            src = self._load_source()
            client = redis.Redis.from_url(self.cfg.redis_url)
            try:
                cleared = clear_old_demo_sites(client)
                ctx = write_context(client, calendars=src.calendars, profiles=src.profiles)
            finally:
                client.close()
            self.console.print(
                f"redis: {ctx.calendars} calendar(s), {ctx.profiles} profiles for site "
                f"[bold]{self.site}[/]" + (f" (cleared {cleared} old demo keys)" if cleared else "")
            )
            self.children.spawn(
                "worker", list(self.cfg.worker_cmd), self.env(), self.cfg.report_dir / "worker.log"
            )
            self.console.print(
                f"worker started (pid {self.children.procs['worker'].pid}, "
                f"log {self.cfg.report_dir / 'worker.log'})"
            )
            try:
                live = asyncio.run(self._live(src))
            finally:
                install_raise_handlers()
            if not live.get("interrupted"):
                self._write_outcomes(src)  # live calibration on /ui (riskstream/api)
            worker_exit = self.children.stop("worker")
            if worker_exit not in (0, None, -signal.SIGTERM):
                self.console.print(f"[yellow]worker exited with {worker_exit}[/]")
            return self._summarize(src, version, live, time.monotonic() - t0)
        finally:
            self.children.stop_all()

    def _write_outcomes(self, src: OuladSource) -> None:
        """The replayed presentations are over: their final results go where live
        calibration reads them (``rs:outcome:{site}:{course}``)."""
        client = redis.Redis.from_url(self.cfg.redis_url)
        try:
            n = write_outcomes(client, oulad_outcomes(src, self.site))
        except redis.RedisError as exc:
            self.console.print(f"[yellow]final results not written: {exc}[/]")
            return
        finally:
            client.close()
        self.console.print(f"redis: {n} final results for live calibration (/ui, Model health)")

    def _load_source(self) -> OuladSource:
        t = time.monotonic()
        src = load_oulad(self.cfg.data_dir, self.cfg.selection, self.site, self.cfg.max_students)
        self.console.print(
            f"OULAD {self.cfg.selection}: {src.total:,} events, {len(src.profiles)} students "
            f"(loaded in {time.monotonic() - t:.1f}s)"
        )
        return src

    async def _live(self, src: OuladSource) -> dict[str, Any]:
        """Replay, tail alerts and watch the worker apply events, all in one event loop."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        expected = Expected()
        sent_done = asyncio.Event()
        out: dict[str, Any] = {"interrupted": False}
        progress = Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        tail = asyncio.create_task(self._tail_alerts(stop, progress))
        try:
            with progress:
                t_sent = progress.add_task("replay", total=src.total, info="")
                t_done = progress.add_task("worker", total=src.total, info="waiting for worker")

                def events() -> Iterator[LmsEvent]:
                    for ev in src.events:
                        expected.add(ev)
                        yield ev

                def on_progress(n: int, ev: LmsEvent) -> None:
                    progress.update(t_sent, completed=n, info=f"course day {ev.time:%Y-%m-%d}")

                t_replay = time.monotonic()
                watch = asyncio.create_task(
                    self._watch_worker(expected, sent_done, stop, progress, t_done, out)
                )
                rep = await replay(
                    events(),
                    self.cfg.bootstrap,
                    pace=self.cfg.pace,
                    stop=stop,
                    on_progress=on_progress,
                )
                progress.update(
                    t_sent, completed=rep.sent, info=f"{rep.events_per_s:,.0f} ev/s sent"
                )
                out["replay"] = rep
                out["replay_s"] = time.monotonic() - t_replay
                out["t_replay"] = t_replay
                sent_done.set()
                await watch
                await asyncio.sleep(1.0)  # the last alerts reach the tail
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(tail, timeout=10)
            for sig in _SIGNALS:
                loop.remove_signal_handler(sig)
        out["expected"] = expected
        out["interrupted"] = out["interrupted"] or rep.interrupted
        return out

    async def _watch_worker(
        self,
        expected: Expected,
        sent_done: asyncio.Event,
        stop: asyncio.Event,
        progress: Progress,
        task: Any,
        out: dict[str, Any],
    ) -> None:
        client = aredis.Redis.from_url(self.cfg.redis_url)
        first_applied: float | None = None
        deadline = time.monotonic() + self.cfg.timeout_s
        applied = 0
        worker = self.children.procs["worker"]
        try:
            while not stop.is_set():
                await asyncio.sleep(0.5)
                keys = list(expected.ids)
                last = await read_last_ids(client, self.site, keys) if keys else {}
                applied = expected.applied(last)
                now = time.monotonic()
                if applied and first_applied is None:
                    first_applied = now
                rate = (
                    applied / (now - first_applied) if first_applied and now > first_applied else 0
                )
                progress.update(
                    task,
                    completed=applied,
                    info=f"{rate:,.0f} ev/s applied, {len(self.alerts)} alerts",
                )
                if sent_done.is_set() and applied >= expected.total:
                    break
                if worker.poll() is not None:
                    raise DemoError(
                        f"the worker stopped (exit {worker.returncode}); "
                        f"see {self.cfg.report_dir / 'worker.log'}"
                    )
                if now > deadline:
                    self.console.print(
                        f"[yellow]timeout after {self.cfg.timeout_s:.0f}s[/]: the worker applied "
                        f"{applied:,} of {expected.total:,} events"
                    )
                    break
            out["interrupted"] = stop.is_set() and applied < expected.total
        finally:
            out["applied"] = applied
            out["first_applied"] = first_applied
            out["done_at"] = time.monotonic()
            await client.aclose()

    async def _tail_alerts(self, stop: asyncio.Event, progress: Progress) -> None:
        consumer = AIOKafkaConsumer(
            TOPICS.alerts,
            bootstrap_servers=self.cfg.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        shown = 0
        try:
            idle_after_stop = 0
            while idle_after_stop < 2:
                batch = await consumer.getmany(timeout_ms=300)
                got = 0
                for msgs in batch.values():
                    for m in msgs:
                        try:
                            a = decode(RiskAlert, m.value or b"")
                        except ContractError:
                            continue
                        if a.site != self.site:
                            continue
                        got += 1
                        self.alerts.append(a)
                        if shown < self.cfg.show_alerts:
                            shown += 1
                            progress.console.print(
                                self._alert_line(a), no_wrap=True, overflow="ellipsis"
                            )
                        elif shown == self.cfg.show_alerts:
                            shown += 1
                            progress.console.print(
                                "[dim]... more alerts are counted on the worker line and "
                                "written to the report[/]"
                            )
                if stop.is_set():
                    idle_after_stop = 0 if got else idle_after_stop + 1
        finally:
            await consumer.stop()

    @staticmethod
    def _alert_line(a: RiskAlert) -> str:
        color = "red" if a.level.value == "high" else "yellow"
        why = a.explanation or ", ".join(c.text for c in a.contributions[:2])
        return (
            f"[{color}]ALERT {a.level.value:<6}[/] student {a.user_id:<8} course {a.course_id} "
            f"day {a.day:>3}  risk {a.risk:.2f} (≥{a.threshold:.2f})  {why}"
        )

    def _summarize(
        self, src: OuladSource, version: str, live: dict[str, Any], wall: float
    ) -> Summary:
        o = src.reader
        lengths = {c.course_id: c.length_days for c in o.courses}
        expected: Expected = live["expected"]
        users = set(expected.ids)
        scored = score_alerts(self.alerts, o.outcomes(), lengths, users)
        from riskstream.alert_eval import outcomes_table
        from riskstream.alert_metrics import teacher_view

        oc = outcomes_table(o, sorted({c for c, _ in users}), {u for _, u in users})
        oc = oc[[(c, u) in users for c, u in zip(oc["course_id"], oc["user_id"], strict=True)]]
        frame = pd.DataFrame(
            [(a.course_id, a.user_id, a.day) for a in self.alerts],
            columns=["course_id", "user_id", "day"],
        )
        view = teacher_view(frame, oc)
        d56 = view["per_cutoff"]["56"]
        teacher = {
            "share_alerted_by_56": d56["share_alerted"],
            "precision_by_56": d56["precision"],
            "recall_by_56": d56["recall"],
            "median_lead_by_56": d56["median_lead_days"],
            "worst_day_share": view["volume"]["worst_day_share"],
            "worst_week_share": view["volume"]["worst_week_share"],
        }
        rep = live.get("replay")
        first = live.get("first_applied")
        t_replay = live.get("t_replay")
        processing = (live["done_at"] - t_replay) if t_replay is not None else 0.0
        applied = int(live.get("applied", 0))
        summary = Summary(
            selection=self.cfg.selection,
            site=self.site,
            model_version=version,
            events_sent=rep.acked if rep else 0,
            events_processed=applied,
            processing_s=round(processing, 2),
            events_per_s=round(applied / (live["done_at"] - first), 1)
            if first and live["done_at"] > first
            else 0.0,
            replay_events_per_s=round(rep.events_per_s, 1) if rep else 0.0,
            alerts=len(self.alerts),
            wall_s=round(wall, 1),
            interrupted=bool(live.get("interrupted")),
            report_dir=str(self.cfg.report_dir),
            teacher=teacher,
            **scored,
        )
        self._write_report(summary)
        return summary

    def _write_report(self, summary: Summary) -> None:
        d = self.cfg.report_dir
        (d / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
        with open(d / "alerts.jsonl", "w") as fh:
            for a in self.alerts:
                fh.write(a.model_dump_json() + "\n")


def print_summary(summary: Summary, console: Console) -> None:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    t = Table(show_header=False, title=f"riskstream demo: OULAD {summary.selection}")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("model", summary.model_version)
    t.add_row("events processed", f"{summary.events_processed:,} of {summary.events_sent:,} sent")
    t.add_row(
        "throughput",
        f"{summary.events_per_s:,.0f} events/s in the worker "
        f"(replay sent {summary.replay_events_per_s:,.0f}/s)",
    )
    t.add_row(
        "students",
        f"{summary.students} enrolled ({summary.at_risk_students} ended Fail/Withdrawn)",
    )
    t.add_row("alerts raised", f"{summary.alerts} for {summary.alerted_students} students")
    t.add_row(
        "precision",
        f"{summary.true_alerts} of {summary.alerted_students} alerted students really ended "
        f"Fail or Withdrawn = {pct(summary.precision)} (base rate {pct(summary.base_rate)})",
    )
    t.add_row(
        "reaching high",
        f"{summary.high_alerted_students} students, precision {pct(summary.high_precision)}",
    )
    t.add_row("recall", f"{pct(summary.recall)} of the students who failed or withdrew")
    tv = summary.teacher
    if tv:
        t.add_row(
            "by course day 56",
            f"{pct(tv['share_alerted_by_56'])} of the students still registered alerted, "
            f"precision {pct(tv['precision_by_56'])}, recall {pct(tv['recall_by_56'])}",
        )
        t.add_row(
            "biggest wave",
            f"{pct(tv['worst_day_share'])} of a course newly alerted in one day, "
            f"{pct(tv['worst_week_share'])} in one week",
        )
    early = summary.median_days_early
    t.add_row(
        "how early",
        "-"
        if early is None
        else f"median {early:.0f} days before the end or the withdrawal "
        f"({summary.alerted_before_outcome} of {summary.true_alerts} before it)",
    )
    t.add_row(
        "wall time", f"{summary.wall_s:.0f}s" + (" (interrupted)" if summary.interrupted else "")
    )
    t.add_row("full report", f"{summary.report_dir}/summary.json (.txt), alerts.jsonl, worker.log")
    console.print(t)


# --- the command ------------------------------------------------------------------------


def demo_command(
    oulad: str = typer.Option(
        "GGG/2014B",
        help="OULAD module/presentation to replay (2014B is not used for training)",
    ),
    max_students: int = typer.Option(0, min=0, help="First N students only (0 = all)"),
    rate: float | None = typer.Option(None, "--rate", help="Pace: events/s (default: max)"),
    days_per_s: float | None = typer.Option(None, "--days-per-s", help="Pace: course days/s"),
    show_alerts: int = typer.Option(20, min=0, help="Alerts to print as they come"),
    timeout: float = typer.Option(240.0, min=1, help="Most seconds to wait for the worker"),
    report_dir: Path | None = typer.Option(None, help="Report folder (default reports/demo-*)"),
) -> None:
    """The main job: stack, model, worker and alert tail; replay OULAD; measured summary.

    Needs no network and stops everything it started, also on Ctrl-C.
    """
    from riskstream.cli import _fail, _settings, console, stack_from
    from riskstream.cli_replay import make_pace
    from riskstream.kafka_admin import ensure_topics
    from riskstream.replay import OuladSourceError, oulad_dir
    from riskstream.stack import StackError

    s = _settings()
    try:  # before anything starts or is written: a wrong folder leaves nothing behind
        data_dir = oulad_dir(s.data_dir)
    except OuladSourceError as exc:
        raise _fail(str(exc)) from None
    st = stack_from(s)
    was_running = st.status().healthy
    stamp = f"{datetime.now(UTC):%Y%m%d-%H%M%S}"
    cfg = DemoConfig(
        bootstrap=st.bootstrap,
        redis_url=st.redis_url,
        registry=s.model_registry,
        data_dir=data_dir,
        report_dir=report_dir or Path("reports") / f"demo-{stamp}",
        device=s.device,
        selection=oulad,
        max_students=max_students,
        pace=make_pace(days_per_s, rate),
        show_alerts=show_alerts,
        timeout_s=timeout,
    )

    def stack_up() -> None:
        st.up()
        asyncio.run(ensure_topics(st.bootstrap, TOPICS.all()))
        install_raise_handlers()
        console.print(
            f"stack: kafka {st.bootstrap}, redis {st.redis_url}"
            + (" (already running: left running)" if was_running else "")
        )

    summary: Summary | None = None
    with signals_raise():
        try:
            summary = Demo(cfg, console).run(stack_up)
        except Interrupted as exc:
            console.print(f"[yellow]interrupted ({exc})[/]: everything the demo started is stopped")
        except (DemoError, StackError, OuladSourceError) as exc:
            raise _fail(str(exc)) from None
        finally:
            if not was_running:
                st.down()
    if summary is None:
        raise typer.Exit(130)
    print_summary(summary, console)
    with open(Path(summary.report_dir) / "summary.txt", "w") as fh:
        print_summary(summary, Console(file=fh, width=100, color_system=None))
    if summary.interrupted:
        raise typer.Exit(130)

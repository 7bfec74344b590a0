"""Replay recorded LMS events into the events topic, in time order, at a chosen pace.

Why a replayer: the worker cannot tell a live Moodle from a recording, so the same code
path is exercised by the demo, by load tests and by re-processing a site's archive. The
worker needs each course's calendar and each student's profile in Redis before the first
event of that course arrives, so ``write_context`` runs before ``replay``.

Guarantees: events go out in the order given (sources sort by time, then event id, so two
runs send the same sequence), keyed by ``LmsEvent.key`` (one student -> one partition),
with ``acks="all"`` and no idempotent producer (the embedded broker cannot do it; the
worker drops ids it has already applied). A stop request (Ctrl-C) ends the loop between
two events; what was handed to the producer is flushed and counted before returning.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import redis
from aiokafka import AIOKafkaProducer

from contracts import (
    TOPICS,
    ContractError,
    CourseCalendar,
    CourseOutcome,
    DeadLetter,
    LmsEvent,
    StudentProfile,
    decode,
    decode_event,
    encode,
    keys,
)

M = TypeVar("M", CourseCalendar, StudentProfile)

# --- Redis keys the worker reads (pinned in the team brief / ARCHITECTURE.md) ------------


calendar_key = keys.calendar_key
profile_key = keys.profile_key
courses_key = keys.courses_key
outcome_key = keys.outcome_key


# --- pace --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pace:
    """How fast to send: course time scaled by ``time_factor`` (course seconds per wall
    second; 86400 = one course day per second), or ``events_per_s``, or neither = as fast
    as possible."""

    time_factor: float | None = None
    events_per_s: float | None = None

    def __post_init__(self) -> None:
        if self.time_factor is not None and self.events_per_s is not None:
            raise ValueError("choose one pace: a time factor or events per second, not both")
        for name, v in (("time_factor", self.time_factor), ("events_per_s", self.events_per_s)):
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")

    @classmethod
    def days_per_second(cls, days: float) -> Pace:
        return cls(time_factor=days * 86400.0)

    def describe(self) -> str:
        if self.time_factor is not None:
            return f"{self.time_factor / 86400.0:g} course day(s) per second"
        if self.events_per_s is not None:
            return f"{self.events_per_s:g} events/s"
        return "as fast as possible"


class Pacer:
    """Seconds to wait before the next event so the replay keeps its pace.

    Targets are absolute (from the first event), so sleeps do not accumulate drift.
    """

    def __init__(self, pace: Pace, clock: Callable[[], float] = time.monotonic) -> None:
        self.pace = pace
        self.clock = clock
        self._t0_wall: float | None = None
        self._t0_event: datetime | None = None

    def delay(self, event_time: datetime, n_before: int) -> float:
        now = self.clock()
        if self._t0_wall is None:
            self._t0_wall, self._t0_event = now, event_time
            return 0.0
        if self.pace.time_factor is not None:
            assert self._t0_event is not None
            course_s = (event_time - self._t0_event).total_seconds()
            target = self._t0_wall + max(course_s, 0.0) / self.pace.time_factor
        elif self.pace.events_per_s is not None:
            target = self._t0_wall + n_before / self.pace.events_per_s
        else:
            return 0.0
        return max(0.0, target - now)


# --- sources -----------------------------------------------------------------------------


@dataclass
class BadLine:
    """A JSONL line that is not a valid LmsEvent: it becomes a dead letter, not a loss."""

    where: str
    line: str
    reason: str

    def dead_letter(self) -> DeadLetter:
        payload, enc = DeadLetter.text_of(self.line)
        return DeadLetter(
            reason=f"{self.where}: {self.reason}; fix the line and replay that file again",
            error_type="ContractError",
            stage="replay.jsonl",
            payload=payload,
            payload_encoding=enc,
            failed_at=datetime.now(UTC),
        )


@dataclass
class Loaded:
    """Events ready to send (in send order) and the lines that could not be used."""

    events: list[LmsEvent]
    bad: list[BadLine] = field(default_factory=list)


def _open_text(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from fh


def jsonl_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders (a site's archive) into their ``*.jsonl``/``*.jsonl.gz`` files, sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted([*p.rglob("*.jsonl"), *p.rglob("*.jsonl.gz")]))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return out


def event_order(ev: LmsEvent) -> tuple[datetime, str, int, int, int]:
    """The one replay order: time, then site and event id (Moodle's log id) as tie breakers."""
    return (ev.time, ev.site, ev.event_id, ev.course_id, ev.user_id)


def load_jsonl(paths: Iterable[Path]) -> Loaded:
    """Read and validate every line, then sort into the replay order (reproducible)."""
    events: list[LmsEvent] = []
    bad: list[BadLine] = []
    for path in jsonl_files(paths):
        for n, line in enumerate(_open_text(path), start=1):
            text = line.strip()
            if not text:
                continue
            try:
                events.append(decode_event(text))
            except ContractError as exc:
                bad.append(BadLine(f"{path}:{n}", text, str(exc)))
    events.sort(key=event_order)
    return Loaded(events, bad)


def load_models_jsonl(path: Path, cls: type[M]) -> list[M]:
    """Calendars or profiles, one JSON object per line; a bad line stops with its position."""
    out: list[M] = []
    for n, line in enumerate(_open_text(path), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            out.append(decode(cls, text))
        except ContractError as exc:
            raise ContractError(cls.__name__, f"{path}:{n}: {exc.detail}") from None
    return out


def derive_calendars(events: Iterable[LmsEvent], length_days: int = 270) -> list[CourseCalendar]:
    """A fallback calendar per course: day 0 = midnight UTC of its first event.

    Used only where Redis has no calendar for the course yet (written with SET NX), so a
    real calendar from Moodle or a file always wins.
    """
    first: dict[tuple[str, int], datetime] = {}
    last: dict[tuple[str, int], datetime] = {}
    for ev in events:
        k = (ev.site, ev.course_id)
        if k not in first or ev.time < first[k]:
            first[k] = ev.time
        if k not in last or ev.time > last[k]:
            last[k] = ev.time
    out = []
    for (site, course), t in sorted(first.items()):
        start = datetime(t.year, t.month, t.day, tzinfo=UTC)
        span = (last[(site, course)] - start) // timedelta(days=1) + 1
        out.append(
            CourseCalendar(
                site=site, course_id=course, start=start, length_days=max(length_days, span)
            )
        )
    return out


# --- Redis context -----------------------------------------------------------------------


@dataclass
class ContextReport:
    calendars: int = 0
    derived_calendars: int = 0
    profiles: int = 0


def write_context(
    client: redis.Redis,
    calendars: Iterable[CourseCalendar] = (),
    profiles: Iterable[StudentProfile] = (),
    derived: Iterable[CourseCalendar] = (),
    chunk: int = 2000,
) -> ContextReport:
    """Store calendars and profiles where the worker looks, in pipelined chunks.

    ``derived`` calendars are written only if the course has none yet.
    """
    rep = ContextReport()
    pipe = client.pipeline(transaction=False)
    pending = 0

    def flush_if(full: bool) -> None:
        nonlocal pending
        if pending and (not full or pending >= chunk):
            pipe.execute()
            pending = 0

    for cal in calendars:
        pipe.set(calendar_key(cal.site, cal.course_id), cal.model_dump_json())
        pipe.sadd(courses_key(cal.site), str(cal.course_id))
        rep.calendars += 1
        pending += 1
        flush_if(True)
    for cal in derived:
        pipe.set(calendar_key(cal.site, cal.course_id), cal.model_dump_json(), nx=True)
        pipe.sadd(courses_key(cal.site), str(cal.course_id))
        rep.derived_calendars += 1
        pending += 1
        flush_if(True)
    for prof in profiles:
        pipe.set(profile_key(prof.site, prof.course_id, prof.user_id), prof.model_dump_json())
        rep.profiles += 1
        pending += 1
        flush_if(True)
    flush_if(False)
    return rep


# --- outcomes (live calibration's ground truth) -----------------------------------------


def oulad_outcomes(src: OuladSource, site: str) -> list[CourseOutcome]:
    """The final result of every enrolment of an OULAD replay, as ``CourseOutcome``s
    (withdrawn: day = date_unregistration, clamped at 0; final score from the assessments)."""
    if src.reader is None:
        return []
    df = src.reader.outcomes()
    df = df[df["course_id"].isin(src.course_ids)]
    if src.users is not None:
        df = df[df["user_id"].isin(src.users)]
    out = []
    for r in df.itertuples(index=False):
        result = str(r.final_result).strip().lower()
        if result not in ("pass", "distinction", "fail", "withdrawn"):
            continue
        wd = r.withdraw_day
        score = r.final_score
        out.append(
            CourseOutcome(
                site=site,
                course_id=int(r.course_id),
                user_id=int(r.user_id),
                result=result,  # type: ignore[arg-type]
                day=max(0, int(wd)) if result == "withdrawn" and wd == wd else None,
                final=True,
                final_score=None if score != score else float(min(max(score, 0.0), 1.0)),
                source="oulad.final_result",
            )
        )
    return out


def write_outcomes(
    client: redis.Redis, outcomes: Iterable[CourseOutcome], chunk: int = 2000
) -> int:
    """Store final results where live calibration reads them (``rs:outcome:{site}:{course}``,
    field = user id); they replace a withdrawal the worker recorded earlier."""
    n = 0
    pipe = client.pipeline(transaction=False)
    for o in outcomes:
        pipe.hset(outcome_key(o.site, o.course_id), str(o.user_id), o.model_dump_json())
        n += 1
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()
    return n


# --- the replay loop ---------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What was sent. ``acked`` counts events the broker confirmed (acks=all)."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    dead_letters: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    first_time: datetime | None = None
    last_time: datetime | None = None
    by_course: Counter[tuple[str, int]] = field(default_factory=Counter)
    users: set[tuple[str, int]] = field(default_factory=set)
    last_id_by_user: dict[tuple[str, int, int], int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.acked / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "acked": self.acked,
            "failed": self.failed,
            "dead_letters": self.dead_letters,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events_per_s, 1),
            "first_time": self.first_time.isoformat() if self.first_time else None,
            "last_time": self.last_time.isoformat() if self.last_time else None,
            "courses": len(self.by_course),
            "students": len(self.users),
        }


ProgressFn = Callable[[int, LmsEvent], None]


async def replay(
    events: Iterable[LmsEvent],
    bootstrap: str,
    *,
    topic: str = TOPICS.events,
    pace: Pace | None = None,
    stop: asyncio.Event | None = None,
    on_progress: ProgressFn | None = None,
    dead_letters: Iterable[DeadLetter] = (),
    dead_letter_topic: str = TOPICS.dead_letter,
    window: int = 5000,
    progress_every: int = 500,
) -> ReplayReport:
    """Send ``events`` in the given order; returns counts even when stopped early.

    ``window`` bounds the sends awaiting acknowledgement, so memory stays flat for any
    source length; it does not reorder anything (one key -> one partition, sent in order).
    """
    pacer = Pacer(pace or Pace())
    rep = ReplayReport()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )
    await producer.start()
    pending: list[asyncio.Future[object]] = []

    async def settle() -> None:
        if not pending:
            return
        results = await asyncio.gather(*pending, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                rep.failed += 1
                if len(rep.errors) < 5:
                    rep.errors.append(f"{type(r).__name__}: {r}")
            else:
                rep.acked += 1
        pending.clear()

    t0 = time.monotonic()
    try:
        for dl in dead_letters:
            await producer.send_and_wait(dead_letter_topic, value=encode(dl))
            rep.dead_letters += 1
        for ev in events:
            if stop is not None and stop.is_set():
                rep.interrupted = True
                break
            wait = pacer.delay(ev.time, rep.sent)
            if wait > 0.002:
                await producer.flush()  # what is due goes out before we idle
                if stop is not None:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=wait)
                        rep.interrupted = True
                        break
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(wait)
            pending.append(await producer.send(topic, key=ev.key, value=encode(ev)))
            rep.sent += 1
            if rep.first_time is None:
                rep.first_time = ev.time
            rep.last_time = ev.time
            rep.by_course[(ev.site, ev.course_id)] += 1
            rep.users.add((ev.site, ev.user_id))
            uk = (ev.site, ev.course_id, ev.user_id)
            if ev.event_id > rep.last_id_by_user.get(uk, -1):
                rep.last_id_by_user[uk] = ev.event_id
            if len(pending) >= window:
                await settle()
            if on_progress is not None and rep.sent % progress_every == 0:
                on_progress(rep.sent, ev)
                await asyncio.sleep(0)  # let a stop request or a live view run
    finally:
        try:
            await producer.flush()
            await settle()
        finally:
            await producer.stop()
            rep.elapsed_s = time.monotonic() - t0
    return rep


# --- OULAD source (through models.oulad, the same adapter the trainer uses) -------------


class OuladSourceError(RuntimeError):
    """The OULAD selection cannot be replayed; the message says what to do."""


@dataclass
class OuladSource:
    """A lazily built OULAD replay: ``events`` yields ``total`` events in time order."""

    events: Iterable[LmsEvent]
    total: int
    calendars: list[CourseCalendar]
    profiles: list[StudentProfile]
    course_ids: list[int]
    users: set[int] | None
    reader: Any = None  # the models.oulad.Oulad it came from (outcomes for scoring)
    #: ``(key, LmsEvent JSON, UTC date ordinal)`` of ``events`` in the same order, formatted
    #: without building the models (what a backfill sends); None: encode ``events``
    records: Callable[[], Iterator[tuple[bytes, bytes, int]]] | None = None


def parse_selection(sel: str) -> tuple[str | None, str | None]:
    """'GGG/2014B' -> (GGG, 2014B); '2014B' -> (None, 2014B); 'all' -> (None, None)."""
    sel = sel.strip()
    if sel.lower() in ("", "all"):
        return None, None
    if "/" in sel:
        mod, pres = sel.split("/", 1)
        return mod.strip().upper() or None, pres.strip().upper() or None
    if sel[:4].isdigit():
        return None, sel.upper()
    return sel.upper(), None


def resolve_data_dir(path: Path) -> Path:
    """The OULAD folder: ``path`` if it exists, else ``shared/datasets/oulad`` found in a
    parent of the working directory or of this checkout (worktrees, CI clones beside shared/)."""
    if path.exists() or path.is_absolute():
        return path
    here = Path(__file__).resolve().parent.parent
    for base in (Path.cwd().resolve(), here):
        for parent in (base, *base.parents):
            cand = parent / "shared" / "datasets" / "oulad"
            if (cand / "studentVle.parquet").is_file():
                return cand
    return path


def oulad_dir(data_dir: Path) -> Path:
    """The resolved OULAD folder; OuladSourceError when it holds no OULAD Parquet files."""
    data_dir = resolve_data_dir(data_dir)
    if not (data_dir / "studentVle.parquet").is_file():
        raise OuladSourceError(
            f"OULAD Parquet files not found in {data_dir}; set RISKSTREAM_DATA_DIR to the folder "
            "holding studentVle.parquet (see /work/shared/datasets/oulad/README.md)"
        )
    return data_dir


def load_oulad(
    data_dir: Path, selection: str, site: str = "oulad", max_students: int = 0
) -> OuladSource:
    """OULAD events of one selection in replay order, with their calendars and profiles.

    ``max_students`` keeps the first N students (by id) of each presentation: a short,
    reproducible replay for CI and quick looks.
    """
    data_dir = oulad_dir(data_dir)
    try:
        from models import oulad
    except ImportError as exc:
        raise OuladSourceError(
            f"the OULAD adapter (models.oulad) is not available: {exc}"
        ) from None
    module, presentation = parse_selection(selection)
    return _from_models_oulad(oulad, data_dir, module, presentation, site, max_students)


def _from_models_oulad(
    oulad: Any,
    data_dir: Path,
    module: str | None,
    presentation: str | None,
    site: str,
    max_students: int,
) -> OuladSource:
    try:
        o = oulad.Oulad(data_dir)
    except FileNotFoundError as exc:
        raise OuladSourceError(str(exc)) from None
    course_ids = [
        c.course_id
        for c in o.courses
        if (module is None or c.module == module)
        and (presentation is None or c.presentation == presentation)
    ]
    if not course_ids:
        known = ", ".join(f"{c.module}/{c.presentation}" for c in o.courses)
        raise OuladSourceError(
            f"no OULAD module-presentation matches {module or '*'}/{presentation or '*'}; "
            f"choose from: {known}"
        )
    enrol = o.enrolments
    enrol = enrol[enrol["course_id"].isin(course_ids)]
    users: set[int] | None = None
    if max_students:
        firsts = enrol.sort_values("user_id").groupby("course_id").head(max_students)
        users = {int(u) for u in firsts["user_id"]}
        enrol = enrol[enrol["user_id"].isin(users)]
    table = o.event_table(module, presentation, users, enrolments=True)
    rewrite = site != oulad.SITE

    def events() -> Iterator[LmsEvent]:
        for r in table.itertuples(index=False):
            ev = oulad.row_to_event(r)
            yield ev.model_copy(update={"site": site}) if rewrite else ev

    cals = [c for cid, c in o.calendars().items() if cid in course_ids]
    profs = [
        p
        for (cid, uid), p in o.profiles().items()
        if cid in course_ids and (users is None or uid in users)
    ]
    if rewrite:
        cals = [c.model_copy(update={"site": site}) for c in cals]
        profs = [p.model_copy(update={"site": site}) for p in profs]
    return OuladSource(
        events(),
        len(table),
        cals,
        profs,
        course_ids,
        users,
        o,
        records=lambda: oulad.event_records(table, site),
    )

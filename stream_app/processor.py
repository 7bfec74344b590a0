"""The batch logic, independent of Faust: records in, state + alerts + risk scores out.

Per batch: decode (bad messages -> dead letters), one Redis round trip reading every
student's state, profile and course calendar (a Lua script), a plan in plain Python (dedupe
by last applied id, fold events into open days, commit finished days and empty gap days),
one batched model run off the event loop, the alert policy per observation, then

1. publish alerts, risk scores and dead letters and wait for the broker's acks, then
2. write states, ranks and the ``rs:alerts`` stream in one atomic Lua script,
3. optionally sweep idle students of courses whose clock advanced (``sweep``).

That order loses nothing: if the worker dies between 1 and 2, the replay recomputes the same
outputs (the state was not written, so the events are not skipped) and republishes them with
the same deterministic alert ids; consumers dedupe alerts by ``alert_id`` (and risk scores are
"latest wins"). If it dies after 2, the replayed events are no-ops (``event_id <= last_id``).
The caller must only commit offsets after ``process`` returned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import redis.exceptions
import structlog
import torch
from aiokafka import errors as kafka_errors
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from contracts import (
    SCHEMA_VERSION,
    TOPICS,
    ContractError,
    Contribution,
    CourseCalendar,
    LmsEvent,
    RiskAlert,
    RiskLevel,
    StudentProfile,
    alert_id,
    decode,
    decode_event,
    encode,
    is_enrolment,
)
from contracts.events import UNENROLMENT_EVENTNAME
from contracts.keys import feedback_key
from models.cohort import mean_of, quantized_logit
from stream_app import feedback
from stream_app.alerting import AlertState, admit, capacity, decide, raised
from stream_app.deadletter import dead_letter
from stream_app.inference import InferenceEngine, StepPlan, StepResult, state_shapes
from stream_app.metrics import Metrics
from stream_app.records import InRecord, OutRecord, Publisher
from stream_app.state import (
    BatchRead,
    BatchWrite,
    StudentKey,
    StudentState,
    calendar_key,
    candidates_key,
    caps_key,
    check_write,
    decode_state,
    default_calendar,
    encode_state,
    ensure_calendars,
    read_batch,
    read_site_ids,
    write_batch,
)

log = structlog.get_logger("stream_app.processor")
T = TypeVar("T")

MAX_DAYS_PAST_END = 60  # events this far after the course end are refused (calendar wrong?)
MAX_DAYS_BEFORE_START = 366  # events this far before the course start are refused
MAX_EVENT_ID = 2**53 - 1  # above any real log id; JSON-safe for every consumer
MAX_FUTURE_S = 86_400.0  # event times more than a day ahead of the worker's clock are refused
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)  # before any Moodle site (Moodle 1.0: 2002)
DEFAULT_MAX_ID_JUMP = 100_000_000  # ids this far above the site's highest applied id: refused
# An error that can never succeed by retrying: stop with a clear message instead of looping.
_FATAL: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.InvalidTopicError,
    kafka_errors.UnsupportedVersionError,
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
)
_RETRYABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OSError,
    KafkaError,
)


class FatalError(RuntimeError):
    """An outage that retrying cannot fix (authorization, message too large): the worker
    stops with this one-line message and commits nothing."""


@dataclass
class ModelHandle:
    """A loaded registry model plus what the processor derives from it once."""

    loaded: Any  # models.registry.LoadedModel
    shapes: dict[str, tuple[int, ...]]
    sizes: dict[str, int]
    spec_hash: str
    n_day: int
    n_static: int

    @property
    def version(self) -> str:
        return str(self.loaded.version)

    @property
    def featurizer(self) -> Any:
        return self.loaded.featurizer

    @classmethod
    def of(cls, loaded: Any) -> ModelHandle:
        spec = loaded.spec
        shapes = state_shapes(loaded.model, spec.n_static, loaded.device)
        sizes = {k: int(np.prod(s)) for k, s in shapes.items()}
        return cls(loaded, shapes, sizes, spec.hash()[:12], spec.n_day, spec.n_static)


# (loaded model, window [T, n_day], static [n_static]) -> (contributions, sentence)
#: (loaded model, windows [T_i, n_day], statics [n_static]) -> (contributions, sentence) each
Explainer = Callable[
    [Any, list[np.ndarray], list[np.ndarray]], list[tuple[list[Contribution], str]]
]


@dataclass
class BatchReport:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    dead: int = 0
    students: int = 0
    commits: int = 0
    alerts: list[RiskAlert] = field(default_factory=list)
    inference_s: float = 0.0
    sweep_s: float = 0.0  # course-clock sweep and alert release after the batch (in total_s)
    release_s: float = 0.0  # of which the alert release (reads, admission, explain, publish)
    explain_s: float = 0.0  # of which the explanations of released alerts
    total_s: float = 0.0
    duplicate_examples: list[str] = field(default_factory=list)  # first few, for the log

    def merge(self, other: BatchReport) -> None:
        """Add ``other``'s counts, times and alerts (a sweep's report into its batch's)."""
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, list):
                mine.extend(getattr(other, f.name))
            else:
                setattr(self, f.name, mine + getattr(other, f.name))


@dataclass
class _Student:
    key: StudentKey
    st: StudentState
    cal: CourseCalendar
    profile: bytes | None
    init: bool = False
    prepared: bool = False
    rewarm: int = 0  # window rows replayed through a new model before the new commits
    commit_req: list[int] = field(default_factory=list)  # indices into commit requests
    commit_days: list[int] = field(default_factory=list)  # course day of each commit request
    left: bool = False  # an unenrolment was applied this batch
    created: int | None = None  # course day the student's state was created this batch
    partition: int = 0  # of the events topic: the student's events all come on it
    rejoined: int | None = None  # course day an unenrolled student enrolled again
    # every unenrolment / re-enrolment applied this batch (the policy book counts each, so
    # one batch or several give the same enrolled count)
    unenrolled: list[int] = field(default_factory=list)
    rejoins: list[int] = field(default_factory=list)
    alert0: AlertState | None = None  # alert state as read, before this batch's changes
    # alert-policy observations in order: (_EVENT, applied index, day, event id) or
    # (_COMMIT, seq index, day, last applied id) for a committed day without events
    obs: list[tuple[int, int, int, int]] = field(default_factory=list)


_EVENT, _COMMIT = 0, 1
_TICK = -1  # a sweep's stand-in for an event index: advance the student, fold nothing


@dataclass
class _Applied:
    rec: InRecord
    ev: LmsEvent
    student: int
    after: int  # seq steps (re-warm + commits) done before this event's provisional step
    day: int
    poisoned: bool = False  # the model's output for this student was not finite


def risk_score_json(
    st: StudentState, key: StudentKey, day: int, version_json: str, created_json: str
) -> bytes:
    """A RiskScore's wire JSON, formatted directly (one per student per batch, so hot);
    tests check it decodes to the same RiskScore the pydantic model would make."""
    site = _SITE_JSON.get(key.site)
    if site is None:
        site = _SITE_JSON[key.site] = json.dumps(key.site)
    return (
        f'{{"schema_version":{SCHEMA_VERSION},"site":{site},"user_id":{key.user},'
        f'"course_id":{key.course},"risk":{st.risk!r},"level":"{st.level}","day":{day},'
        f'"model_version":{version_json},"last_event_id":{st.last_id},'
        f'"updated_at":{created_json}}}'
    ).encode()


_SITE_JSON: dict[str, str] = {}


def _derived_starts(
    events: list[tuple[InRecord, LmsEvent]], missing: dict[tuple[str, int], Any]
) -> dict[tuple[str, int], datetime]:
    """Start of a derived calendar: the course's earliest event in the batch, ignoring
    outliers more than 180 days before the batch's median time for that course (one event
    with a bogus date must not fix the calendar forever)."""
    times: dict[tuple[str, int], list[datetime]] = {}
    for _, ev in events:
        c = (ev.site, ev.course_id)
        if c in missing:
            times.setdefault(c, []).append(ev.time)
    out = {}
    for c, ts in times.items():
        ts.sort()
        floor = ts[len(ts) // 2] - timedelta(days=180)
        out[c] = next(t for t in ts if t >= floor)
    return out


class Processor:
    """Applies micro-batches of event records; one instance per worker process."""

    def __init__(
        self,
        redis_client: Any,
        publisher: Publisher,
        model: ModelHandle,
        engine: InferenceEngine | None = None,
        window_days: int = 28,
        first_day: int = 0,
        metrics: Metrics | None = None,
        explainer: Explainer | None = None,
        clock: Callable[[], float] = time.time,
        sweep_partitions: int = 0,
        sweep_lag_days: int = 1,
        sweep_chunk: int = 2000,
        explain_levels: frozenset[str] | None = None,
        feedback: bool = True,
        sites: frozenset[str] | None = None,
        max_id_jump: int = DEFAULT_MAX_ID_JUMP,
    ) -> None:
        """``sweep_partitions``: partitions of the events topic (0 = no course-clock sweep);
        the sweep advances idle students ``sweep_lag_days`` behind the partition's clock.
        ``explain_levels``: alert levels that get contributions (None = every level); the
        explanation is on the alert's critical path, so e.g. only the act-on level.
        ``feedback``: admission consults teachers' feedback (``rs:fb``, stream_app/feedback.py):
        a student marked *contacted* is not admitted within the cooldown.
        ``sites``: the only sites whose events are applied (None or empty = every site);
        ``max_id_jump``: how far above a site's highest applied id an event id may be."""
        self.redis = redis_client
        self.publisher = publisher
        self.model = model
        self.engine = engine or InferenceEngine()
        self.window_days = window_days
        self.first_day = first_day
        self.metrics = metrics or Metrics()
        self.explainer = explainer
        self.explain_levels = explain_levels
        self.clock = clock
        self.sweep_partitions = sweep_partitions
        self.sweep_lag_days = sweep_lag_days
        self.sweep_chunk = sweep_chunk
        # teachers' feedback (stream_app/feedback.py): contacted students are not admitted
        self.feedback = feedback
        self.held_back = 0  # candidates not admitted because a teacher contacted them
        self._clock: dict[tuple[str, int, int], int] = {}
        self._clock_dirty: set[tuple[str, int, int]] = set()
        self._swept: dict[tuple[str, int, int], int] = {}
        self._partition_cache: dict[tuple[str, int], int] = {}
        # a lower bound of each student's open day, from this process's own state writes
        # (days only move forward, whoever writes): the sweep reads only students that may
        # be behind its day, instead of every student of the partition every course day
        self._day_floor: dict[StudentKey, int] = {}
        self._cal_cache: dict[bytes, CourseCalendar] = {}
        self.sites = frozenset(sites or ())
        self.max_id_jump = max_id_jump
        self.monitor: Any = None  # stream_app.monitor.StreamMonitor, set by the runtime
        self.metrics.model_version.labels(model.version).set(1)

    def swap_model(self, model: ModelHandle) -> None:
        """Hot reload: used from the next batch on; students re-warm on their next event."""
        self.metrics.model_version.labels(self.model.version).set(0)
        self.model = model
        self.metrics.model_version.labels(model.version).set(1)
        log.info("model.swapped", version=model.version)

    # -- retry ------------------------------------------------------------------------
    async def _retry(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Redis or broker unreachable: wait and retry (backoff up to 5 s), never skip."""
        delay = 0.1
        while True:
            try:
                return await fn()
            except _FATAL as exc:
                raise FatalError(
                    f"{what} failed with {type(exc).__name__}: {exc}; retrying cannot fix "
                    "this (check the broker/Redis ACLs and message size limits)"
                ) from None
            except _RETRYABLE as exc:
                self.metrics.redis_retries.inc()
                log.warning("retrying", what=what, error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _calendar(self, raw: bytes) -> CourseCalendar:
        cal = self._cal_cache.get(raw)
        if cal is None:
            if len(self._cal_cache) > 10_000:
                self._cal_cache.clear()
            cal = self._cal_cache[raw] = decode(CourseCalendar, raw)
        return cal

    # -- the batch ----------------------------------------------------------------------
    async def process(self, records: list[InRecord]) -> BatchReport:
        t0 = time.perf_counter()
        rep = BatchReport(records=len(records))
        out: list[OutRecord] = []

        events: list[tuple[InRecord, LmsEvent]] = []
        for rec in records:
            if rec.value is None:
                out.append(dead_letter(rec, "stream.decode", "message has no value"))
                self.metrics.dead_letters.labels("stream.decode").inc()
                continue
            try:
                ev = decode_event(rec.value)
            except (ContractError, ValueError) as exc:
                out.append(dead_letter(rec, "stream.decode", exc))
                self.metrics.dead_letters.labels("stream.decode").inc()
                continue
            refused = self._refuse(rec, ev)
            if refused is not None:
                out.append(dead_letter(rec, refused[0], refused[1]))
                self.metrics.dead_letters.labels(refused[0]).inc()
                continue
            events.append((rec, ev))
        site_hi = await self._retry(
            "redis.read", lambda: read_site_ids(self.redis, sorted({ev.site for _, ev in events}))
        )
        events = self._plausible_ids(events, site_hi, out)
        by_key: dict[StudentKey, list[int]] = {}
        for i, (_, ev) in enumerate(events):
            by_key.setdefault(StudentKey.of(ev), []).append(i)
        keys = list(by_key)
        courses = sorted({(k.site, k.course) for k in keys})

        read: BatchRead = await self._retry(
            "redis.read", lambda: read_batch(self.redis, keys, courses)
        )
        missing = {c: raw for c, raw in read.calendars.items() if raw is None}
        if missing:
            first = _derived_starts(events, missing)
            defaults = {c: default_calendar(c[0], c[1], first[c]) for c in missing}
            won = await self._retry(
                "redis.calendar", lambda: ensure_calendars(self.redis, defaults)
            )
            read.calendars.update(won)
        cals = {c: self._calendar(raw) for c, raw in read.calendars.items() if raw is not None}

        applied = await self._run(keys, by_key, events, read, cals, None, rep, out, records)
        done = self.clock()
        for ap in applied:
            if ap.rec is not None and ap.rec.timestamp_ms:
                self.metrics.event_to_output.observe(max(0.0, done - ap.rec.timestamp_ms / 1000))
        if rep.duplicates:  # counted and logged, never silent (a bogus id could hide events)
            log.info("duplicates.skipped", count=rep.duplicates, examples=rep.duplicate_examples)
        self.metrics.events.labels("applied").inc(rep.applied)
        self.metrics.events.labels("duplicate").inc(rep.duplicates)
        self.metrics.events.labels("dead_letter").inc(rep.dead)
        self.metrics.batch_size.observe(len(records))
        if self.sweep_partitions:
            ts = time.perf_counter()
            await self._sweep_due(rep)
            rep.sweep_s = time.perf_counter() - ts
        rep.total_s = time.perf_counter() - t0
        self.metrics.batch_seconds.observe(rep.total_s)
        return rep

    async def _run(
        self,
        keys: list[StudentKey],
        by_key: dict[StudentKey, list[int]],
        events: list[tuple[InRecord, LmsEvent]],
        read: BatchRead,
        cals: dict[tuple[str, int], CourseCalendar],
        tick_day: int | None,
        rep: BatchReport,
        out: list[OutRecord],
        records: list[InRecord] | None = None,
        tick_partition: int = 0,
    ) -> list[_Applied]:
        """Plan, run the model, apply the alert policy, publish, write. ``by_key`` lists
        event indices per student; ``_TICK`` instead (sweeps) advances the student to
        ``tick_day`` without an event. ``records``: the batch as consumed (None for a
        sweep); its outcome counts are persisted with the state write."""
        handle = self.model
        fz = handle.featurizer
        students: list[_Student] = []
        commit_acc: list[np.ndarray] = []
        commit_day: list[int] = []
        commit_course: list[tuple[str, int]] = []
        applied: list[_Applied] = []
        ev_acc: list[np.ndarray] = []
        n_day = handle.n_day
        for key in keys:
            st = self._decode(read.states.get(key) or {}, handle)
            s = _Student(key, st, cals[(key.site, key.course)], read.profiles.get(key))
            s.alert0 = st.alert
            # the partition the student's events come on (all of them: keyed by student);
            # the alert book and candidates are kept per partition
            first = by_key[key][0]
            s.partition = tick_partition if first == _TICK else events[first][0].partition
            si = len(students)
            steps = 0
            for i in by_key[key]:
                if i == _TICK:
                    assert tick_day is not None
                    if st.is_new or (st.day is not None and st.day >= tick_day):
                        continue
                    rec: InRecord | None = None
                    ev: LmsEvent | None = None
                    day = tick_day
                else:
                    rec, ev = events[i]
                    if ev.event_id <= st.last_id:
                        rep.duplicates += 1
                        if len(rep.duplicate_examples) < 5:
                            rep.duplicate_examples.append(
                                f"{key.site}:{key.course}:{key.user} id {ev.event_id} "
                                f"<= last {st.last_id}"
                            )
                        self._advance_clock(rec, ev, s.cal)
                        continue
                    try:
                        day = int(fz.day_of(ev.time, s.cal))
                    except (ValueError, TypeError, KeyError) as exc:
                        out.append(dead_letter(rec, "stream.featurize", exc))
                        self.metrics.dead_letters.labels("stream.featurize").inc()
                        continue
                    if day > s.cal.length_days + MAX_DAYS_PAST_END:
                        reason = (
                            f"event is on course day {day}, more than {MAX_DAYS_PAST_END} days "
                            f"after the course end (length {s.cal.length_days}); publish the "
                            f"right CourseCalendar to {calendar_key(key.site, key.course)}"
                        )
                        out.append(dead_letter(rec, "stream.day", reason))
                        self.metrics.dead_letters.labels("stream.day").inc()
                        continue
                    if ev.time < s.cal.start - timedelta(days=MAX_DAYS_BEFORE_START):
                        reason = (
                            f"event time {ev.time.isoformat()} is more than "
                            f"{MAX_DAYS_BEFORE_START} days before the course start "
                            f"{s.cal.start.isoformat()}; fix the producer's clock or publish "
                            f"the right CourseCalendar to rs:cal:{key.site}:{key.course}"
                        )
                        out.append(dead_letter(rec, "stream.day", reason))
                        self.metrics.dead_letters.labels("stream.day").inc()
                        continue
                enrol = ev is not None and is_enrolment(ev)
                if not s.prepared:  # first change this batch: (re)initialise if needed
                    steps = self._prepare(s, handle, day, enrolled=enrol)
                    s.prepared = True
                assert st.day is not None and st.acc is not None
                if day > st.day:
                    for d in range(st.day, day):
                        acc = st.acc if d == st.day else fz.empty_accumulator()
                        # every closed day is an observation: the policy decides on
                        # end-of-day risks only (one event's spike never alerts)
                        s.obs.append((_COMMIT, steps + d - st.day, d, st.last_id))
                        s.commit_req.append(len(commit_acc))
                        s.commit_days.append(d)
                        commit_acc.append(acc)
                        commit_day.append(d)
                        commit_course.append((key.site, key.course))
                    steps += day - st.day
                    st.acc = fz.empty_accumulator()
                    st.day = day
                elif day < st.day and ev is not None:
                    rep.late += 1  # folded into the open day: committed days never change
                if ev is None or rec is None:
                    continue
                try:
                    if enrol:  # roster facts: create or end the enrolment, count no click
                        self._enrolment(s, ev, day)
                    else:
                        fz.fold(st.acc, ev)
                except (ValueError, TypeError, KeyError) as exc:
                    out.append(dead_letter(rec, "stream.featurize", exc))
                    self.metrics.dead_letters.labels("stream.featurize").inc()
                    continue
                s.obs.append((_EVENT, len(applied), st.day, ev.event_id))
                applied.append(_Applied(rec, ev, si, steps, st.day))
                ev_acc.append(st.acc.copy())
                st.last_id = ev.event_id
                self._advance_clock(rec, ev, s.cal, day)
            students.append(s)
        rep.applied += len(applied)
        dead_before_model = sum(1 for o in out if o.topic == TOPICS.dead_letter)
        rep.dead += dead_before_model
        rep.commits += len(commit_acc)
        active = [s for s in students if s.obs or s.commit_req]
        rep.students += len(active)

        alerts: list[RiskAlert] = []
        write = BatchWrite()
        now = self.clock()
        commit_vec: np.ndarray | None = None
        if active:
            commit_vec = self._vectors(fz, commit_acc, commit_day, commit_course, cals, n_day)
            ev_vec = self._vectors(
                fz,
                ev_acc,
                [a.day for a in applied],
                [(a.ev.site, a.ev.course_id) for a in applied],
                cals,
                n_day,
            )
            plan, _rows = self._plan(active, students, applied, commit_vec, ev_vec, handle)
            ti = time.perf_counter()
            res: StepResult = await self.engine.run(handle.loaded.model, handle.loaded.device, plan)
            rep.inference_s += time.perf_counter() - ti
            self.metrics.inference_seconds.observe(time.perf_counter() - ti)
            active, res = self._non_finite(active, students, res, applied, rep, out, handle)
            alerts = await self._apply(active, res, commit_vec, applied, handle, now, write, out)
            if alerts and self.explainer is not None:
                alerts = await self._explain(alerts, active, handle)
            for al in alerts:
                payload = encode(al)
                out.append(OutRecord(TOPICS.alerts, f"{al.site}:{al.user_id}".encode(), payload))
                write.alerts.append(payload)
        rep.alerts += alerts

        if out:
            await self._retry("kafka.publish", lambda: self.publisher.publish(out))
        done = self.clock()
        for al in alerts:
            self.metrics.event_to_alert.observe(max(0.0, done - al.event_time.timestamp()))
            self.metrics.alerts.labels(al.level.value).inc()
        if records is not None:
            ids = [a.ev for a in applied if not a.poisoned]
            for ev in ids:
                if ev.event_id > write.site_ids.get(ev.site, -1):
                    write.site_ids[ev.site] = ev.event_id
            write.counts = {
                "sent": len(records),
                "applied": rep.applied,
                "duplicate": rep.duplicates,
                "dead_letter": rep.dead,
            }
        if write.states or write.counts:
            check_write(write)  # everything validated before the first write
            await self._retry("redis.write", lambda: write_batch(self.redis, write))
            floor = self._day_floor
            if len(floor) > 2_000_000:
                floor.clear()
            for s in active:
                if s.st.day is not None and s.key in write.states:
                    floor[s.key] = s.st.day
        if self.monitor is not None:  # drift counts, withdrawals (stream_app/monitor.py)
            mon, evs = self.monitor, [ev for _, ev in events]
            await self._retry(
                "redis.monitor",
                lambda: mon.record(
                    self.redis, handle, commit_vec, commit_day, commit_course, evs, cals
                ),
            )
        return applied

    # -- hostile input -------------------------------------------------------------------
    def _refuse(self, rec: InRecord, ev: LmsEvent) -> tuple[str, str] | None:
        """(stage, reason) when a decoded event must not be applied, else None."""
        if self.sites and ev.site not in self.sites:
            return "stream.site", (
                f"site {ev.site!r} is not served by this worker (RISKSTREAM_SITES="
                f"{','.join(sorted(self.sites))}); add it there or fix the producer's site id"
            )
        if rec.key is not None and rec.key != ev.key:
            return "stream.key", (
                f"record key {rec.key[:200].decode('utf-8', 'replace')!r} disagrees with the "
                f"event's site:user {ev.key.decode()!r}; producers key events by LmsEvent.key"
            )
        if ev.event_id > MAX_EVENT_ID:
            return "stream.plausibility", (
                f"event id {ev.event_id} is above {MAX_EVENT_ID} (2^53-1), no Moodle log id "
                "is that large; it would hide every later event of this student as a duplicate"
            )
        now = self.clock()
        if ev.time.timestamp() > now + MAX_FUTURE_S:
            return "stream.plausibility", (
                f"event time {ev.time.isoformat()} is more than a day after the worker's clock "
                f"({datetime.fromtimestamp(now, UTC).isoformat()}); fix the producer's clock"
            )
        if ev.time < EARLIEST_EVENT:
            return "stream.plausibility", (
                f"event time {ev.time.isoformat()} is before {EARLIEST_EVENT.date()}; "
                "no Moodle site logged it (a zero or seconds-vs-milliseconds timestamp?)"
            )
        return None

    def _plausible_ids(
        self,
        events: list[tuple[InRecord, LmsEvent]],
        site_hi: dict[str, int],
        out: list[OutRecord],
    ) -> list[tuple[InRecord, LmsEvent]]:
        """Refuse ids more than ``max_id_jump`` above the site's known range: its highest
        applied id (kept in Redis), or, for a site not applied yet, the median of this
        batch's ids for it (one bogus id cannot set the range; roster records with id 0
        do not pull it down)."""
        ref = dict(site_hi)
        fresh: dict[str, list[int]] = {}
        for _, ev in events:
            if ev.site not in site_hi and ev.event_id > 0:
                fresh.setdefault(ev.site, []).append(ev.event_id)
        for site, ids in fresh.items():
            ids.sort()
            ref[site] = ids[len(ids) // 2]
        kept = []
        for rec, ev in events:
            limit = ref.get(ev.site, 0) + self.max_id_jump
            if ev.event_id > limit:
                reason = (
                    f"event id {ev.event_id} is more than {self.max_id_jump} above the site's "
                    f"known range (highest applied id {ref[ev.site]}); a bogus id would hide "
                    "the student's later events as duplicates (RISKSTREAM_STREAM_MAX_ID_JUMP)"
                )
                out.append(dead_letter(rec, "stream.plausibility", reason))
                self.metrics.dead_letters.labels("stream.plausibility").inc()
                continue
            kept.append((rec, ev))
        return kept

    def _non_finite(
        self,
        active: list[_Student],
        students: list[_Student],
        res: StepResult,
        applied: list[_Applied],
        rep: BatchReport,
        out: list[OutRecord],
        handle: ModelHandle,
    ) -> tuple[list[_Student], StepResult]:
        """Drop the rows whose new model state or any risk (raw, or through the version's
        calibration) is NaN/Infinity: their events are dead-lettered and their prior state
        kept (nothing of theirs is written or sent). Returns the remaining students and
        their rows of ``res`` (``ev_risk`` is per event and stays whole)."""
        calibrate = getattr(handle.loaded, "calibrate", None)
        ok = np.ones(len(active), dtype=bool)
        for v in res.states.values():
            ok &= np.isfinite(v.reshape(len(active), -1)).all(axis=1)
        n_rows = min(len(ok), len(res.seq_risk))
        for r in range(n_rows):
            if not np.isfinite(res.seq_risk[r]).all():
                ok[r] = False
        if calibrate is not None and n_rows:
            # the calibration is elementwise: one call over every student's closed days
            seqs = [res.seq_risk[r][active[r].rewarm :] for r in range(n_rows)]
            lens = np.fromiter((len(x) for x in seqs), dtype=np.int64, count=n_rows)
            if lens.sum():
                days = np.concatenate(
                    [
                        np.asarray(active[r].commit_days, dtype=np.int64)
                        for r in range(n_rows)
                        if lens[r]
                    ]
                )
                fin = np.isfinite(calibrate(np.concatenate(seqs), days))
                if not fin.all():
                    ends = np.cumsum(lens)
                    for r in range(n_rows):
                        if lens[r] and not fin[ends[r] - lens[r] : ends[r]].all():
                            ok[r] = False
        rows = {id(s): r for r, s in enumerate(active)}
        ev_rows = [rows.get(id(students[a.student]), -1) for a in applied]
        ev_risk = np.asarray(res.ev_risk)
        if calibrate is not None and len(applied):
            ev_risk = calibrate(ev_risk, np.asarray([a.day for a in applied], dtype=np.int64))
        for i, r in enumerate(ev_rows):
            if r >= 0 and not (np.isfinite(res.ev_risk[i]) and np.isfinite(ev_risk[i])):
                ok[r] = False
        if ok.all():
            return active, res
        skip = frozenset(int(r) for r in np.nonzero(~ok)[0])
        for i, a in enumerate(applied):
            if ev_rows[i] in skip and a.rec is not None:
                out.append(
                    dead_letter(
                        a.rec,
                        "stream.model",
                        "the model produced a non-finite state or risk for this student; "
                        "the event is refused and the student's prior state is kept",
                    )
                )
                self.metrics.dead_letters.labels("stream.model").inc()
                rep.applied -= 1
                rep.dead += 1
                a.poisoned = True
        log.warning("model.non_finite", students=len(skip))
        keep = [r for r in range(len(active)) if r not in skip]
        kept = StepResult(
            states={k: v[keep] for k, v in res.states.items()},
            seq_risk=[res.seq_risk[r] for r in keep],
            ev_risk=res.ev_risk,
        )
        return [active[r] for r in keep], kept

    # -- course clock sweep (disengaged students) -------------------------------------
    def _advance_clock(
        self, rec: InRecord, ev: LmsEvent, cal: CourseCalendar, day: int | None = None
    ) -> None:
        """Per (site, course, partition): the latest course day seen. Events of one
        partition arrive in time order, so every day before it is over for that partition's
        students, including the ones who did nothing."""
        if not self.sweep_partitions:
            return
        if day is None:
            try:
                day = int(self.model.featurizer.day_of(ev.time, cal))
            except (ValueError, TypeError, KeyError):
                return
        k = (ev.site, ev.course_id, rec.partition)
        if day > self._clock.get(k, -1):
            self._clock[k] = day
            self._clock_dirty.add(k)

    async def _sweep_due(self, rep: BatchReport) -> None:
        """Sweep and release every (site, course, partition) whose clock advanced. They
        touch disjoint keys (a partition's students, candidates and book), so they run
        concurrently: their Redis writes share fsyncs (Redis syncs the AOF once per event
        loop turn) and their round trips overlap; model work still runs one at a time."""
        due, self._clock_dirty = self._clock_dirty, set()
        chains = []
        for site, course, partition in sorted(due):
            target = self._clock[(site, course, partition)] - self.sweep_lag_days
            if target > self._swept.get((site, course, partition), -1):
                chains.append(self._sweep_release(site, course, partition, target))
        if not chains:
            return
        for sub in await asyncio.gather(*chains):
            rep.merge(sub)

    async def _sweep_release(
        self, site: str, course: int, partition: int, target: int
    ) -> BatchReport:
        rep = BatchReport()
        await self.sweep(site, course, partition, target, rep)
        # every day before ``target`` is now closed for all of the partition's students:
        # their candidates can be admitted
        tr = time.perf_counter()
        await self._release(site, course, partition, target - 1, rep)
        rep.release_s += time.perf_counter() - tr
        self._swept[(site, course, partition)] = target
        return rep

    async def sweep(
        self, site: str, course: int, partition: int, day: int, rep: BatchReport | None = None
    ) -> int:
        """Advance every student of ``course`` on ``partition`` whose open day is before
        ``day`` through the empty days up to it (their risk moves although they emit
        nothing), in chunks, with the alert policy applied to each empty day's risk.
        Idempotent: students already at ``day`` are skipped. Returns students advanced."""
        rep = rep or BatchReport()
        n_parts = self.sweep_partitions
        assert n_parts
        members = await self._retry(
            "redis.sweep", lambda: self.redis.zrange(StudentKey(site, course, 0).rank_key, 0, -1)
        )
        mine = []
        for m in members:
            user = int(m)
            part = self._partition_cache.get((site, user))
            if part is None:
                key_bytes = f"{site}:{user}".encode()
                part = (murmur2(key_bytes) & 0x7FFFFFFF) % n_parts
                if len(self._partition_cache) > 1_000_000:
                    self._partition_cache.clear()
                self._partition_cache[(site, user)] = part
            if part == partition:
                key = StudentKey(site, course, user)
                if self._day_floor.get(key, -1) < day:  # else already at ``day`` or later
                    mine.append(key)
        before = rep.students
        for i in range(0, len(mine), self.sweep_chunk):
            chunk = mine[i : i + self.sweep_chunk]
            read = await self._retry(
                "redis.read",
                lambda c=chunk: read_batch(self.redis, c, [(site, course)]),  # type: ignore[misc]
            )
            raw = read.calendars.get((site, course))
            if raw is None:
                return 0
            cals = {(site, course): self._calendar(raw)}
            out: list[OutRecord] = []
            await self._run(
                chunk,
                {key: [_TICK] for key in chunk},
                [],
                read,
                cals,
                day,
                rep,
                out,
                tick_partition=partition,
            )
        advanced = rep.students - before
        self.metrics.swept.inc(advanced)
        return advanced

    # -- helpers ------------------------------------------------------------------------
    def _decode(self, raw: dict[bytes, bytes], handle: ModelHandle) -> StudentState:
        return decode_state(raw, handle.n_day)

    @staticmethod
    def _enrolment(s: _Student, ev: LmsEvent, day: int) -> None:
        """An enrolment record: a new student already has their state (``_prepare``); a
        returning one is enrolled again. An unenrolment ends alerting for the student."""
        a = s.st.alert
        if ev.eventname == UNENROLMENT_EVENTNAME:
            if a.left is None:
                s.st.alert = AlertState(a.armed, a.last_day, a.level, day, a.since)
                s.left = True
                s.unenrolled.append(day)
        elif a.left is not None:
            s.st.alert = AlertState(a.armed, a.last_day, a.level, None, a.since)
            s.left = False
            s.rejoined = day
            s.rejoins.append(day)

    def _prepare(self, s: _Student, handle: ModelHandle, day: int, enrolled: bool = False) -> int:
        """Before a student's first applied event of the batch: start a new student, or
        re-warm one whose state was made by another model version. Returns the number of
        re-warm steps queued (they run before this batch's commits). ``d0``, from which the
        policy counts days of evidence, is the enrolment day when an enrolment record
        created the student, else the course start (never the first click)."""
        st = s.st
        fz = handle.featurizer
        n_acc = len(fz.empty_accumulator())
        ms = st.model_state
        shapes_ok = all(k in ms and ms[k].size == n for k, n in handle.sizes.items())
        if st.is_new:
            s.init = True
            s.created = day
            st.alert = AlertState(since=max(day, 0))
            st.day = min(self.first_day, day)
            st.d0 = day if enrolled else 0
            st.acc = fz.empty_accumulator()
            st.win = np.zeros((0, handle.n_day), dtype=np.float32)
            return 0
        if st.acc is None or len(st.acc) != n_acc:
            st.acc = fz.empty_accumulator()
        if st.ver == handle.version and st.spec == handle.spec_hash and shapes_ok:
            if st.win is None:
                st.win = np.zeros((0, handle.n_day), dtype=np.float32)
            return 0
        s.init = True
        if st.spec != handle.spec_hash or st.win is None:
            st.win = np.zeros((0, handle.n_day), dtype=np.float32)  # other features: start over
        s.rewarm = len(st.win)
        return s.rewarm

    @staticmethod
    def _vectors(
        fz: Any,
        accs: list[np.ndarray],
        days: list[int],
        courses: list[tuple[str, int]],
        cals: dict[tuple[str, int], CourseCalendar],
        n_day: int,
    ) -> np.ndarray:
        """Day vectors for many (accumulator, day) pairs, batched per course calendar."""
        outv = np.zeros((len(accs), n_day), dtype=np.float32)
        if not accs:
            return outv
        groups: dict[tuple[str, int], list[int]] = {}
        for i, c in enumerate(courses):
            groups.setdefault(c, []).append(i)
        for c, idx in groups.items():
            a = np.stack([accs[i] for i in idx]).astype(np.float32, copy=False)
            d = np.asarray([days[i] for i in idx], dtype=np.int64)
            outv[idx] = fz.day_vectors(a, d, cals[c])
        return outv

    def _plan(
        self,
        active: list[_Student],
        students: list[_Student],
        applied: list[_Applied],
        commit_vec: np.ndarray,
        ev_vec: np.ndarray,
        handle: ModelHandle,
    ) -> tuple[StepPlan, dict[int, int]]:
        fz = handle.featurizer
        rows = {id(s): r for r, s in enumerate(active)}
        n = len(active)
        states = {k: np.zeros((n, *shape), dtype=np.float32) for k, shape in handle.shapes.items()}
        init_rows: list[int] = []
        init_static: list[np.ndarray] = []
        seqs: list[np.ndarray] = []
        for r, s in enumerate(active):
            if s.init:
                init_rows.append(r)
                prof = decode(StudentProfile, s.profile) if s.profile else None
                init_static.append(np.asarray(fz.static_vector(prof), dtype=np.float32))
            else:
                for k, shape in handle.shapes.items():
                    states[k][r] = s.st.model_state[k].reshape(shape)
            parts = []
            if s.rewarm:
                assert s.st.win is not None
                parts.append(s.st.win[-s.rewarm :])
            if s.commit_req:
                parts.append(commit_vec[s.commit_req])
            seqs.append(np.concatenate(parts) if parts else np.zeros((0, handle.n_day), np.float32))
        row_of_student = {si: rows[id(s)] for si, s in enumerate(students) if id(s) in rows}
        plan = StepPlan(
            states=states,
            init_rows=np.asarray(init_rows, dtype=np.int64),
            init_static=(
                np.stack(init_static)
                if init_static
                else np.zeros((0, handle.n_static), dtype=np.float32)
            ),
            seqs=seqs,
            ev_student=np.asarray([row_of_student[a.student] for a in applied], dtype=np.int64),
            ev_after=np.asarray([a.after for a in applied], dtype=np.int64),
            ev_x=ev_vec,
        )
        return plan, row_of_student

    async def _apply(
        self,
        active: list[_Student],
        res: StepResult,
        commit_vec: np.ndarray,
        applied: list[_Applied],
        handle: ModelHandle,
        now: float,
        write: BatchWrite,
        out: list[OutRecord],
    ) -> list[RiskAlert]:
        """Model outputs -> calibrated risks, trajectories, the alert policy's candidates
        (``_policy``; admitted later by ``_release``), risk scores and the state writes."""
        loaded = handle.loaded
        th = loaded.thresholds
        created = datetime.fromtimestamp(now, UTC)
        ev_days = np.asarray([a.day for a in applied], dtype=np.int64)
        ev_risk = np.clip(loaded.calibrate(res.ev_risk, ev_days), 0.0, 1.0).tolist()
        version_json = json.dumps(handle.version)
        created_json = json.dumps(created.isoformat().replace("+00:00", "Z"))
        alert_before = {}
        cohort = loaded.calibrator.cohort
        cohort_sums: dict[tuple[str, int], list[int]] = {}  # (book, day) -> [sum, count]
        traj_base: list[int] = []
        day_risks: list[list[float]] = []
        # calibrated closed-day risks of every student in one call (the calibration is
        # elementwise), then split back per student
        seqs = [res.seq_risk[r][s.rewarm :] for r, s in enumerate(active)]
        lens = [len(x) for x in seqs]
        cal_parts: list[np.ndarray] = []
        if sum(lens):
            days = np.concatenate(
                [
                    np.asarray(s.commit_days, dtype=np.int64)
                    for s, n in zip(active, lens, strict=True)
                    if n
                ]
            )
            cal_all = np.clip(loaded.calibrate(np.concatenate(seqs), days), 0.0, 1.0)
            cal_parts = np.split(cal_all, np.cumsum(lens)[:-1])
        empty = np.zeros(0, np.float32)
        for r, s in enumerate(active):
            st = s.st
            # as read: an enrolment record may have changed it already in ``_run``
            alert_before[r] = s.alert0 if s.alert0 is not None else st.alert
            for k in handle.shapes:
                st.model_state[k] = res.states[k][r].reshape(-1).copy()
            seq = seqs[r]
            cal = cal_parts[r] if lens[r] else empty
            if cohort and len(seq):  # the cohort's day sums (models/cohort.py)
                ck = caps_key(s.key.site, s.key.course, s.partition)
                # enrolled that day: from the first record (a late registrant's earlier
                # days, committed on arrival, count for nobody), until the unenrolment
                left, since = st.alert.left, st.alert.since or 0
                for d, q in zip(s.commit_days, quantized_logit(seq).tolist(), strict=True):
                    if since <= d and (left is None or left > d):
                        tot = cohort_sums.setdefault((ck, d), [0, 0])
                        tot[0] += int(q)
                        tot[1] += 1
            traj_base.append(len(st.traj))
            day_risks.append(cal.tolist())
            if len(cal):
                st.traj = np.concatenate([st.traj, cal.astype(np.float16)])
            if s.commit_req:
                assert st.win is not None
                st.win = np.concatenate([st.win, commit_vec[s.commit_req]])[-self.window_days :]
        # one increment per course book and day, however many students closed it here
        for (ck, d), (total, count) in sorted(cohort_sums.items()):
            write.hincrs.append((ck, f"ls{d}", total))
            write.hincrs.append((ck, f"ln{d}", count))
        alerts = await self._policy(active, traj_base, day_risks, handle, th, created, write)
        for r, s in enumerate(active):
            st = s.st
            last_day = st.day if st.day is not None else 0
            # what the risk score shows: the latest observation (event or closed day)
            for kind, idx, day, _trigger in s.obs:
                risk = ev_risk[idx] if kind == _EVENT else day_risks[r][idx - s.rewarm]
                st.risk, last_day = float(risk), day
            st.level = "low" if st.alert.left is not None else th.level(st.risk).value
            st.ver, st.spec, st.upd = handle.version, handle.spec_hash, now
            write.states[s.key] = encode_state(
                st, full=s.init or bool(s.commit_req), alert=st.alert != alert_before[r]
            )
            if st.alert.left is None:
                write.ranks[s.key] = st.risk
            elif s.left:
                write.unranks.append(s.key)
            key = f"{s.key.site}:{s.key.course}:{s.key.user}".encode()
            score = risk_score_json(st, s.key, last_day, version_json, created_json)
            out.append(OutRecord(TOPICS.risk_latest, key, score))
        return alerts

    async def _policy(
        self,
        active: list[_Student],
        traj_base: list[int],
        day_risks: list[list[float]],
        handle: ModelHandle,
        th: Any,
        created: datetime,
        write: BatchWrite,
    ) -> list[RiskAlert]:
        """Each student's closed days through ``decide`` (re-arming, candidacy); candidates
        go to the day's candidate set of their course and partition, admitted later by
        ``_release`` once the day is over for everyone. Enrolment counts per day feed the
        capacity. Returns no alerts itself (kept async and list-typed for the hook)."""
        cohort = handle.loaded.calibrator.cohort
        for r, s in enumerate(active):
            site, course, user = s.key
            part = s.partition
            ck = caps_key(site, course, part)
            if s.created is not None:
                write.hincrs.append((ck, f"n{max(s.created, 0)}", 1))
            for d in s.rejoins:
                write.hincrs.append((ck, f"n{max(d, 0)}", 1))
            for d in s.unenrolled:
                write.hincrs.append((ck, f"u{d}", 1))
            for kind, idx, day, trigger in s.obs:
                if kind != _COMMIT:
                    continue
                pos = traj_base[r] + idx - s.rewarm
                recent = s.st.traj[max(0, pos - th.persist_days + 1) : pos + 1]
                dec = decide(
                    s.st.alert,
                    recent.astype(np.float32).tolist(),
                    day,
                    day - s.st.d0 + 1,
                    th,
                    act_at=th.medium if cohort else None,  # act-on judged at admission
                )
                s.st.alert = dec.state
                if dec.candidate:
                    write.zadds.append(
                        (candidates_key(site, course, part, day), dec.held, f"{user}:{trigger}")
                    )
        return []

    def _partition_of(self, site: str, user: int) -> int:
        part = self._partition_cache.get((site, user))
        if part is None:
            part = (murmur2(f"{site}:{user}".encode()) & 0x7FFFFFFF) % self.sweep_partitions
            if len(self._partition_cache) > 1_000_000:
                self._partition_cache.clear()
            self._partition_cache[(site, user)] = part
        return part

    async def _release(
        self, site: str, course: int, partition: int, upto: int, rep: BatchReport
    ) -> list[RiskAlert]:
        """Admit the candidates of every closed day up to ``upto`` not released yet, day by
        day, highest held risk first within the partition's share of the course's capacity
        (``alerting.capacity``); publish the alerts, then one atomic write: the admitted
        students' alert state, the day's count, the released day, the spent candidate sets.
        A crash before the write replays the same release with the same alert ids."""
        handle = self.model
        th = handle.loaded.thresholds
        ck = caps_key(site, course, partition)
        raw = await self._retry("redis.caps", lambda: self.redis.hgetall(ck))
        caps = {k.decode(): int(v) for k, v in raw.items()}
        first = max(caps.get("rel", -1) + 1, th.min_days)
        if first > upto:
            return []
        days = list(range(first, upto + 1))
        pipe = self.redis.pipeline(transaction=False)
        for d in days:
            pipe.zrange(candidates_key(site, course, partition, d), 0, -1, withscores=True)
        cand_raw = await self._retry("redis.candidates", pipe.execute)
        per_day = {int(k[1:]): v for k, v in caps.items() if k[0] == "a"}
        n_add = {int(k[1:]): v for k, v in caps.items() if k[0] == "n"}
        n_del = {int(k[1:]): v for k, v in caps.items() if k[0] == "u"}
        parsed: list[list[tuple[float, int, int]]] = []
        users: set[int] = set()
        cohort = handle.loaded.calibrator.cohort
        for d, members in zip(days, cand_raw, strict=True):
            row = []
            for member, score in members:
                user_s, trigger_s = member.decode().split(":")
                row.append((float(score), int(user_s), int(trigger_s)))
            if cohort and row:  # act on the held risk read against the day's cohort
                count = caps.get(f"ln{d}", 0)
                mu = mean_of(caps.get(f"ls{d}", 0), count)
                rel = handle.loaded.relative(
                    np.asarray([score for score, _u, _t in row]),
                    d,
                    float("nan") if mu is None else mu,
                    count,
                )
                row = [
                    (float(r), user, t)
                    for r, (_s, user, t) in zip(rel.tolist(), row, strict=True)
                    if r >= th.high
                ]
            users.update(user for _s, user, _t in row)
            parsed.append(row)
        # each candidate's alert memory and day risks: a candidate is judged as if every
        # earlier day had been released the moment it closed, whatever the batching
        memory: dict[int, tuple[AlertState, np.ndarray]] = {}
        contacted: dict[int, list[datetime]] = {}  # teachers' feedback, per candidate
        day0: datetime | None = None  # the course's start: a day d closes at day0 + d + 1
        if users:
            order = sorted(users)
            pipe = self.redis.pipeline(transaction=False)
            for u in order:
                pipe.hmget(StudentKey(site, course, u).redis_key, ["alert", "traj"])
            if self.feedback:
                for u in order:
                    pipe.hgetall(feedback_key(site, course, u))
                pipe.get(calendar_key(site, course))
            got = await self._retry("redis.candidates", pipe.execute)
            for u, (alert_raw, traj_raw) in zip(order, got[: len(order)], strict=True):
                traj = (
                    np.frombuffer(traj_raw, dtype=np.float16).astype(np.float32)
                    if traj_raw
                    else np.zeros(0, np.float32)
                )
                memory[u] = (AlertState.from_json(alert_raw), traj)
            if self.feedback and got[-1] is not None:
                day0 = self._calendar(got[-1]).start
                for u, raw_fb in zip(order, got[len(order) : 2 * len(order)], strict=True):
                    times = feedback.contacted_at(feedback.parse(raw_fb))
                    if times:
                        contacted[u] = times
        cooldown = max(th.cooldown_days, 1)

        def held_back(user: int, d: int) -> bool:
            """Marked *contacted* by a teacher less than the cooldown before day d closed."""
            if user not in contacted or day0 is None:
                return False
            closes = day0 + timedelta(days=d + 1)
            return feedback.within(contacted[user], closes, cooldown)

        def eligible(user: int, d: int) -> bool:
            state, traj = memory[user]
            if state.left is not None and state.left <= d:
                return False
            if held_back(user, d):
                self.held_back += 1
                return False
            a = state.last_day
            if a is None or a >= d:
                return a is None
            # after an alert at day a: the cooldown, and the risk fell below rearm since
            return d - a >= cooldown and bool((traj[a + 1 : d + 1] < th.rearm).any())

        picked: list[tuple[int, int, int, float]] = []  # (day, user, trigger, held)
        for d, row in zip(days, parsed, strict=True):
            if not row:
                continue
            enrolled = sum(v for k, v in n_add.items() if k <= d)
            enrolled -= sum(v for k, v in n_del.items() if k < d)
            cands = [(score, user) for score, user, _t in row if eligible(user, d)]
            trig = {user: t for _s, user, t in row}
            held = {user: score for score, user, _t in row}
            room = capacity(
                max(enrolled, 1), per_day, d, th, partition, max(self.sweep_partitions, 1)
            )
            for user in admit(cands, room):
                picked.append((d, user, trig[user], held[user]))
                state, traj = memory[user]
                memory[user] = (raised(state, d), traj)
                per_day[d] = per_day.get(d, 0) + 1
        write = BatchWrite()
        write.hsets.append((ck, "rel", upto))
        write.dels.extend(candidates_key(site, course, partition, d) for d in days)
        alerts: list[RiskAlert] = []
        if picked:
            keys = sorted({StudentKey(site, course, u) for _, u, _, _ in picked})
            read = await self._retry(
                "redis.read", lambda: read_batch(self.redis, keys, [(site, course)])
            )
            cal_raw = read.calendars.get((site, course))
            if cal_raw is None:
                return []
            cal = self._calendar(cal_raw)
            students = {}
            for k in keys:
                st = self._decode(read.states.get(k) or {}, handle)
                students[k] = _Student(k, st, cal, read.profiles.get(k))
            created = datetime.fromtimestamp(self.clock(), UTC)
            for d, user, trigger, held_risk in picked:
                s = students[StudentKey(site, course, user)]
                # armed again if the risk has already fallen below rearm since the alert
                closed = s.st.traj[d + 1 :].astype(np.float32)
                rearmed = bool((closed < th.rearm).any())
                a = s.st.alert
                s.st.alert = AlertState(rearmed, d, RiskLevel.HIGH.value, a.left, a.since)
                alerts.append(self._alert(s, handle, d, trigger, held_risk, th, created))
                write.hincrs.append((ck, f"a{d}", 1))
            for k, s in students.items():
                write.states[k] = {"alert": s.st.alert.to_json()}
            if alerts and self.explainer is not None:
                te = time.perf_counter()
                alerts = await self._explain(alerts, list(students.values()), handle)
                rep.explain_s += time.perf_counter() - te
        out = []
        for al in alerts:
            payload = encode(al)
            out.append(OutRecord(TOPICS.alerts, f"{al.site}:{al.user_id}".encode(), payload))
            write.alerts.append(payload)
        if out:
            await self._retry("kafka.publish", lambda: self.publisher.publish(out))
            done = self.clock()
            for al in alerts:
                self.metrics.event_to_alert.observe(max(0.0, done - al.event_time.timestamp()))
                self.metrics.alerts.labels(al.level.value).inc()
        await self._retry("redis.write", lambda: write_batch(self.redis, write))
        rep.alerts += alerts
        return alerts

    @staticmethod
    def _alert(
        s: _Student,
        handle: ModelHandle,
        day: int,
        trigger: int,
        risk: float,
        th: Any,
        created: datetime,
    ) -> RiskAlert:
        lvl = RiskLevel.HIGH
        return RiskAlert(
            alert_id=alert_id(
                s.key.site,
                s.key.course,
                s.key.user,
                handle.version,
                max(trigger, 0),
                f"{lvl.value}@day{day}",
            ),
            site=s.key.site,
            user_id=s.key.user,
            course_id=s.key.course,
            risk=min(max(risk, 0.0), 1.0),
            level=lvl,
            threshold=float(th.high),
            model_version=handle.version,
            day=day,
            trigger_event_id=max(trigger, 0),
            event_time=s.cal.start + timedelta(days=day),
            created_at=created,
        )

    async def _explain(
        self, alerts: list[RiskAlert], active: list[_Student], handle: ModelHandle
    ) -> list[RiskAlert]:
        """Contributions from models.explain (occlusion over the student's window) for the
        alerts whose level is in ``explain_levels``; an explanation failure never blocks the
        alert, it goes out without contributions."""
        if self.explain_levels is not None:
            wanted = [i for i, al in enumerate(alerts) if al.level.value in self.explain_levels]
            if len(wanted) < len(alerts):
                done = list(alerts)
                if wanted:
                    some = await self._explain_all([alerts[i] for i in wanted], active, handle)
                    for i, al in zip(wanted, some, strict=True):
                        done[i] = al
                return done
        return await self._explain_all(alerts, active, handle)

    async def _explain_all(
        self, alerts: list[RiskAlert], active: list[_Student], handle: ModelHandle
    ) -> list[RiskAlert]:
        by_key = {s.key: s for s in active}
        fz = handle.featurizer
        explainer = self.explainer
        assert explainer is not None

        def work() -> list[RiskAlert]:
            windows, statics, which = [], [], []
            for n, al in enumerate(alerts):
                s = by_key[StudentKey(al.site, al.course_id, al.user_id)]
                prof = decode(StudentProfile, s.profile) if s.profile else None
                win = s.st.win if s.st.win is not None else np.zeros((0, handle.n_day))
                assert s.st.acc is not None and s.st.day is not None
                later = s.st.day - 1 - al.day  # committed days after the alert's day
                if al.day < s.st.day:
                    if len(win) <= later:
                        continue  # the window has moved past the alert's day: no reasons
                    # the window ends on the alert's day: reasons speak of what was known
                    windows.append(np.asarray(win[: len(win) - later], dtype=np.float32))
                else:
                    open_vec = fz.day_vector(s.st.acc, s.st.day, s.cal)[None, :]
                    windows.append(np.concatenate([win, open_vec]).astype(np.float32))
                statics.append(np.asarray(fz.static_vector(prof), np.float32))
                which.append(n)
            explained: list[tuple[list[Contribution], str]] = [([], "")] * len(alerts)
            if windows:
                try:  # one replay for the whole batch's alerts
                    with torch.inference_mode():
                        got = explainer(handle.loaded, windows, statics)
                    for n, e in zip(which, got, strict=True):
                        explained[n] = e
                except Exception as exc:  # never lose an alert over its explanation
                    log.warning("explain.failed", error=str(exc), alerts=len(alerts))
            return [
                al.model_copy(update={"contributions": list(contrib)[:10], "explanation": text})
                for al, (contrib, text) in zip(alerts, explained, strict=True)
            ]

        result: list[RiskAlert] = await self.engine.call(work)
        return result

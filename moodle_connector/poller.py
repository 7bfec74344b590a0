"""Pages the site's log into the events topic; the cursor moves only after the broker acks.

Order of one page: fetch rows after the cursor -> normalize (bad rows to dead letter) ->
sync the rosters of the page's courses (an enrolment record per student of a roster synced
now) -> keep students' events only -> enrich grades -> send every record -> await every ack
-> advance the cursor. A crash
anywhere before the last step replays that page; event ids are log ids, so consumers dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts import (
    ENROLMENT_EVENTNAME,
    TOPICS,
    UNENROLMENT_EVENTNAME,
    LmsEvent,
    encode,
    enrolment_event,
)
from moodle_connector.client import MoodleClient, RetryPolicy
from moodle_connector.courses import CourseSync
from moodle_connector.cursor import Cursor
from moodle_connector.deadletter import dead_letter
from moodle_connector.enrich import Enricher
from moodle_connector.errors import MoodleError
from moodle_connector.normalize import NormalizeError, normalize_row, should_drop

log = structlog.get_logger("moodle_connector.poller")

EVENTS_FUNCTION = "local_riskstream_get_events"
STAGE = "connector.normalize"
#: log rows after which a course's roster is read again before its events are filtered
ROSTER_CHANGES = frozenset(
    {
        ENROLMENT_EVENTNAME,
        UNENROLMENT_EVENTNAME,
        "\\core\\event\\user_enrolment_updated",
        "\\core\\event\\role_assigned",
        "\\core\\event\\role_unassigned",
    }
)


class Producer(Protocol):
    """What the poller needs of ``aiokafka.AIOKafkaProducer``."""

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[Any]: ...


@dataclass
class PageResult:
    rows: int = 0
    published: int = 0
    dropped: int = 0
    not_students: int = 0
    enrolments: int = 0
    dead: int = 0
    last_id: int = 0
    has_more: bool = False
    newest_time: float | None = None  # timecreated of the newest row, for lag


@dataclass
class PollerStats:
    pages: int = 0
    rows: int = 0
    published: int = 0
    dropped: int = 0
    not_students: int = 0
    enrolments: int = 0
    dead: int = 0
    outages: int = 0
    lag_s: float = 0.0


class Poller:
    """One site's log -> ``riskstream.events`` (keyed site:user) and dead letters."""

    def __init__(
        self,
        client: MoodleClient,
        producer: Producer,
        redis: Redis,
        site: str,
        *,
        page_size: int = 1000,
        course_id: int = 0,
        idle_s: float = 2.0,
        enricher: Enricher | None = None,
        courses: CourseSync | None = None,
        outage_backoff: RetryPolicy | None = None,
        events_topic: str = TOPICS.events,
        dead_letter_topic: str = TOPICS.dead_letter,
        own_user_id: int | None = None,
        wait_s: int = 0,
        publish_enrolments: bool = True,
    ) -> None:
        if not 1 <= page_size <= 5000:
            raise ValueError("page size must be 1..5000 (the plugin's limit)")
        self.client = client
        self.producer = producer
        self.site = site
        self.cursor = Cursor(redis, site)
        self.page_size = page_size
        self.course_id = course_id
        self.idle_s = idle_s
        self.enricher = enricher
        self.courses = courses
        self.outage_backoff = outage_backoff or RetryPolicy(attempts=1_000_000, base_s=1, max_s=60)
        self.events_topic = events_topic
        self.dead_letter_topic = dead_letter_topic
        self.stats = PollerStats()
        self.own_user_id = own_user_id  # the token's user: its rows are never events
        self.wait_s = wait_s  # long poll when drained (plugin >= 0.2): one call per wait
        self._drained = False
        self.publish_enrolments = publish_enrolments

    async def fetch(self, since_id: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            "sinceid": since_id,
            "limit": self.page_size,
            "courseid": self.course_id,
        }
        if self.wait_s and self._drained:
            params["waitseconds"] = self.wait_s
        body = await self.client.call(EVENTS_FUNCTION, params)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise MoodleError(
                f"{EVENTS_FUNCTION} returned no 'events' list", function=EVENTS_FUNCTION
            )
        for w in body.get("warnings") or []:
            log.warning("moodle warning", function=EVENTS_FUNCTION, warning=w)
        return body

    def split(
        self, rows: list[Any]
    ) -> tuple[list[LmsEvent], list[tuple[Any, NormalizeError]], int]:
        """Rows -> (events, rejected rows with reasons, count dropped on purpose)."""
        events: list[LmsEvent] = []
        bad: list[tuple[Any, NormalizeError]] = []
        dropped = 0
        for row in rows:
            if isinstance(row, Mapping) and (
                should_drop(row)
                or (self.own_user_id is not None and row.get("userid") == self.own_user_id)
            ):
                dropped += 1
                continue
            try:
                events.append(normalize_row(row, self.site))
            except NormalizeError as exc:
                bad.append((row, exc))
        return events, bad, dropped

    async def poll_once(self) -> PageResult:
        """One page end to end; returns what happened. Raises MoodleError on Moodle trouble."""
        since = await self.cursor.get()
        body = await self.fetch(since)
        rows: list[Any] = body["events"]
        result = PageResult(rows=len(rows), has_more=bool(body.get("hasmore")))
        row_ids = [r.get("id") for r in rows if isinstance(r, Mapping)]
        ids = [int(i) for i in row_ids if isinstance(i, int | str) and str(i).isdigit()]
        try:
            last_id = int(body.get("lastid") or 0)
        except (TypeError, ValueError):
            last_id = 0
        last_id = max([last_id, *ids]) if ids else last_id
        if rows and last_id <= since:
            raise MoodleError(
                f"{EVENTS_FUNCTION} returned rows but lastid {last_id} <= sinceid {since}",
                function=EVENTS_FUNCTION,
            )
        events, bad, result.dropped = self.split(rows)
        enrolments: list[LmsEvent] = []
        if self.courses is not None and events:
            changed = {ev.course_id for ev in events if ev.eventname in ROSTER_CHANGES}
            synced = await self.courses.seen({ev.course_id for ev in events}, force=changed)
            if self.publish_enrolments:
                enrolments = self.enrolments(synced, events)
            events, result.not_students = self.courses.only_students(events)
        if self.enricher is not None and events:
            by_id = {
                int(r["id"]): r
                for r in rows
                if isinstance(r, Mapping) and str(r.get("id", "")).isdigit()
            }
            events = await self.enricher.enrich(events, by_id)
        futures = [
            await self.producer.send(self.events_topic, value=encode(ev), key=ev.key)
            for ev in (*enrolments, *events)
        ]
        for row, exc in bad:
            user = row.get("userid") if isinstance(row, Mapping) else None
            dl = dead_letter(
                row, str(exc), STAGE, exc, key=f"{self.site}:{user}" if user is not None else None
            )
            futures.append(
                await self.producer.send(
                    self.dead_letter_topic, value=encode(dl), key=(dl.key or "").encode() or None
                )
            )
            log.warning("log row dead-lettered", reason=str(exc))
        if futures:
            await asyncio.gather(*futures)  # broker acked every record of the page
        if last_id > since:
            await self.cursor.set(last_id)
        result.published, result.dead, result.last_id = len(events), len(bad), max(last_id, since)
        result.enrolments = len(enrolments)
        self._drained = not result.has_more
        times = [r.get("timecreated") for r in rows if isinstance(r, Mapping)]
        numeric = [float(t) for t in times if isinstance(t, int | float)]
        result.newest_time = max(numeric) if numeric else None
        self._account(result)
        return result

    def enrolments(
        self, synced: list[tuple[int, dict[str, Any]]], events: list[LmsEvent]
    ) -> list[LmsEvent]:
        """An enrolment record (event id 0) per student of each roster synced now: the worker
        creates the state of a student who never clicks (no-shows are scored). Id 0 never
        overwrites anything: the worker applies it only to a missing state.

        Time: the enrolment's start (``local_riskstream_get_enrolments``); where the plugin
        cannot tell, the earliest row of the course in this page (never later than now), so a
        connector catching up on an old log does not put a start after the student's history.
        """
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        first: dict[int, datetime] = {}
        for ev in events:
            if ev.course_id not in first or ev.time < first[ev.course_id]:
                first[ev.course_id] = ev.time
        out = []
        for course_id, roster in synced:
            fallback = min(now, first.get(course_id, now))
            starts = roster.get("starts") or {}
            for user_id in roster["students"]:
                start = starts.get(str(user_id))
                when = min(now, datetime.fromtimestamp(start, UTC)) if start else fallback
                out.append(enrolment_event(self.site, course_id, user_id, when))
        return out

    def _account(self, r: PageResult) -> None:
        s = self.stats
        s.pages += 1
        s.rows += r.rows
        s.published += r.published
        s.dropped += r.dropped
        s.not_students += r.not_students
        s.enrolments += r.enrolments
        s.dead += r.dead
        if r.newest_time is not None:
            s.lag_s = max(0.0, time.time() - r.newest_time)
        elif not r.has_more:
            s.lag_s = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop``; full pages follow at once, an empty log waits ``idle_s``.

        Outages (MoodleUnavailable after the client's own retries, broker or Redis errors)
        back off and resume;
        fatal errors (token, service, web services off) propagate to the caller.
        """
        failures = 0
        while not stop.is_set():
            try:
                page = await self.poll_once()
                failures = 0
            except (MoodleError, KafkaError, RedisError, OSError) as exc:
                if isinstance(exc, MoodleError) and exc.fatal:
                    raise
                # Moodle, broker or Redis away: the cursor did not move, so retrying is safe.
                failures += 1
                self.stats.outages += 1
                delay = self.outage_backoff.delay(failures)
                log.warning("polling failed, backing off", error=str(exc), delay_s=round(delay, 2))
                await _wait(stop, delay)
                continue
            if page.has_more:
                continue
            await _wait(stop, self.idle_s)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once on shutdown."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)

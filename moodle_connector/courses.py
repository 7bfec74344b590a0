"""Per-course facts beside the event stream: calendars for the featurizer, rosters for the sink.

Redis keys (contracts/keys.py; ``{site:course}`` is the course's cluster hash tag):
- ``rs:courses:{site}`` set of course ids seen
- ``rs:cal:{site:course}`` ``CourseCalendar`` JSON (startdate, quiz/assign deadlines)
- ``rs:roster:{site:course}`` JSON ``{"teachers": [ids], "students": [ids], "former": [ids],
  "starts": {id: epoch}, "synced": epoch}`` (``former``: students of an earlier sync who are
  no longer, so their unenrolment rows still pass; ``starts``: enrolment starts, plugin)

Roles come from the roster: only users enrolled with a student role are scored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from redis.asyncio import Redis

from contracts import (
    UNENROLMENT_EVENTNAME,
    CourseCalendar,
    Deadline,
    LmsEvent,
    keys,
)
from moodle_connector.client import MoodleClient
from moodle_connector.errors import MoodleError, MoodleUnavailable, RecordMissing, stops_everything

log = structlog.get_logger("moodle_connector.courses")

TEACHER_ROLES = frozenset({"editingteacher", "teacher"})
STUDENT_ROLES = frozenset({"student"})


courses_key = keys.courses_key
calendar_key = keys.calendar_key
roster_key = keys.roster_key


def _utc(ts: int | float) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


async def fetch_calendar(client: MoodleClient, site: str, course_id: int) -> CourseCalendar:
    """Start from the course's startdate; deadlines from quiz close and assignment due dates."""
    body = await client.call(
        "core_course_get_courses_by_field", {"field": "id", "value": course_id}
    )
    courses = body.get("courses", [])
    if not courses:
        raise MoodleError(f"course {course_id} not found on {client.base_url}")
    course = courses[0]
    start = int(course.get("startdate") or course.get("timecreated") or 0)
    end = int(course.get("enddate") or 0)
    length = max(1, min(3650, (end - start) // 86400 + 1)) if end > start else 270
    deadlines: list[Deadline] = []
    try:
        quizzes = await client.call("mod_quiz_get_quizzes_by_courses", {"courseids": [course_id]})
        for q in quizzes.get("quizzes", []):
            if q.get("timeclose"):
                deadlines.append(
                    Deadline(due=_utc(q["timeclose"]), kind="quiz", cmid=q.get("coursemodule"))
                )
    except MoodleError as exc:
        if stops_everything(exc):
            raise
        log.warning("quiz deadlines unavailable", course=course_id, error=str(exc))
    if client.known_functions is None or "mod_assign_get_assignments" in client.known_functions:
        try:
            # Without includenotenrolledcourses Moodle only answers for courses the service
            # user is enrolled in ("User is not enrolled..." for every other course).
            assigns = await client.call(
                "mod_assign_get_assignments",
                {"courseids": [course_id], "includenotenrolledcourses": 1},
            )
            for w in assigns.get("warnings") or []:
                log.warning("assignment warning", course=course_id, warning=w)
            for c in assigns.get("courses", []):
                for a in c.get("assignments", []):
                    if a.get("duedate"):
                        deadlines.append(
                            Deadline(due=_utc(a["duedate"]), kind="assignment", cmid=a.get("cmid"))
                        )
        except MoodleError as exc:
            if stops_everything(exc):
                raise
            log.info("assignment deadlines unavailable", course=course_id, error=str(exc))
    deadlines.sort(key=lambda d: d.due)
    return CourseCalendar(
        site=site,
        course_id=course_id,
        start=_utc(start),
        length_days=length,
        deadlines=deadlines,
        name=str(course.get("fullname") or course.get("shortname") or ""),
    )


async def fetch_roster(client: MoodleClient, course_id: int) -> dict[str, Any]:
    """Teachers (editingteacher/teacher) and students of a course, by user id.

    A course that no longer exists has an empty roster (nobody in it is scored).
    """
    try:
        users = await client.call("core_enrol_get_enrolled_users", {"courseid": course_id})
    except RecordMissing:
        users = []
    teachers, students = [], []
    for u in users if isinstance(users, list) else []:
        roles = {r.get("shortname") for r in u.get("roles", [])}
        if roles & TEACHER_ROLES:
            teachers.append(int(u["id"]))
        if roles & STUDENT_ROLES:
            students.append(int(u["id"]))
    return {"teachers": sorted(teachers), "students": sorted(students), "synced": int(time.time())}


ENROLMENTS_FUNCTION = "local_riskstream_get_enrolments"


async def fetch_enrolment_starts(client: MoodleClient, course_id: int) -> dict[int, int]:
    """User id -> start of the enrolment (unix time), from the plugin; empty if it cannot tell
    (an older plugin): the caller then falls back to the earliest row it saw."""
    if client.known_functions is not None and ENROLMENTS_FUNCTION not in client.known_functions:
        return {}
    try:
        body = await client.call(ENROLMENTS_FUNCTION, {"courseid": course_id})
    except RecordMissing:
        return {}
    return {int(e["userid"]): int(e["timestart"]) for e in body.get("enrolments", [])}


async def read_roster(redis: Redis, site: str, course_id: int) -> dict[str, Any] | None:
    raw = await redis.get(roster_key(site, course_id))
    return json.loads(raw) if raw else None


class CourseSync:
    """Keeps calendars and rosters of the courses seen in the log fresh in Redis."""

    def __init__(
        self, client: MoodleClient, redis: Redis, site: str, refresh_s: float = 3600.0
    ) -> None:
        self.client = client
        self.redis = redis
        self.site = site
        self.refresh_s = refresh_s
        self._synced: dict[int, float] = {}
        self._rosters: dict[int, dict[str, Any]] = {}
        self._sets: dict[int, tuple[frozenset[int], frozenset[int]]] = {}

    async def sync(self, course_id: int) -> CourseCalendar | None:
        """Calendar and roster of one course into Redis; None as calendar for a deleted course."""
        try:
            cal: CourseCalendar | None = await fetch_calendar(self.client, self.site, course_id)
        except MoodleError as exc:
            if "not found" not in str(exc):
                raise
            cal = None  # a deleted course: no calendar, an empty roster
        roster = await fetch_roster(self.client, course_id)
        starts = await fetch_enrolment_starts(self.client, course_id)
        roster["starts"] = {str(u): starts[u] for u in roster["students"] if u in starts}
        previous = self._rosters.get(course_id) or await read_roster(
            self.redis, self.site, course_id
        )
        if previous:
            former = set(previous.get("former", [])) | set(previous.get("students", []))
            roster["former"] = sorted(former - set(roster["students"]))
        else:
            roster["former"] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            if cal is not None:
                pipe.set(calendar_key(self.site, course_id), cal.model_dump_json())
            pipe.set(roster_key(self.site, course_id), json.dumps(roster))
            pipe.sadd(courses_key(self.site), course_id)
            await pipe.execute()
        self._rosters[course_id] = roster
        self._sets[course_id] = (frozenset(roster["students"]), frozenset(roster["former"]))
        self._synced[course_id] = time.monotonic()
        log.info(
            "course synced",
            course=course_id,
            deadlines=len(cal.deadlines) if cal else 0,
            teachers=len(roster["teachers"]),
            students=len(roster["students"]),
        )
        return cal

    async def seen(
        self, course_ids: Iterable[int], force: Iterable[int] = ()
    ) -> list[tuple[int, dict[str, Any]]]:
        """Called per page: sync new or stale courses (and ``force``: rosters that changed);
        a failure is retried on a later page. Returns the rosters synced now."""
        now = time.monotonic()
        ids = {c for c in course_ids if c > 0}
        forced = {c for c in force if c > 0}
        if ids:
            await self.redis.sadd(courses_key(self.site), *ids)
        synced: list[tuple[int, dict[str, Any]]] = []
        for course_id in sorted(ids | forced):
            last = self._synced.get(course_id)
            fresh = last is not None and now - last < self.refresh_s
            if fresh and course_id not in forced:
                continue
            try:
                await self.sync(course_id)
                synced.append((course_id, self._rosters[course_id]))
            except MoodleError as exc:
                if stops_everything(exc):
                    raise
                self._synced[course_id] = now - self.refresh_s + 60  # retry in a minute
                log.warning("course sync failed", course=course_id, error=str(exc))
        return synced

    def only_students(self, events: list[LmsEvent]) -> tuple[list[LmsEvent], int]:
        """Keep the events of users enrolled with a student role (roles from the roster).

        Teachers, managers and admins are never scored. An unenrolment passes for a former
        student. A course whose roster could not be read raises ``MoodleUnavailable`` so the
        page is retried later rather than published unfiltered.
        """
        kept: list[LmsEvent] = []
        dropped = 0
        for ev in events:
            roster = self._rosters.get(ev.course_id)
            if roster is None:
                raise MoodleUnavailable(
                    f"the roster of course {ev.course_id} could not be read yet; the page is "
                    "retried (events are only published for users with a student role)"
                )
            students, former = self._sets[ev.course_id]
            if ev.user_id in students or (
                ev.eventname == UNENROLMENT_EVENTNAME and ev.user_id in former
            ):
                kept.append(ev)
            else:
                dropped += 1
        return kept, dropped

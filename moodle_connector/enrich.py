"""Grades onto events: quiz attempt submissions get the attempt's grade, gradebook rows the item's.

The log row says *that* a student submitted; the model also wants *how well*. One extra call
per submission (attempts of that user in that quiz), quiz and grade-item facts cached per course.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from contracts import LmsEvent, activity_from_component
from moodle_connector.client import MoodleClient
from moodle_connector.errors import (
    FunctionMissing,
    FunctionNotInService,
    MoodleError,
    stops_everything,
)
from moodle_connector.normalize import QUIZ_SUBMITTED, USER_GRADED, parse_other

log = structlog.get_logger("moodle_connector.enrich")

ATTEMPTS_NEW = "mod_quiz_get_user_quiz_attempts"  # Moodle 5.0+
ATTEMPTS_OLD = "mod_quiz_get_user_attempts"  # deprecated in 5.0, same output


@dataclass(frozen=True)
class QuizInfo:
    quiz_id: int
    cmid: int
    grade: float  # the quiz's maximum grade
    sumgrades: float  # sum of question marks; attempt grade = sumgrades / this * grade


@dataclass(frozen=True)
class GradeItem:
    item_id: int
    grademax: float
    cmid: int | None
    module: str | None


class Enricher:
    """Adds ``grade``/``max_grade`` to quiz submissions and ``user_graded`` rows."""

    def __init__(self, client: MoodleClient, concurrency: int = 8, item_ttl_s: float = 600) -> None:
        self.client = client
        self._quizzes: dict[int, dict[int, QuizInfo]] = {}
        self._items: dict[int, tuple[float, dict[int, GradeItem]]] = {}
        self._item_ttl = item_ttl_s
        self._sem = asyncio.Semaphore(concurrency)
        self.attempts_function = ATTEMPTS_NEW
        known = client.known_functions
        if known is not None and ATTEMPTS_NEW not in known and ATTEMPTS_OLD in known:
            self.attempts_function = ATTEMPTS_OLD

    async def quizzes(self, course_id: int) -> dict[int, QuizInfo]:
        if course_id not in self._quizzes:
            body = await self.client.call(
                "mod_quiz_get_quizzes_by_courses", {"courseids": [course_id]}
            )
            self._quizzes[course_id] = {
                int(q["id"]): QuizInfo(
                    quiz_id=int(q["id"]),
                    cmid=int(q["coursemodule"]),
                    grade=float(q.get("grade") or 0),
                    sumgrades=float(q.get("sumgrades") or 0),
                )
                for q in body.get("quizzes", [])
            }
        return self._quizzes[course_id]

    async def attempts(self, quiz_id: int, user_id: int) -> list[dict[str, Any]]:
        """The user's attempts, with the fallback to the pre-5.0 function name."""
        params = {"quizid": quiz_id, "userid": user_id, "status": "all", "includepreviews": 0}
        try:
            body = await self.client.call(self.attempts_function, params)
        except (FunctionMissing, FunctionNotInService):
            if self.attempts_function == ATTEMPTS_OLD:
                raise
            log.info("falling back to the older quiz attempts function", function=ATTEMPTS_OLD)
            self.attempts_function = ATTEMPTS_OLD
            body = await self.client.call(self.attempts_function, params)
        return list(body.get("attempts", []))

    async def grade_items(self, course_id: int, item_id: int) -> dict[int, GradeItem]:
        """Grade items of a course; refetched when stale or when an unknown item appears."""
        cached = self._items.get(course_id)
        fresh = cached and time.monotonic() - cached[0] < self._item_ttl
        if cached and fresh and item_id in cached[1]:
            return cached[1]
        body = await self.client.call("gradereport_user_get_grade_items", {"courseid": course_id})
        items: dict[int, GradeItem] = {}
        for ug in body.get("usergrades", [])[:1]:
            for gi in ug.get("gradeitems", []):
                items[int(gi["id"])] = GradeItem(
                    item_id=int(gi["id"]),
                    grademax=float(gi.get("grademax") or 0),
                    cmid=int(gi["cmid"]) if gi.get("cmid") else None,
                    module=gi.get("itemmodule"),
                )
        self._items[course_id] = (time.monotonic(), items)
        return items

    async def _quiz(self, ev: LmsEvent, row: Mapping[str, Any]) -> LmsEvent:
        other = parse_other(row)
        quizzes = await self.quizzes(ev.course_id)
        quiz = quizzes.get(int(other.get("quizid") or 0)) or next(
            (q for q in quizzes.values() if q.cmid == ev.cmid), None
        )
        if quiz is None or quiz.sumgrades <= 0 or quiz.grade <= 0 or ev.attempt_id is None:
            return ev
        attempt = next(
            (
                a
                for a in await self.attempts(quiz.quiz_id, ev.user_id)
                if a.get("id") == ev.attempt_id
            ),
            None,
        )
        if attempt is None or attempt.get("sumgrades") is None:
            return ev  # not graded yet (manual marking): the user_graded row will carry it
        grade = min(quiz.grade, float(attempt["sumgrades"]) / quiz.sumgrades * quiz.grade)
        return _with(ev, grade=round(grade, 5), max_grade=quiz.grade)

    async def _graded(self, ev: LmsEvent, row: Mapping[str, Any]) -> LmsEvent:
        other = parse_other(row)
        if other.get("finalgrade") in (None, "") or not other.get("itemid"):
            return ev
        item_id = int(other["itemid"])
        item = (await self.grade_items(ev.course_id, item_id)).get(item_id)
        if item is None or item.grademax <= 0 or not item.module:
            return ev  # course and category totals are not a student's work
        grade = max(0.0, min(item.grademax, float(other["finalgrade"])))
        update: dict[str, Any] = {"grade": grade, "max_grade": item.grademax}
        if item.cmid is not None:
            update["cmid"] = item.cmid
        if item.module:
            update["activity"] = activity_from_component(f"mod_{item.module}")
        return _with(ev, **update)

    async def _one(self, ev: LmsEvent, row: Mapping[str, Any]) -> LmsEvent:
        async with self._sem:
            try:
                if ev.eventname == QUIZ_SUBMITTED:
                    return await self._quiz(ev, row)
                return await self._graded(ev, row)
            except MoodleError as exc:
                if stops_everything(exc):
                    raise
                log.warning("grade enrichment skipped", event_id=ev.event_id, error=str(exc))
                return ev

    async def enrich(
        self, events: list[LmsEvent], rows: Mapping[int, Mapping[str, Any]]
    ) -> list[LmsEvent]:
        """Same events, same order; graded where Moodle knows the grade."""
        todo = [i for i, ev in enumerate(events) if ev.eventname in (QUIZ_SUBMITTED, USER_GRADED)]
        if not todo:
            return events
        done = await asyncio.gather(*(self._one(events[i], rows[events[i].event_id]) for i in todo))
        out = list(events)
        for i, ev in zip(todo, done, strict=True):
            out[i] = ev
        return out


def _with(ev: LmsEvent, **update: Any) -> LmsEvent:
    """Copy with validation (grade <= max_grade is checked by the contract)."""
    data = ev.model_dump()
    data.update(update)
    return LmsEvent.model_validate(data)

"""Outcomes the worker learns from the events topic: an unenrolment record = withdrawn.

Each ``UNENROLMENT_EVENTNAME`` record becomes a ``CourseOutcome`` (result ``withdrawn``, day
= its course day) in ``rs:outcome:{site}:{course}`` (hash, field = user id). ``HSETNX``: a
replayed record writes nothing new, and a final result stored already (the presentation's
end, written by the replayer or a connector) is never overwritten by a withdrawal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from contracts import UNENROLMENT_EVENTNAME, CourseCalendar, CourseOutcome, LmsEvent


def outcome_key(site: str, course: int) -> str:
    return f"rs:outcome:{site}:{course}"


def withdrawals(
    events: Iterable[LmsEvent], cals: dict[tuple[str, int], CourseCalendar], featurizer: Any
) -> list[CourseOutcome]:
    """A withdrawn outcome for every unenrolment record among ``events``."""
    out = []
    for ev in events:
        if ev.eventname != UNENROLMENT_EVENTNAME:
            continue
        cal = cals.get((ev.site, ev.course_id))
        day = int(featurizer.day_of(ev.time, cal)) if cal is not None else None
        out.append(
            CourseOutcome(
                site=ev.site,
                course_id=ev.course_id,
                user_id=ev.user_id,
                result="withdrawn",
                day=day,
                source="unenrolment",
            )
        )
    return out


def queue_outcomes(pipe: Any, outcomes: Iterable[CourseOutcome], final: bool) -> int:
    """Add the writes to a Redis pipeline: final results replace, withdrawals never do."""
    n = 0
    for o in outcomes:
        key, field, value = outcome_key(o.site, o.course_id), str(o.user_id), o.model_dump_json()
        if final:
            pipe.hset(key, field, value)
        else:
            pipe.hsetnx(key, field, value)
        n += 1
    return n

"""One Moodle log row -> one ``LmsEvent`` (or a reason why not).

Rows come from ``local_riskstream_get_events`` with the columns of ``logstore_standard_log``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from contracts import LmsEvent

#: rows every web-service call writes itself (our own polling would feed back otherwise)
DROPPED_EVENTS = frozenset({"\\core\\event\\webservice_function_called"})
#: events whose subject is ``relateduserid`` (the student), not the actor ``userid``
SUBJECT_IS_RELATED = frozenset(
    {
        "\\core\\event\\user_graded",
        "\\mod_quiz\\event\\attempt_submitted",
        "\\mod_quiz\\event\\attempt_graded",
        "\\mod_assign\\event\\submission_graded",
        # enrolments: the actor is whoever enrolled the student
        "\\core\\event\\user_enrolment_created",
        "\\core\\event\\user_enrolment_deleted",
    }
)
CONTEXT_MODULE = 70
QUIZ_SUBMITTED = "\\mod_quiz\\event\\attempt_submitted"
USER_GRADED = "\\core\\event\\user_graded"


class NormalizeError(ValueError):
    """A row that cannot become an event; the message is the dead-letter reason."""


def _int(row: Mapping[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = row.get(key)
    if value is None or value == "":
        if optional:
            return None
        raise NormalizeError(f"log row field '{key}' is missing")
    if isinstance(value, bool):
        raise NormalizeError(f"log row field '{key}' is a boolean, expected an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NormalizeError(f"log row field '{key}' is {value!r}, expected an integer") from None


def parse_other(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``other`` column is JSON text (``"null"`` when empty); a dict either way."""
    raw = row.get("other")
    if raw in (None, "", "null"):
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def subject_user(row: Mapping[str, Any]) -> int | None:
    """The student the row is about: ``relateduserid`` for grading events, else ``userid``."""
    if row.get("eventname") in SUBJECT_IS_RELATED:
        related = _int(row, "relateduserid", optional=True)
        if related:
            return related
    return _int(row, "userid", optional=True)


def should_drop(row: Mapping[str, Any]) -> bool:
    """Rows that are not a student's course activity, dropped on purpose (no dead letter).

    Own web-service calls, site-level rows (courseid 0: logins, notifications), rows with no
    user (cron, CLI as nobody) and anonymous rows.
    """
    if row.get("eventname") in DROPPED_EVENTS:
        return True
    if row.get("anonymous") in (1, "1", True):
        return True
    try:
        course = _int(row, "courseid", optional=True)
        user = subject_user(row)
    except NormalizeError:
        return False  # malformed: let normalize_row report it
    return not course or not user


def normalize_row(row: Mapping[str, Any], site: str) -> LmsEvent:
    """Build the event; raises ``NormalizeError`` naming what is wrong with the row."""
    if not isinstance(row, Mapping):
        raise NormalizeError(f"log row is a {type(row).__name__}, expected an object")
    event_id = _int(row, "id")
    timecreated = _int(row, "timecreated")
    assert event_id is not None and timecreated is not None
    user = subject_user(row)
    course = _int(row, "courseid")
    level = _int(row, "contextlevel", optional=True)
    cmid = _int(row, "contextinstanceid", optional=True) if level == CONTEXT_MODULE else None
    try:
        time = datetime.fromtimestamp(timecreated, UTC)
    except (OverflowError, OSError, ValueError):
        raise NormalizeError(f"log row field 'timecreated' {timecreated} is not a time") from None
    try:
        return LmsEvent.model_validate(
            dict(
                site=site,
                event_id=event_id,
                user_id=user if user is not None else -1,
                course_id=course if course is not None else -1,
                time=time,
                eventname=row.get("eventname") or "",
                component=row.get("component") or "",
                action=row.get("action") or "",
                target=row.get("target") or "",
                crud=row.get("crud") or "r",
                edulevel=_int(row, "edulevel", optional=True) or 0,
                cmid=cmid,
                attempt_id=_int(row, "objectid", optional=True)
                if row.get("objecttable") == "quiz_attempts"
                else None,
            )
        )
    except ValidationError as exc:
        parts = [
            f"field '{'.'.join(str(p) for p in e['loc']) or '(row)'}': {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise NormalizeError(
            f"log row {event_id} is not a valid event: {'; '.join(parts)}"
        ) from None

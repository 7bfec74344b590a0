"""Log rows (recorded shape) -> LmsEvent, drops and refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import ActivityType
from moodle_connector.normalize import NormalizeError, normalize_row, should_drop
from tests.conftest import MOODLE_RECORDED
from tests.moodle_connector.fake_moodle import recorded_log

pytestmark = pytest.mark.skipif(not MOODLE_RECORDED.is_dir(), reason="no recorded Moodle data")


def _row(rows: list[dict], rid: int) -> dict:
    return next(r for r in rows if r["id"] == rid)


def test_recorded_log_normalizes_without_refusals() -> None:
    rows = recorded_log()
    events = [normalize_row(r, "lab") for r in rows if not should_drop(r)]
    dropped = [r for r in rows if should_drop(r)]
    assert all(
        r["eventname"] != "\\core\\event\\webservice_function_called"
        for r in rows
        if not should_drop(r)
    )
    assert any(r["eventname"] == "\\core\\event\\webservice_function_called" for r in dropped)
    assert all(ev.course_id > 0 and ev.user_id > 0 for ev in events)
    assert len(events) > 1000
    ids = [ev.event_id for ev in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_module_row_fields() -> None:
    rows = recorded_log()
    submitted = normalize_row(_row(rows, 1080), "lab")  # student04's first quiz submission
    assert submitted.site == "lab" and submitted.user_id == 7 and submitted.course_id == 2
    assert submitted.cmid == 7 and submitted.activity is ActivityType.QUIZ
    assert submitted.attempt_id == 17 and submitted.crud == "u"
    assert submitted.time == datetime.fromtimestamp(_row(rows, 1080)["timecreated"], UTC)
    assert submitted.key == b"lab:7"
    course_view = next(
        r for r in rows if r["eventname"] == "\\core\\event\\course_viewed" and r["courseid"] == 2
    )
    ev = normalize_row(course_view, "lab")
    assert ev.cmid is None and ev.activity is ActivityType.COURSE_VIEW


def test_graded_row_belongs_to_the_student_not_the_grader() -> None:
    row = dict(_row(recorded_log(), 655), userid=3, relateduserid=33)  # teacher grades student
    assert normalize_row(row, "lab").user_id == 33


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timecreated": "yesterday"}, "timecreated"),
        ({"id": None}, "id"),
        ({"crud": "x"}, "crud"),
        ({"eventname": ""}, "eventname"),
        ({"courseid": "two"}, "courseid"),
    ],
)
def test_malformed_rows_are_refused_with_the_field(change: dict, field: str) -> None:
    row = dict(_row(recorded_log(), 1080), **change)
    assert not should_drop(row)
    with pytest.raises(NormalizeError, match=field):
        normalize_row(row, "lab")


def test_site_level_and_anonymous_rows_are_dropped() -> None:
    rows = recorded_log()
    login = next(r for r in rows if r["eventname"] == "\\core\\event\\user_loggedin")
    assert login["courseid"] == 0 and should_drop(login)
    assert should_drop(dict(_row(rows, 1080), anonymous=1))

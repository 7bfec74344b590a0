"""OULAD adapter: course ids, calendars, time-ordered events, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from contracts import ActivityType
from models.oulad import Oulad, presentation_start
from tests.conftest import OULAD_DIR

pytestmark = pytest.mark.skipif(
    not (OULAD_DIR / "studentVle.parquet").is_file(), reason="OULAD not present"
)


@pytest.fixture(scope="module")
def oulad() -> Oulad:
    return Oulad(OULAD_DIR)


def test_presentation_start() -> None:
    assert presentation_start("2013B") == datetime(2013, 2, 1, tzinfo=UTC)
    assert presentation_start("2014J") == datetime(2014, 10, 1, tzinfo=UTC)


def test_courses_and_calendars(oulad: Oulad) -> None:
    ids = [c.course_id for c in oulad.courses]
    assert ids == list(range(1, len(ids) + 1))
    aaa = oulad.course_id("AAA", "2013J")
    cal = oulad.calendars()[aaa]
    assert cal.start == datetime(2013, 10, 1, tzinfo=UTC) and cal.length_days == 268
    assert [d.kind for d in cal.deadlines].count("exam") == 1
    assert (cal.deadlines[0].due - cal.start).days == 19  # first TMA cut-off day
    with pytest.raises(KeyError):
        oulad.course_id("ZZZ", "2013J")


def test_events_in_time_order(oulad: Oulad) -> None:
    users = {11391, 28400, 31604}
    events = list(oulad.iter_events("AAA", "2013J", users=users))
    assert {e.user_id for e in events} == users
    times = [e.time for e in events]
    ids = [e.event_id for e in events]
    assert times == sorted(times) and ids == sorted(ids) and len(set(ids)) == len(ids)
    subs = [e for e in events if e.grade is not None]
    assert subs and all(e.max_grade == 100.0 for e in subs)
    assert all(e.activity == ActivityType.ASSIGNMENT for e in subs)  # AAA has TMAs only
    clicks = sum(e.count for e in events if e.grade is None and e.attempt_id is None)
    table = oulad.event_table("AAA", "2013J", users=users)
    assert clicks == int(table.loc[~table["submitted"], "count"].sum())
    assert next(islice(oulad.iter_events("AAA", "2013J", users=users), 0, None)) == events[0]


def test_outcomes(oulad: Oulad) -> None:
    out = oulad.outcomes()
    assert set(out.loc[out["label"] == 1, "final_result"]) == {"Fail", "Withdrawn"}
    assert set(out.loc[out["label"] == 0, "final_result"]) == {"Pass", "Distinction"}
    withdrawn = out[out["final_result"] == "Withdrawn"]
    assert withdrawn["withdraw_day"].notna().mean() > 0.9
    assert out["final_score"].dropna().between(0, 1).all()
    prof = oulad.profiles()[(oulad.course_id("AAA", "2013J"), 11391)]
    assert prof.highest_education == "HE Qualification" and prof.gender == "M"

"""Alert policy properties (hypothesis) over arbitrary end-of-day risk sequences."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import RiskLevel
from stream_app.alerting import AlertState, admit, capacity, decide, held_risk, level_of, raised


@dataclass
class Th:
    medium: float = 0.5
    high: float = 0.7
    rearm: float = 0.4
    min_days: int = 3
    cooldown_days: int = 5
    persist_days: int = 3
    day_cap: float = 0.05
    week_cap: float = 0.10


thresholds = st.builds(
    lambda a, b, c, m, cd, k: Th(
        medium=b,
        high=max(b, c),
        rearm=min(a, b),
        min_days=m,
        cooldown_days=cd,
        persist_days=k,
    ),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.integers(0, 10),
    st.integers(0, 10),
    st.integers(1, 5),
)
days_of_risk = st.lists(st.floats(0.0, 1.0), max_size=80)


def _run(th: Th, risks: list[float]) -> list[int]:
    """One student, one end-of-day risk per day, unlimited capacity: days alerted."""
    state = AlertState()
    out = []
    for day in range(len(risks)):
        d = decide(state, risks[: day + 1], day, day + 1, th)
        state = AlertState.from_json(d.state.to_json())  # through the Redis codec
        if d.candidate:
            state = raised(state, day)
            out.append(day)
    return out


@settings(max_examples=300, deadline=None)
@given(thresholds, days_of_risk)
def test_alerts_only_when_risk_held_for_persist_days(th: Th, risks: list[float]) -> None:
    for day in _run(th, risks):
        assert day >= th.min_days
        window = risks[day - th.persist_days + 1 : day + 1]
        assert len(window) == th.persist_days and min(window) >= th.high


@settings(max_examples=300, deadline=None)
@given(thresholds, days_of_risk)
def test_one_day_spike_never_alerts(th: Th, risks: list[float]) -> None:
    th.persist_days = max(2, th.persist_days)
    spiky = [0.0 if i % 2 else r for i, r in enumerate(risks)]  # never two days in a row
    if th.high > 0.0:
        assert _run(th, spiky) == []


@settings(max_examples=300, deadline=None)
@given(thresholds, days_of_risk)
def test_repeats_need_rearm_and_cooldown(th: Th, risks: list[float]) -> None:
    days = _run(th, risks)
    for a, b in itertools.pairwise(days):
        assert b - a >= max(th.cooldown_days, 1)
        assert min(risks[a + 1 : b + 1]) < th.rearm  # re-armed in between


def test_left_students_are_never_candidates() -> None:
    th = Th(min_days=0, persist_days=1)
    gone = AlertState(left=3)
    assert not decide(gone, [0.99], 5, 6, th).candidate
    assert decide(AlertState(), [0.99], 5, 6, th).candidate
    assert AlertState.from_json(gone.to_json()) == gone


def test_evidence_counts_from_enrolment_not_first_click() -> None:
    th = Th(min_days=14, persist_days=1)
    # day 20 of the course, enrolled on day 10: 11 days of evidence, too few
    assert not decide(AlertState(), [0.99], 20, 11, th).candidate
    assert decide(AlertState(), [0.99], 20, 21, th).candidate


def test_held_risk_is_the_minimum_of_the_last_days() -> None:
    assert held_risk([0.9, 0.8, 0.95], 3) == 0.8
    assert held_risk([0.9, 0.95], 3) == 0.0  # fewer days than the window: not held yet


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2000),
    st.dictionaries(st.integers(0, 40), st.integers(0, 50), max_size=20),
    st.integers(0, 40),
)
def test_capacity_keeps_day_and_week_limits(
    enrolled: int, per_day: dict[int, int], day: int
) -> None:
    th = Th()
    room = capacity(enrolled, per_day, day, th)
    assert room >= 0
    day_max = max(1, int(th.day_cap * enrolled))
    week_max = max(1, int(th.week_cap * enrolled))
    assert per_day.get(day, 0) + room <= max(day_max, per_day.get(day, 0))
    week = sum(n for d, n in per_day.items() if day - 7 < d <= day)
    assert week + room <= max(week_max, week)


def test_admit_takes_the_highest_risk_first_deterministically() -> None:
    cands = [(0.8, 3), (0.95, 1), (0.8, 2), (0.9, 0)]
    assert admit(cands, 3) == [1, 0, 2]
    assert admit(list(reversed(cands)), 3) == [1, 0, 2]
    assert admit(cands, 0) == []


def test_levels() -> None:
    th = Th()
    assert level_of(0.1, th) is RiskLevel.LOW
    assert level_of(0.55, th) is RiskLevel.MEDIUM
    assert level_of(0.7, th) is RiskLevel.HIGH

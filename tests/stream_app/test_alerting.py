"""Alert policy properties (hypothesis) over arbitrary risk sequences."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import RiskLevel
from stream_app.alerting import AlertState, decide, level_of


@dataclass
class Th:
    medium: float = 0.5
    high: float = 0.7
    rearm: float = 0.4
    min_days: int = 3
    cooldown_days: int = 5


thresholds = st.builds(
    lambda a, b, c, m, cd: Th(
        medium=b, high=max(b, c), rearm=min(a, b), min_days=m, cooldown_days=cd
    ),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.integers(0, 10),
    st.integers(0, 10),
)
# (day increment, risk) observations; several per day allowed
observations = st.lists(st.tuples(st.integers(0, 3), st.floats(0.0, 1.0)), max_size=80)


def _run(th: Th, obs: list[tuple[int, float]]) -> list[tuple[int, float, RiskLevel, float]]:
    state = AlertState()
    day = 0
    raised = []
    for inc, risk in obs:
        day += inc
        d = decide(state, risk, day, day + 1, th)
        state = AlertState.from_json(d.state.to_json())  # through the Redis codec
        if d.raise_level is not None:
            raised.append((day, risk, d.raise_level, d.threshold))
    return raised


@settings(max_examples=300, deadline=None)
@given(thresholds, observations)
def test_policy_invariants(th: Th, obs: list[tuple[int, float]]) -> None:
    raised = _run(th, obs)
    for day, risk, level, threshold in raised:
        assert day + 1 >= th.min_days  # minimum evidence
        assert level is not RiskLevel.LOW and level is level_of(risk, th)
        assert risk >= threshold == (th.high if level is RiskLevel.HIGH else th.medium)
    for (d1, _, l1, _), (d2, _, l2, _) in itertools.pairwise(raised):
        escalation = l1 is RiskLevel.MEDIUM and l2 is RiskLevel.HIGH
        assert escalation or d2 - d1 >= th.cooldown_days  # cooldown unless escalating


@settings(max_examples=300, deadline=None)
@given(thresholds, observations)
def test_hysteresis_needs_rearm_between_same_level_alerts(
    th: Th, obs: list[tuple[int, float]]
) -> None:
    state = AlertState()
    day = 0
    dipped = True
    last_level = None
    for inc, risk in obs:
        day += inc
        if risk < th.rearm:
            dipped = True
        d = decide(state, risk, day, day + 1, th)
        state = d.state
        if d.raise_level is not None:
            escalation = last_level is RiskLevel.MEDIUM and d.raise_level is RiskLevel.HIGH
            assert dipped or escalation
            dipped = False
            last_level = d.raise_level


@settings(max_examples=100, deadline=None)
@given(thresholds, observations)
def test_deterministic_replay(th: Th, obs: list[tuple[int, float]]) -> None:
    assert _run(th, obs) == _run(th, obs)


def test_examples() -> None:
    th = Th(min_days=2, cooldown_days=3)
    s = AlertState()
    d = decide(s, 0.9, 0, 1, th)
    assert d.raise_level is None and d.level is RiskLevel.HIGH  # too little evidence
    d = decide(d.state, 0.6, 1, 2, th)
    assert d.raise_level is RiskLevel.MEDIUM
    d = decide(d.state, 0.8, 1, 2, th)
    assert d.raise_level is RiskLevel.HIGH  # escalation, no cooldown
    d = decide(d.state, 0.9, 2, 3, th)
    assert d.raise_level is None  # disarmed
    d = decide(d.state, 0.3, 3, 4, th)
    assert d.raise_level is None and d.state.armed  # re-armed below rearm
    d = decide(d.state, 0.9, 3, 4, th)
    assert d.raise_level is None  # armed, but cooldown: 3 - 1 < 3 days since the last alert
    d = decide(d.state, 0.9, 4, 5, th)
    assert d.raise_level is RiskLevel.HIGH and not d.state.armed and d.state.last_day == 4

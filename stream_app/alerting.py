"""Alert policy as pure functions: levels, hysteresis, minimum evidence, cooldown, escalation.

Kept free of I/O so the policy is property-tested on its own (tests/stream_app/test_alerting.py)
and a replay of the same risk sequence always makes the same decisions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from contracts import RiskLevel


class ThresholdsLike(Protocol):
    """What the policy needs from ``models.registry.Thresholds`` (duck-typed, no import)."""

    medium: float
    high: float
    rearm: float
    min_days: int
    cooldown_days: int


@dataclass(frozen=True)
class AlertState:
    """Per student-course alert memory, stored as JSON in the state hash field ``alert``.

    ``armed``: a new alert may be raised (set again once risk falls below ``rearm``).
    ``last_day``: course day of the last alert (cooldown counts from it).
    ``level``: level of the last alert (a medium alert may escalate once to high).
    """

    armed: bool = True
    last_day: int | None = None
    level: str | None = None

    def to_json(self) -> str:
        # hot path (once per student per batch): formatted by hand, parsed by from_json
        last = "null" if self.last_day is None else str(int(self.last_day))
        level = "null" if self.level is None else json.dumps(self.level)
        armed = "true" if self.armed else "false"
        return f'{{"armed": {armed}, "last_day": {last}, "level": {level}}}'

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> AlertState:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(
            armed=bool(data.get("armed", True)),
            last_day=data.get("last_day"),
            level=data.get("level"),
        )


@dataclass(frozen=True)
class Decision:
    """What to do after one risk observation."""

    state: AlertState
    level: RiskLevel  # level of the current risk (also stored as the student's level)
    raise_level: RiskLevel | None  # set when an alert must be raised now
    threshold: float  # the threshold that was crossed (0.0 when none)


def level_of(risk: float, th: ThresholdsLike) -> RiskLevel:
    if risk >= th.high:
        return RiskLevel.HIGH
    if risk >= th.medium:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW


def threshold_of(level: RiskLevel, th: ThresholdsLike) -> float:
    return th.high if level is RiskLevel.HIGH else th.medium


def decide(
    state: AlertState, risk: float, day: int, evidence_days: int, th: ThresholdsLike
) -> Decision:
    """One observation of a student's risk on course ``day``.

    Rules (in order):
    1. Below ``rearm`` the student is re-armed (hysteresis: a risk hovering around the
       threshold does not flap).
    2. No alert before ``min_days`` days of evidence (a student's first days say little).
    3. An armed student at medium or high raises an alert at that level, unless the last
       alert is fewer than ``cooldown_days`` days ago; raising disarms.
    4. A disarmed student whose last alert was medium and whose risk reaches high raises one
       escalation alert (no cooldown: teachers must hear about a worsening student).
    """
    level = level_of(risk, th)
    if not state.armed and risk < th.rearm:
        state = AlertState(armed=True, last_day=state.last_day, level=state.level)
    if level is RiskLevel.LOW or evidence_days < th.min_days:
        return Decision(state, level, None, 0.0)
    if state.armed:
        cooled = state.last_day is None or day - state.last_day >= th.cooldown_days
        if not cooled:
            return Decision(state, level, None, 0.0)
        new = AlertState(armed=False, last_day=day, level=level.value)
        return Decision(new, level, level, threshold_of(level, th))
    if level is RiskLevel.HIGH and state.level == RiskLevel.MEDIUM.value:
        new = AlertState(armed=False, last_day=day, level=level.value)
        return Decision(new, level, level, threshold_of(level, th))
    return Decision(state, level, None, 0.0)

"""Alert policy as pure functions: what a teacher receives, and when.

One alert level reaches teachers: *act on* (``high``). It is decided once per course day,
on the end-of-day risk (calibrated), never on one event's provisional risk:

1. **persistence**: the risk must have stayed at or above ``high`` for ``persist_days``
   course days in a row (the minimum of the last days' end-of-day risks), so one day's
   spike never alerts;
2. **evidence**: not before course day ``min_days``, counted from the course start or from
   a later enrolment (not from the student's first click: a student who never clicks is
   the clearest case of all);
3. **one alert per episode**: raising disarms the student; they are re-armed once the risk
   falls below ``rearm``, and a new alert needs ``cooldown_days`` since the last one;
4. **capacity**: a course gets at most ``day_cap`` of its students newly alerted on one
   day and ``week_cap`` in seven days, highest risk first (``admit``); a student over the
   capacity stays a candidate and is admitted on a later day if the risk holds. No wave
   on the first allowed day, no morning with half a class in a teacher's inbox. A day's
   candidates are admitted once the day is over for every student (the course-clock sweep
   has closed it), so the same events give the same alerts whatever the batching.

``medium`` is *watch*: the student's level on the at-risk list and in the risk scores,
never an alert message. Kept free of I/O so the policy is property-tested on its own
(tests/stream_app/test_alerting.py) and a replay of the same risks makes the same decisions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
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
    persist_days: int
    day_cap: float
    week_cap: float


@dataclass(frozen=True)
class AlertState:
    """Per student-course alert memory, stored as JSON in the state hash field ``alert``.

    ``armed``: a new alert may be raised (set again once risk falls below ``rearm``).
    ``last_day``: course day of the last alert (cooldown counts from it).
    ``level``: level of the last alert.
    ``left``: course day the student's enrolment ended (unenrolled: never alerted again).
    ``since``: course day the student's first record arrived: the days before it are
    stepped through (the model sees every day) but are never alert days, so a student who
    appears late is judged the same whatever batch their first record came in.
    """

    armed: bool = True
    last_day: int | None = None
    level: str | None = None
    left: int | None = None
    since: int | None = None

    def to_json(self) -> str:
        # hot path (once per student per batch): formatted by hand, parsed by from_json
        last = "null" if self.last_day is None else str(int(self.last_day))
        level = "null" if self.level is None else json.dumps(self.level)
        armed = "true" if self.armed else "false"
        tail = "" if self.left is None else f', "left": {int(self.left)}'
        if self.since is not None:
            tail += f', "since": {int(self.since)}'
        return f'{{"armed": {armed}, "last_day": {last}, "level": {level}{tail}}}'

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> AlertState:
        if not raw:
            return cls()
        got = _FROM_JSON.get(raw)  # frozen, so one instance per distinct JSON is shared
        if got is None:
            got = cls._parse(raw)
            if len(_FROM_JSON) > 100_000:
                _FROM_JSON.clear()
            _FROM_JSON[raw] = got
        return got

    @classmethod
    def _parse(cls, raw: bytes | str) -> AlertState:
        data = json.loads(raw)
        left = data.get("left")
        since = data.get("since")
        return cls(
            armed=bool(data.get("armed", True)),
            last_day=data.get("last_day"),
            level=data.get("level"),
            left=None if left is None else int(left),
            since=None if since is None else int(since),
        )


_FROM_JSON: dict[bytes | str, AlertState] = {}


@dataclass(frozen=True)
class Decision:
    """What one end-of-day observation means for a student."""

    state: AlertState
    level: RiskLevel  # level of the current risk (also stored as the student's level)
    candidate: bool  # may be alerted today, capacity permitting (``admit``)
    held: float  # the risk held over the persistence window (what candidates rank by)


def level_of(risk: float, th: ThresholdsLike) -> RiskLevel:
    if risk >= th.high:
        return RiskLevel.HIGH
    if risk >= th.medium:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW


def held_risk(recent: Sequence[float], persist_days: int) -> float:
    """The risk held over the last ``persist_days`` end-of-day risks (their minimum); 0
    while fewer days are known, so a student needs that many days of evidence."""
    if len(recent) < persist_days:
        return 0.0
    return float(min(recent[-persist_days:]))


def decide(
    state: AlertState,
    recent: Sequence[float],
    day: int,
    evidence_days: int,
    th: ThresholdsLike,
    act_at: float | None = None,
) -> Decision:
    """One end-of-day observation: ``recent`` = end-of-day risks up to ``day``, oldest first.

    Rules: re-arm below ``rearm``; a candidate must be armed, on a course day at or after
    ``min_days`` with ``evidence_days`` >= ``min_days`` (days since enrolment or start),
    ``cooldown_days`` after the last alert, enrolled, and hold ``high`` for
    ``persist_days`` days. ``act_at`` replaces ``high`` as the candidacy bar (the watch
    level when the act-on decision is cohort-relative and taken at admission).
    """
    risk = float(recent[-1]) if len(recent) else 0.0
    level = level_of(risk, th)
    held = held_risk(recent, th.persist_days)
    if not state.armed and risk < th.rearm:
        state = AlertState(True, state.last_day, state.level, state.left, state.since)
    # left on a later day (an unenrolment further on in the same batch): still enrolled now
    if (state.left is not None and state.left <= day) or not state.armed:
        return Decision(state, level, False, held)
    if state.since is not None and day < state.since:
        return Decision(state, level, False, held)
    bar = th.high if act_at is None else act_at
    if day < th.min_days or evidence_days < th.min_days or held < bar:
        return Decision(state, level, False, held)
    if state.last_day is not None and day - state.last_day < th.cooldown_days:
        return Decision(state, level, False, held)
    return Decision(state, level, True, held)


def raised(state: AlertState, day: int) -> AlertState:
    """The alert state after an act-on alert on ``day`` (disarmed until risk falls)."""
    return AlertState(False, day, RiskLevel.HIGH.value, state.left, state.since)


def capacity(
    enrolled: int,
    per_day: dict[int, int],
    day: int,
    th: ThresholdsLike,
    part: int = 0,
    parts: int = 1,
) -> int:
    """New alerts one partition's share of a course may still get on ``day``: at most
    ``day_cap`` of its ``enrolled`` students that day and ``week_cap`` over the seven days
    ending that day.

    Each partition decides alone (deterministically, whatever the batching), so the course's
    limits are split: the fractional share is dithered across partitions and rotated weekly,
    ``floor(cap * n + (((part + week) % parts) + 0.5) / parts)``, which sums to the course's
    limit over the partitions. With one partition a course gets at least one a day, so a
    small course is not silenced.
    """
    if parts <= 1:
        day_max = max(1, math.floor(th.day_cap * enrolled))
        week_max = max(1, math.floor(th.week_cap * enrolled))
    else:
        phase = (((part + day // 7) % parts) + 0.5) / parts
        day_max = math.floor(th.day_cap * enrolled + phase)
        week_max = math.floor(th.week_cap * enrolled + phase)
    week = sum(n for d, n in per_day.items() if day - 7 < d <= day)
    return max(0, min(day_max - per_day.get(day, 0), week_max - week))


def admit(candidates: list[tuple[float, int]], room: int) -> list[int]:
    """Which candidates (held risk, index) are alerted: the highest held risk first, ties by
    index (deterministic, so a replay admits the same students)."""
    if room <= 0:
        return []
    ranked = sorted(candidates, key=lambda c: (-c[0], c[1]))
    return [i for _, i in ranked[:room]]

"""A thin, read-only view of the stream worker's Redis state (one round trip per question).

The worker owns the layout (see ``keys.py``); this module only decodes it, so a change of
layout shows up here and nowhere else in the API.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from riskstream.api import keys

STATE_FIELDS = ("risk", "level", "upd", "ver", "day", "traj", "alert")


@dataclass(frozen=True)
class StudentState:
    """What the worker knows about one student in one course right now."""

    course: int
    user: int
    risk: float
    level: str
    updated: float
    version: str
    day: int | None
    trajectory: list[float | None]
    trajectory_start: int
    alert_state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ranked:
    user: int
    risk: float


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _float(raw: bytes | None, default: float = math.nan) -> float:
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        return default


def decode_trajectory(raw: bytes | None) -> list[float | None]:
    """``traj`` is float16 bytes, one value per course day; NaN marks a day without a score."""
    if not raw:
        return []
    usable = len(raw) - len(raw) % 2
    values = np.round(np.frombuffer(raw[:usable], dtype=np.float16).astype(np.float64), 4)
    out: list[float | None] = values.tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in values.tolist()]
    return out


def decode_state(course: int, user: int, values: list[bytes | None]) -> StudentState | None:
    risk, level, upd, ver, day, traj, alert = values
    if risk is None and level is None and traj is None:
        return None
    try:
        alert_state = json.loads(alert) if alert else {}
    except ValueError:
        alert_state = {}
    day_s = _text(day)
    open_day = int(day_s) if day_s and day_s.lstrip("-").isdigit() else None
    trajectory = decode_trajectory(traj)
    return StudentState(
        course=course,
        user=user,
        risk=_float(risk),
        level=_text(level) or "low",
        updated=_float(upd, 0.0),
        version=_text(ver) or "",
        day=open_day,
        trajectory=trajectory,
        # one score per committed day, consecutive up to the open day (capped from the front)
        trajectory_start=max((open_day or len(trajectory)) - len(trajectory), 0),
        alert_state=alert_state if isinstance(alert_state, dict) else {},
    )


class StateReader:
    """Async reads over one site's keys."""

    def __init__(self, client: aioredis.Redis, site: str) -> None:
        self.r: Any = client  # redis-py's async stubs mix bytes|str|None; we decode ourselves
        self.site = site

    async def ping(self) -> bool:
        try:
            return bool(await self.r.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def courses(self) -> list[int]:
        raw = await self.r.smembers(keys.courses_key(self.site))
        return sorted(int(c) for c in raw if c.decode().isdigit())

    async def student(self, course: int, user: int) -> tuple[bool, StudentState | None]:
        """(course known, state or None): one round trip when the student exists (the hot
        path); a second only to tell an unknown course from an unknown student."""
        values = await self.r.hmget(keys.state_key(self.site, course, user), STATE_FIELDS)
        st = decode_state(course, user, values)
        if st is not None:
            return True, st
        return await self.course_known(course), None

    async def course_known(self, course: int) -> bool:
        return bool(await self.r.sismember(keys.courses_key(self.site), str(course)))

    async def course_members(self, course: int) -> list[int]:
        raw = await self.r.zrange(keys.rank_key(self.site, course), 0, -1)
        return [int(m) for m in raw if m.decode().isdigit()]

    async def ranking(
        self, course: int, min_risk: float, after: tuple[float, int] | None, limit: int
    ) -> list[Ranked]:
        """Students by risk, highest first, strictly after the ``after`` cursor position.

        Keyset paging: a page boundary stays put while scores move, unlike an offset.
        Redis orders equal scores by member bytes (descending in a reverse range), so a tie
        with the cursor is "after" it when its member sorts below the cursor's member.
        """
        key = keys.rank_key(self.site, course)
        top: float | str = "+inf" if after is None else after[0]
        out: list[Ranked] = []
        offset, batch = 0, limit + 16
        while len(out) < limit:
            rows = await self.r.zrevrangebyscore(
                key, top, min_risk, start=offset, num=batch, withscores=True
            )
            for member, score in rows:
                m = member.decode()
                if after is not None and score == after[0] and m >= str(after[1]):
                    continue
                if m.isdigit():
                    out.append(Ranked(user=int(m), risk=float(score)))
                    if len(out) == limit:
                        break
            if len(rows) < batch:
                break
            offset += batch
        return out

    async def levels(self, course: int, users: list[int]) -> list[tuple[str | None, float]]:
        """(level, updated) of several students in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for u in users:
            pipe.hmget(keys.state_key(self.site, course, u), ("level", "upd"))
        rows = await pipe.execute()
        return [(_text(lv), _float(up, 0.0)) for lv, up in rows]

    async def distribution(self, course: int, bins: int) -> list[int]:
        """How many students fall in each of ``bins`` equal risk bins over [0, 1]."""
        key = keys.rank_key(self.site, course)
        pipe = self.r.pipeline(transaction=False)
        for i in range(bins):
            lo = i / bins
            hi = (i + 1) / bins
            pipe.zcount(key, lo, hi if i == bins - 1 else f"({hi}")
        return [int(n) for n in await pipe.execute()]

    async def alert_entries(
        self, newest: str, oldest: str, count: int
    ) -> list[tuple[str, dict[str, Any] | None]]:
        """Stream entries newest first between two ids (``+``/``-``/``(id`` allowed)."""
        rows = await self.r.xrevrange(keys.ALERTS_STREAM, newest, oldest, count=count)
        return [(eid.decode(), parse_alert_entry(f)) for eid, f in rows]

    async def alerts_after(self, last: str, count: int) -> list[tuple[str, dict[str, Any] | None]]:
        """Stream entries oldest first, strictly after ``last`` (SSE resume)."""
        rows = await self.r.xrange(keys.ALERTS_STREAM, "(" + last, "+", count=count)
        return [(eid.decode(), parse_alert_entry(f)) for eid, f in rows]

    async def course_sizes(self, courses: list[int]) -> list[int]:
        pipe = self.r.pipeline(transaction=False)
        for c in courses:
            pipe.zcard(keys.rank_key(self.site, c))
        return [int(n) for n in await pipe.execute()] if courses else []


def parse_alert_entry(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    """The alert JSON of one stream entry, whatever the worker named the field."""
    for name in (b"alert", b"json", b"data", b"value"):
        if name in fields:
            try:
                obj = json.loads(fields[name])
            except ValueError:
                return None
            return obj if isinstance(obj, dict) else None
    for raw in fields.values():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and "alert_id" in obj:
            return obj
    return None

"""One tail of the ``rs:alerts`` stream per API process, fanned out to live subscribers.

Every SSE client shares this single XREAD loop (N clients cost one Redis connection, not N),
and the same loop keeps the latest alert per student so the risk endpoint can give the
explanation of a student's latest alert without scanning the stream per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import structlog

from riskstream.api import keys
from riskstream.api.reader import parse_alert_entry

log = structlog.get_logger(__name__)


@dataclass(eq=False)  # identity hashing: each open stream is its own subscriber
class Subscriber:
    course: int | None
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )


class AlertHub:
    def __init__(
        self,
        client: aioredis.Redis,
        backlog: int = 10_000,
        block_ms: int = 1000,
        max_students: int = 200_000,
        site: str | None = None,
    ) -> None:
        """``site``: the only site whose alerts are indexed and fanned out (the stream holds
        every site's alerts; None = all, keyed by site anyway)."""
        self.r: Any = client
        self.site = site
        self.backlog = backlog
        self.max_students = max_students  # bounds memory; the oldest alerts go first
        self.block_ms = block_ms
        self.latest: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.subscribers: set[Subscriber] = set()
        self.last_id = "0-0"
        self.seen = 0
        self.arrivals: deque[float] = deque(maxlen=5000)
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def subscribe(self, course: int | None) -> Subscriber:
        sub = Subscriber(course=course)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def latest_for(self, site: str, course: int, user: int) -> dict[str, Any] | None:
        return self.latest.get((site, course, user))

    def rate_per_min(self, window_s: float = 60.0) -> float:
        now = time.monotonic()
        return float(sum(1 for t in self.arrivals if now - t <= window_s)) * 60.0 / window_s

    def _index(self, entry_id: str, alert: dict[str, Any], live: bool) -> None:
        self.last_id = entry_id
        try:
            k = (str(alert["site"]), int(alert["course_id"]), int(alert["user_id"]))
        except (KeyError, TypeError, ValueError):
            return
        if self.site is not None and k[0] != self.site:
            return  # another site's alert never reaches this site's readers
        self.latest.pop(k, None)  # re-insert: dict order = alert order, oldest first
        self.latest[k] = alert
        if len(self.latest) > self.max_students:
            del self.latest[next(iter(self.latest))]
        self.last_id = entry_id
        if not live:
            return
        self.seen += 1
        self.arrivals.append(time.monotonic())
        for sub in list(self.subscribers):
            if sub.course is not None and sub.course != k[1]:
                continue
            with contextlib.suppress(asyncio.QueueFull):  # a stuck client drops, others go on
                sub.queue.put_nowait((entry_id, alert))

    async def _load_backlog(self) -> None:
        rows = await self.r.xrevrange(keys.ALERTS_STREAM, "+", "-", count=self.backlog)
        for eid, fields in reversed(rows):
            alert = parse_alert_entry(fields)
            if alert is not None:
                self._index(eid.decode(), alert, live=False)
            else:
                self.last_id = eid.decode()

    async def _run(self) -> None:
        while True:
            try:
                if not self.ready.is_set():
                    await self._load_backlog()
                    self.ready.set()
                resp = await self.r.xread(
                    {keys.ALERTS_STREAM: self.last_id}, count=500, block=self.block_ms
                )
                for _stream, entries in resp or []:
                    for eid, fields in entries:
                        alert = parse_alert_entry(fields)
                        if alert is not None:
                            self._index(eid.decode(), alert, live=True)
                        else:
                            self.last_id = eid.decode()
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError) as exc:
                log.warning("alert_hub_redis_error", error=str(exc))
                await asyncio.sleep(1.0)

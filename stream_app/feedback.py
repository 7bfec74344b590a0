"""Teachers' feedback on alerts, worker side: kept per alert, consulted when alerts are admitted.

``riskstream.feedback`` (``TeacherFeedback``, from the connector) -> ``FeedbackConsumer`` ->
``rs:fb:{site:course}:user`` (``contracts.keys.feedback_key``: a hash, alert id -> JSON
``{"id", "action", "time", "teacher_id"}``, the student's course hash tag so it lives in the
course's Cluster slot). Per alert the answer with the highest feedback id wins (Lua), so a
replay of the topic, a redelivery or reordering changes nothing: storing is idempotent and
order-independent.

The policy question is one pure function, ``suppresses(answers, day_end, cooldown_days)``: a
student a teacher marked *contacted* at time T is not admitted for a course day that closes
in ``(T, T + cooldown]``. The processor asks it in ``_release`` for each candidate (with the
other eligibility rules, before capacity is shared out), so a held-back student takes no
room, keeps their alert memory and stays a candidate: once the cooldown is over and the risk
still holds, they are alerted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from contracts import TOPICS, ContractError, FeedbackAction, TeacherFeedback, decode, keys

log = structlog.get_logger("stream_app.feedback")

#: per alert id, keep the answer with the higher feedback id (atomic, one key per call so it
#: runs on a Redis Cluster too)
_STORE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur) or tonumber(cjson.decode(cur)['id']) < tonumber(cjson.decode(ARGV[2])['id']) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


def feedback_key(site: str, course_id: int, user_id: int) -> str:
    return keys.feedback_key(site, course_id, user_id)


def record(fb: TeacherFeedback) -> dict[str, Any]:
    """What is stored per alert (its latest answer)."""
    return {
        "id": fb.feedback_id,
        "action": fb.action.value,
        "time": fb.time.isoformat(),
        "alert_id": fb.alert_id,
        "teacher_id": fb.teacher_id,
    }


def latest(current: dict[str, Any] | None, new: TeacherFeedback) -> dict[str, Any]:
    """The answer to keep: the higher feedback id (pure; the Lua script does the same)."""
    if current is not None and int(current.get("id", 0)) >= new.feedback_id:
        return current
    return record(new)


def parse(raw: Mapping[bytes | str, bytes | str] | None) -> list[dict[str, Any]]:
    """A student's stored answers (HGETALL of ``feedback_key``), unreadable ones skipped."""
    out = []
    for v in (raw or {}).values():
        try:
            rec = json.loads(v)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def contacted_at(answers: Iterable[dict[str, Any] | None]) -> list[datetime]:
    """When the student was marked *contacted* (each alert's latest answer)."""
    out = []
    for a in answers:
        if not a or a.get("action") != FeedbackAction.CONTACTED.value:
            continue
        try:
            out.append(datetime.fromisoformat(str(a["time"])))
        except (KeyError, ValueError):
            continue
    return out


def suppresses(
    answers: Iterable[dict[str, Any] | None] | dict[str, Any] | None,
    day_end: datetime,
    cooldown_days: int,
) -> bool:
    """True when the course day that closes at ``day_end`` must not alert the student: a
    teacher marked them *contacted* at T with T < ``day_end`` <= T + ``cooldown_days``.
    Other answers (acknowledged, not useful) never hold alerts back. ``answers``: each
    alert's latest answer (one dict is one answer)."""
    if isinstance(answers, dict):
        answers = [answers]
    return within(contacted_at(answers or ()), day_end, cooldown_days)


def within(contacted: Iterable[datetime], day_end: datetime, cooldown_days: int) -> bool:
    """``suppresses`` for the times a student was marked contacted."""
    cooldown = timedelta(days=max(cooldown_days, 0))
    return any(t < day_end <= t + cooldown for t in contacted)


async def store(redis: Any, items: Iterable[TeacherFeedback]) -> int:
    """Keep each alert's latest answer (idempotent); returns how many were given."""
    items = list(items)
    for f in items:
        value = json.dumps(record(f), separators=(",", ":"))
        await redis.eval(_STORE, 1, feedback_key(f.site, f.course_id, f.user_id), f.alert_id, value)
    return len(items)


class FeedbackConsumer:
    """Reads the whole feedback topic into Redis: every partition, from the beginning, at
    every start (no consumer group: the topic is small, storing is idempotent, and every
    worker then holds every answer). ``catch_up`` reads up to the end offsets the broker
    has when the worker starts, before the worker takes its first event batch, so feedback
    published before a (re)start always counts; ``run`` then tails it."""

    def __init__(self, bootstrap: str, redis: Any, topic: str = TOPICS.feedback) -> None:
        self.bootstrap = bootstrap
        self.redis = redis
        self.topic = topic
        self.stored = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned = False

    async def _assign(self) -> bool:
        """Assign every partition of the topic (False while the topic does not exist)."""
        c = self._consumer
        if c is None:
            c = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await c.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await c.stop()
                raise
            self._consumer = c
        if not self._assigned:
            if self.topic not in await c.topics():
                return False
            parts = c.partitions_for_topic(self.topic) or set()
            if not parts:
                return False
            c.assign([TopicPartition(self.topic, p) for p in sorted(parts)])
            await c.seek_to_beginning()
            self._assigned = True
        return True

    async def _drain(self, timeout_ms: int) -> int:
        """One fetch, stored (retrying Redis until it answers); returns records fetched."""
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
        items = []
        n = 0
        for msgs in batch.values():
            for m in msgs:
                n += 1
                try:
                    items.append(decode(TeacherFeedback, m.value or b""))
                except (ContractError, ValueError) as exc:
                    log.warning("feedback record skipped", error=str(exc))
        while items:
            try:
                self.stored += await store(self.redis, items)
                break
            except RedisError as exc:
                log.warning("feedback store failed, retrying", error=str(exc))
                await asyncio.sleep(1.0)
        return n

    async def catch_up(self, timeout_s: float = 30.0) -> bool:
        """Store everything on the topic up to its end offsets as of now; False when the
        topic is missing, the broker fails or ``timeout_s`` passes (then ``run`` goes on)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            if not await self._assign():
                log.warning("feedback topic missing: nothing to catch up", topic=self.topic)
                return False
            c = self._consumer
            assert c is not None
            ends = await c.end_offsets(list(c.assignment()))
            while True:
                behind = [tp for tp, end in ends.items() if await c.position(tp) < end]
                if not behind:
                    break
                if loop.time() > deadline:
                    log.warning("feedback catch-up timed out", timeout_s=timeout_s)
                    return False
                await self._drain(200)
        except (KafkaError, OSError) as exc:
            log.warning("feedback catch-up failed", error=str(exc))
            await self.close()
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    if not await self._assign():
                        await asyncio.sleep(2.0)
                        continue
                    await self._drain(500)
                except (KafkaError, OSError) as exc:
                    log.warning("feedback consumer: broker error, retrying", error=str(exc))
                    await self.close()  # a fresh consumer on the next round
                    await asyncio.sleep(1.0)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None
            self._assigned = False

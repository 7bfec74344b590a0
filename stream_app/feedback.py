"""Teachers' feedback on alerts, worker side: keep the latest per student, hold back re-alerts.

``riskstream.feedback`` (``TeacherFeedback``, from the connector) -> ``FeedbackConsumer`` ->
``rs:fb:{site}:{course}:{user}`` (JSON ``{"id", "action", "time", "alert_id", "teacher_id"}``,
the answer with the highest feedback id wins, so replays and reordering change nothing).

The policy question is one pure function, ``suppresses(latest, alert_time, cooldown_days)``:
a student a teacher marked *contacted* is not alerted again within the cooldown of that
answer. ``FeedbackGate`` applies it to a batch's alerts with one MGET (only batches that
raise alerts pay for it); the alert policy may call ``suppresses`` directly instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from contracts import TOPICS, ContractError, FeedbackAction, RiskAlert, TeacherFeedback, decode

log = structlog.get_logger("stream_app.feedback")

#: keep the latest feedback only if its id is higher than the stored one (atomic)
_STORE = """
for i, key in ipairs(KEYS) do
  local new = cjson.decode(ARGV[i])
  local cur = redis.call('GET', key)
  if (not cur) or tonumber(cjson.decode(cur)['id']) < tonumber(new['id']) then
    redis.call('SET', key, ARGV[i])
  end
end
return #KEYS
"""


def feedback_key(site: str, course_id: int, user_id: int) -> str:
    return f"rs:fb:{site}:{course_id}:{user_id}"


def record(fb: TeacherFeedback) -> dict[str, Any]:
    """What is stored per student (the latest answer)."""
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


def suppresses(latest: dict[str, Any] | None, alert_time: datetime, cooldown_days: int) -> bool:
    """True when an alert at ``alert_time`` must not reach the teacher: the student was marked
    *contacted* less than ``cooldown_days`` before it. Other answers never hold alerts back."""
    if not latest or latest.get("action") != FeedbackAction.CONTACTED.value:
        return False
    try:
        answered = datetime.fromisoformat(str(latest["time"]))
    except (KeyError, ValueError):
        return False
    return answered <= alert_time < answered + timedelta(days=cooldown_days)


async def store(redis: Any, items: Iterable[TeacherFeedback]) -> int:
    """Write the latest answer per student (one Lua call); returns how many were given."""
    items = list(items)
    if not items:
        return 0
    keys = [feedback_key(f.site, f.course_id, f.user_id) for f in items]
    values = [json.dumps(record(f), separators=(",", ":")) for f in items]
    await redis.eval(_STORE, len(keys), *keys, *values)
    return len(items)


class FeedbackGate:
    """Drops a batch's alerts that ``suppresses`` holds back (one MGET per alerting batch)."""

    def __init__(self, redis: Any, cooldown_days: int) -> None:
        self.redis = redis
        self.cooldown_days = cooldown_days
        self.held_back = 0

    async def __call__(self, alerts: list[RiskAlert]) -> list[RiskAlert]:
        if not alerts:
            return alerts
        raw = await self.redis.mget([feedback_key(a.site, a.course_id, a.user_id) for a in alerts])
        kept = []
        for a, r in zip(alerts, raw, strict=True):
            fb = json.loads(r) if r else None
            if suppresses(fb, a.event_time, self.cooldown_days):
                self.held_back += 1
                log.info("alert held back: student contacted", alert_id=a.alert_id)
                continue
            kept.append(a)
        return kept


class FeedbackConsumer:
    """Tails the feedback topic into Redis; offsets are committed after the write."""

    def __init__(self, bootstrap: str, redis: Any, group: str) -> None:
        self.bootstrap = bootstrap
        self.redis = redis
        self.group = group
        self.stored = 0

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            TOPICS.feedback,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                items = []
                for msgs in batch.values():
                    for m in msgs:
                        try:
                            items.append(decode(TeacherFeedback, m.value or b""))
                        except (ContractError, ValueError) as exc:
                            log.warning("feedback record skipped", error=str(exc))
                if not batch:
                    continue
                while True:
                    try:
                        self.stored += await store(self.redis, items)
                        break
                    except RedisError as exc:
                        log.warning("feedback store failed, retrying", error=str(exc))
                        await asyncio.sleep(1.0)
                await consumer.commit()
        except KafkaError as exc:
            log.warning("feedback consumer stopped", error=str(exc))
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

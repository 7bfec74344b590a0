"""Alerts back into Moodle: the alerts topic -> ``local_riskstream_push_alerts``.

Where the plugin is absent (its function is not in the site info list), teachers get an
instant message instead (``core_message_send_instant_messages``). Idempotent by alert id:
pushed ids are remembered in Redis (and the plugin stores alerts under a unique id), so a
replayed topic does not notify twice. Offsets are committed only after an alert was pushed
or dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from contracts import TOPICS, ContractError, RiskAlert, decode, encode
from moodle_connector.client import MoodleClient, RetryPolicy
from moodle_connector.courses import fetch_roster, read_roster, roster_key
from moodle_connector.deadletter import dead_letter
from moodle_connector.errors import FunctionMissing, MoodleError
from moodle_connector.poller import Producer

log = structlog.get_logger("moodle_connector.sink")

PUSH_FUNCTION = "local_riskstream_push_alerts"
MESSAGE_FUNCTION = "core_message_send_instant_messages"
STAGE = "connector.sink"


def pushed_key(site: str, alert_id: str) -> str:
    return f"rs:sink:pushed:{site}:{alert_id}"


@dataclass
class SinkStats:
    pushed: int = 0
    duplicates: int = 0
    dead: int = 0
    skipped: int = 0
    retries: int = 0


def alert_params(alert: RiskAlert) -> dict[str, Any]:
    """One alert in the plugin's ``alerts[]`` parameter structure (see db/services.php)."""
    return {
        "alertid": alert.alert_id,
        "courseid": alert.course_id,
        "userid": alert.user_id,
        "risk": round(alert.risk, 4),
        "level": alert.level.value,
        "threshold": round(alert.threshold, 4),
        "modelversion": alert.model_version,
        "day": alert.day,
        "explanation": alert.explanation or "; ".join(c.text for c in alert.contributions),
        "timecreated": int(alert.created_at.timestamp()),
    }


def message_text(alert: RiskAlert, base_url: str) -> str:
    why = alert.explanation or "; ".join(c.text for c in alert.contributions)
    link = f"{base_url}/user/view.php?id={alert.user_id}&course={alert.course_id}"
    return (
        f"<p>riskstream: a student in your course is at <b>{alert.level.value}</b> risk "
        f"({alert.risk:.0%}) on course day {alert.day}.</p>"
        + (f"<p>Why: {why}</p>" if why else "")
        + f'<p><a href="{link}">Open the student\'s profile</a></p>'
    )


class AlertSink:
    """Pushes one alert at a time, with bounded retries, then dead letter."""

    def __init__(
        self,
        client: MoodleClient,
        redis: Redis,
        producer: Producer,
        site: str,
        *,
        max_attempts: int = 5,
        backoff: RetryPolicy | None = None,
        pushed_ttl_s: int = 90 * 86400,
        dead_letter_topic: str = TOPICS.dead_letter,
    ) -> None:
        self.client = client
        self.redis = redis
        self.producer = producer
        self.site = site
        self.max_attempts = max_attempts
        self.backoff = backoff or RetryPolicy(attempts=max_attempts, base_s=1.0, max_s=60.0)
        self.pushed_ttl_s = pushed_ttl_s
        self.dead_letter_topic = dead_letter_topic
        self.stats = SinkStats()
        known = client.known_functions
        self.use_plugin = known is None or PUSH_FUNCTION in known

    async def _teachers(self, course_id: int) -> list[int]:
        roster = await read_roster(self.redis, self.site, course_id)
        if not roster or not roster.get("teachers"):
            roster = await fetch_roster(self.client, course_id)
            await self.redis.set(roster_key(self.site, course_id), json.dumps(roster))
        return [int(t) for t in roster.get("teachers", [])]

    async def push(self, alert: RiskAlert) -> None:
        """One delivery attempt: plugin, or instant messages to the course's teachers."""
        if self.use_plugin:
            try:
                await self.client.call(PUSH_FUNCTION, {"alerts": [alert_params(alert)]})
                return
            except FunctionMissing:
                log.warning("plugin push function missing, falling back to messages")
                self.use_plugin = False
        teachers = await self._teachers(alert.course_id)
        if not teachers:
            raise MoodleError(
                f"course {alert.course_id} has no teacher (editingteacher/teacher) to notify"
            )
        text = message_text(alert, self.client.base_url)
        await self.client.call(
            MESSAGE_FUNCTION,
            {
                "messages": [
                    {
                        "touserid": t,
                        "text": text,
                        "textformat": 1,
                        "clientmsgid": f"{alert.alert_id}-{t}"[:100],
                    }
                    for t in teachers
                ]
            },
        )

    async def handle(
        self, raw: bytes | None, key: bytes | None = None, where: tuple[str, int, int] | None = None
    ) -> str:
        """Deliver one alert message; returns pushed|duplicate|skipped|dead. Fatal errors raise."""
        try:
            alert = decode(RiskAlert, raw or b"")
        except ContractError as exc:
            await self._dead(raw, str(exc), exc, key, where)
            return "dead"
        if alert.site != self.site:
            self.stats.skipped += 1
            return "skipped"
        pk = pushed_key(self.site, alert.alert_id)
        if await self.redis.exists(pk):
            self.stats.duplicates += 1
            return "duplicate"
        last: MoodleError | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.push(alert)
            except MoodleError as exc:
                if exc.fatal:
                    raise
                last = exc
                if attempt < self.max_attempts:
                    self.stats.retries += 1
                    delay = self.backoff.delay(attempt)
                    log.warning(
                        "alert push failed, retrying",
                        alert_id=alert.alert_id,
                        error=str(exc),
                        delay_s=round(delay, 2),
                    )
                    await asyncio.sleep(delay)
                continue
            await self.redis.set(pk, "1", ex=self.pushed_ttl_s)
            self.stats.pushed += 1
            log.info("alert pushed", alert_id=alert.alert_id, course=alert.course_id)
            return "pushed"
        reason = f"alert not delivered after {self.max_attempts} attempts: {last}"
        await self._dead(raw, reason, last, key, where)
        return "dead"

    async def _dead(
        self,
        raw: bytes | None,
        reason: str,
        exc: BaseException | None,
        key: bytes | None,
        where: tuple[str, int, int] | None,
    ) -> None:
        dl = dead_letter(
            raw or b"", reason, STAGE, exc, key=key.decode(errors="replace") if key else None
        )
        if where:
            dl = dl.model_copy(
                update={
                    "source_topic": where[0],
                    "source_partition": where[1],
                    "source_offset": where[2],
                }
            )
        fut = await self.producer.send(self.dead_letter_topic, value=encode(dl), key=key)
        await fut
        self.stats.dead += 1
        log.warning("alert dead-lettered", reason=reason)

    async def run(
        self,
        bootstrap: str,
        stop: asyncio.Event,
        *,
        topic: str = TOPICS.alerts,
        group: str = "riskstream-sink",
        session_timeout_ms: int = 10_000,
    ) -> None:
        """Consume until ``stop``; commit after each delivered (or dead-lettered) batch."""
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(1000, session_timeout_ms // 3),
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, msgs in batches.items():
                    for msg in msgs:
                        await self.handle(msg.value, msg.key, (tp.topic, tp.partition, msg.offset))
                        await consumer.commit(
                            {TopicPartition(tp.topic, tp.partition): msg.offset + 1}
                        )
        finally:
            await consumer.stop()

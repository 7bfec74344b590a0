"""Teachers' feedback on alerts (plugin table) -> the ``riskstream.feedback`` topic.

Same discipline as the log poller: read rows after the cursor, publish, await every ack, then
move the cursor (``rs:fbcursor:{site}``). One call per ``every_s`` (each call is one row in
Moodle's log), a replay republishes the same feedback ids and consumers keep the latest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts import TOPICS, TeacherFeedback, encode
from moodle_connector.client import MoodleClient, RetryPolicy
from moodle_connector.cursor import Cursor
from moodle_connector.deadletter import dead_letter
from moodle_connector.errors import MoodleError
from moodle_connector.poller import Producer, _wait

log = structlog.get_logger("moodle_connector.feedback")

FUNCTION = "local_riskstream_get_feedback"
STAGE = "connector.feedback"


def feedback_cursor_key(site: str) -> str:
    return f"rs:fbcursor:{site}"


def to_feedback(row: Mapping[str, Any], site: str) -> TeacherFeedback:
    """One plugin row -> the contract (raises ``ValidationError`` on a malformed row)."""
    return TeacherFeedback(
        site=site,
        feedback_id=int(row["id"]),
        alert_id=str(row["alertid"]),
        course_id=int(row["courseid"]),
        user_id=int(row["userid"]),
        teacher_id=int(row["teacherid"]),
        action=row["action"],
        time=datetime.fromtimestamp(int(row["timecreated"]), UTC),
    )


class FeedbackPoller:
    """Pages ``local_riskstream_get_feedback`` onto the feedback topic."""

    def __init__(
        self,
        client: MoodleClient,
        producer: Producer,
        redis: Redis,
        site: str,
        every_s: float = 300.0,
        topic: str = TOPICS.feedback,
        dead_letter_topic: str = TOPICS.dead_letter,
    ) -> None:
        self.client = client
        self.producer = producer
        self.site = site
        self.every_s = every_s
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.cursor = Cursor(redis, site, key=feedback_cursor_key(site))
        self.published = 0

    async def poll_once(self) -> tuple[int, bool]:
        """One page; returns (rows published, more waiting)."""
        since = await self.cursor.get()
        body = await self.client.call(FUNCTION, {"sinceid": since, "limit": 500})
        rows = body.get("feedback", []) if isinstance(body, dict) else []
        futures = []
        for row in rows:
            try:
                fb = to_feedback(row, self.site)
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                dl = dead_letter(row, f"feedback row is not valid: {exc}", STAGE, exc)
                futures.append(await self.producer.send(self.dead_letter_topic, value=encode(dl)))
                continue
            futures.append(await self.producer.send(self.topic, value=encode(fb), key=fb.key))
        if futures:
            await asyncio.gather(*futures)
        last = int(body.get("lastid") or since) if isinstance(body, dict) else since
        if last > since:
            await self.cursor.set(last)
        self.published += len(rows)
        return len(rows), bool(isinstance(body, dict) and body.get("hasmore"))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop``; outages back off, fatal Moodle errors propagate."""
        failures = 0
        backoff = RetryPolicy(attempts=1_000_000, base_s=1, max_s=60)
        while not stop.is_set():
            try:
                _, more = await self.poll_once()
                failures = 0
            except (MoodleError, KafkaError, RedisError, OSError) as exc:
                if isinstance(exc, MoodleError) and exc.fatal:
                    raise
                failures += 1
                log.warning("feedback polling failed, backing off", error=str(exc))
                await _wait(stop, backoff.delay(failures))
                continue
            if not more:
                await _wait(stop, self.every_s)

"""Test helpers: events, an in-memory publisher, a tiny registry model as a ModelHandle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts import TOPICS, LmsEvent, decode, encode
from contracts.alerts import RiskAlert
from stream_app.records import InRecord, OutRecord
from stream_app.reload import load_handle

START = datetime(2024, 2, 5, tzinfo=UTC)
COMPONENTS = ["mod_quiz", "mod_forum", "mod_resource", "mod_page", "core", "mod_url"]


def event(
    eid: int, user: int, day: float, course: int = 7, component: str = "mod_page", **kw: object
) -> LmsEvent:
    return LmsEvent(
        site="s1",
        event_id=eid,
        user_id=user,
        course_id=course,
        time=START + timedelta(days=day),
        eventname="\\mod_page\\event\\course_module_viewed",
        component=component,
        action="viewed",
        target="course_module",
        **kw,  # type: ignore[arg-type]
    )


def record(ev: LmsEvent | bytes, offset: int = 0, partition: int = 0) -> InRecord:
    if isinstance(ev, LmsEvent):
        return InRecord(TOPICS.events, partition, offset, ev.key, encode(ev), None)
    return InRecord(TOPICS.events, partition, offset, b"k", ev, None)


class ListPublisher:
    """Keeps what would have been published; can be told to fail."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []
        self.fail_next = 0

    async def publish(self, records: list[OutRecord]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker down (test)")
        self.records.extend(records)

    def on(self, topic: str) -> list[OutRecord]:
        return [r for r in self.records if r.topic == topic]

    def alerts(self) -> list[RiskAlert]:
        return [decode(RiskAlert, r.value) for r in self.on(TOPICS.alerts)]


def handle_for(root: Path, **kw: object):  # type: ignore[no-untyped-def]
    from models.testing import tiny_model

    tiny_model(root, **kw)  # type: ignore[arg-type]
    return load_handle(root, "cpu")

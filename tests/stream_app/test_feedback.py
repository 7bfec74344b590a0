"""Teachers' feedback on the worker side: latest answer per student, contacted holds alerts back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import redis

from contracts import RiskAlert, RiskLevel, TeacherFeedback
from riskstream.stack import Stack
from stream_app.feedback import FeedbackGate, feedback_key, latest, record, store, suppresses

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


def fb(fid: int, action: str, user: int = 7, at: datetime = T0) -> TeacherFeedback:
    return TeacherFeedback(
        site="s1",
        feedback_id=fid,
        alert_id=f"a{fid:08d}",
        course_id=3,
        user_id=user,
        teacher_id=2,
        action=action,
        time=at,  # type: ignore[arg-type]
    )


def alert(user: int, at: datetime) -> RiskAlert:
    return RiskAlert(
        alert_id=f"al{user:08d}",
        site="s1",
        user_id=user,
        course_id=3,
        risk=0.9,
        level=RiskLevel.HIGH,
        threshold=0.7,
        model_version="v1",
        day=4,
        trigger_event_id=9,
        event_time=at,
        created_at=at,
    )


def test_contacted_holds_back_alerts_within_the_cooldown_only() -> None:
    contacted = record(fb(1, "contacted"))
    assert suppresses(contacted, T0 + timedelta(days=6), cooldown_days=7)
    assert not suppresses(contacted, T0 + timedelta(days=7), cooldown_days=7)
    assert not suppresses(contacted, T0 - timedelta(hours=1), cooldown_days=7)  # before it
    for other in ("acknowledged", "notuseful"):
        assert not suppresses(record(fb(1, other)), T0 + timedelta(days=1), cooldown_days=7)
    assert not suppresses(None, T0, cooldown_days=7)


def test_latest_answer_wins_by_id_whatever_the_order() -> None:
    first, second = fb(1, "contacted"), fb(2, "notuseful")
    assert latest(latest(None, first), second)["action"] == "notuseful"
    assert latest(latest(None, second), first)["action"] == "notuseful"


def test_store_and_gate_on_redis(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    client.delete(feedback_key("s1", 3, 7), feedback_key("s1", 3, 8))

    async def go() -> list[RiskAlert]:
        import redis.asyncio as aredis

        r = aredis.Redis.from_url(stack.redis_url)
        try:
            await store(r, [fb(5, "contacted"), fb(4, "acknowledged")])  # older id loses
            gate = FeedbackGate(r, cooldown_days=7)
            out = await gate([alert(7, T0 + timedelta(days=2)), alert(8, T0 + timedelta(days=2))])
            assert gate.held_back == 1
            return out
        finally:
            await r.aclose()

    kept = asyncio.run(go())
    assert [a.user_id for a in kept] == [8]
    assert b'"action":"contacted"' in (client.get(feedback_key("s1", 3, 7)) or b"")
    client.close()

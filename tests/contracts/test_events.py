import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import (
    ActivityType,
    ContractError,
    DeadLetter,
    LmsEvent,
    RiskAlert,
    RiskLevel,
    alert_id,
    decode,
    decode_event,
    encode,
)


def _event(**over: object) -> LmsEvent:
    base: dict[str, object] = dict(
        site="moodle.example.edu",
        event_id=42,
        user_id=7,
        course_id=3,
        time="2024-03-01T10:00:00Z",
        eventname="\\mod_quiz\\event\\attempt_submitted",
        component="mod_quiz",
        action="submitted",
        target="attempt",
        crud="u",
        edulevel=2,
        cmid=12,
        attempt_id=5,
        grade=8.0,
        max_grade=10.0,
    )
    base.update(over)
    return LmsEvent.model_validate(base)


def test_round_trip_keeps_every_field() -> None:
    ev = _event()
    assert decode_event(encode(ev)) == ev
    assert ev.activity is ActivityType.QUIZ  # derived from the component


def test_time_is_normalised_to_utc() -> None:
    ev = _event(time=datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))))
    assert ev.time == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert ev.time.tzinfo == UTC


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("event_id", -1, "event_id"),
        ("user_id", "abc", "user_id"),
        ("crud", "x", "crud"),
        ("time", "2024-03-01T10:00:00", "time"),
        ("activity", "podcast", "activity"),
        ("grade", 11.0, "above max_grade"),
    ],
)
def test_rejection_names_the_field(field: str, value: object, needle: str) -> None:
    raw = _event().model_dump(mode="json")
    raw[field] = value
    with pytest.raises(ContractError) as info:
        decode(LmsEvent, __import__("json").dumps(raw))
    assert needle in str(info.value)


def test_unknown_field_is_rejected() -> None:
    raw = _event().model_dump(mode="json") | {"colour": "red"}
    with pytest.raises(ContractError, match="colour"):
        decode_event(__import__("json").dumps(raw))


def test_garbage_is_a_contract_error_not_a_crash() -> None:
    with pytest.raises(ContractError):
        decode_event(b"\xff\xfe not json")


def test_key_groups_by_student() -> None:
    assert _event(event_id=1).key == _event(event_id=2, course_id=9).key
    assert _event(user_id=1).key != _event(user_id=2).key


def test_alert_id_is_deterministic_and_discriminating() -> None:
    a = alert_id("s", 1, 2, "v1", 99, "high")
    assert a == alert_id("s", 1, 2, "v1", 99, "high")
    assert a != alert_id("s", 1, 2, "v1", 100, "high")
    alert = RiskAlert(
        alert_id=a,
        site="s",
        user_id=2,
        course_id=1,
        risk=0.9,
        level=RiskLevel.HIGH,
        threshold=0.8,
        model_version="v1",
        day=30,
        trigger_event_id=99,
        event_time="2024-03-01T10:00:00Z",
        created_at="2024-03-01T10:00:01Z",
    )
    assert decode(RiskAlert, encode(alert)) == alert
    with pytest.raises(ContractError, match="risk"):
        decode(RiskAlert, encode(alert).replace(b'"risk":0.9', b'"risk":1.5'))


def test_dead_letter_keeps_binary_payload_exactly() -> None:
    raw = b"\x00\xffbinary"
    text, enc = DeadLetter.text_of(raw)
    dl = DeadLetter(
        reason="not JSON",
        stage="test",
        payload=text,
        payload_encoding=enc,
        failed_at="2024-01-01T00:00:00Z",
    )
    assert decode(DeadLetter, encode(dl)).raw_bytes() == raw


@given(st.binary(max_size=300))
def test_any_bytes_either_decode_or_raise_contract_error(raw: bytes) -> None:
    with contextlib.suppress(ContractError):
        decode_event(raw)

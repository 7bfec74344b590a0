"""Hypothesis against the contract boundary: whatever arrives, decoding either yields a valid
model or raises ContractError naming a field, and a dead letter keeps the payload byte-exact.

Two bugs this found, now fixed in contracts/: an offset timestamp near year 1 or 9999 raised
OverflowError instead of ContractError, and DeadLetter stripped whitespace from payloads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from contracts import (
    ContractError,
    CourseCalendar,
    DeadLetter,
    LmsEvent,
    RiskAlert,
    RiskScore,
    StudentProfile,
    decode,
    decode_event,
    encode,
)
from contracts.events import ACTIVITY_TYPES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ---------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
aware_times = st.builds(
    lambda d, tz: d.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
    offsets,
)
time_strings = (
    aware_times.map(lambda d: d.isoformat())
    | st.datetimes().map(lambda d: d.isoformat())  # naive: must be refused
    | st.sampled_from(["", "yesterday", "2024-13-01T00:00:00Z", "2024-02-30T10:00:00Z", "1e9"])
    | st.integers(min_value=-(2**40), max_value=2**40)
)

valid_events = st.fixed_dictionaries(
    {
        "site": st.text(
            st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=40
        ),
        "event_id": st.integers(min_value=0, max_value=2**62),
        "user_id": st.integers(min_value=0, max_value=2**40),
        "course_id": st.integers(min_value=0, max_value=2**40),
        "time": aware_times.filter(
            lambda d: datetime(2, 1, 1, tzinfo=UTC) < d < datetime(9998, 1, 1, tzinfo=UTC)
        ).map(lambda d: d.isoformat()),
        "eventname": st.just("\\mod_quiz\\event\\attempt_submitted"),
        "component": st.sampled_from(["mod_quiz", "mod_forum", "core", "mod_unknown", "x"]),
        "action": st.sampled_from(["viewed", "submitted", "created"]),
        "target": st.sampled_from(["", "course", "attempt"]),
        "count": st.integers(min_value=1, max_value=100_000),
    },
    optional={
        "crud": st.sampled_from(["c", "r", "u", "d"]),
        "edulevel": st.sampled_from([0, 1, 2]),
        "cmid": st.integers(min_value=0, max_value=2**31),
        "activity": st.sampled_from([a.value for a in ACTIVITY_TYPES]),
        "attempt_id": st.integers(min_value=0, max_value=2**31),
    },
)

EVENT_FIELDS = sorted(LmsEvent.model_fields)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one to three targeted mutations (the interesting malformed inputs)."""
    ev: dict[str, Any] = dict(draw(valid_events))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(st.sampled_from(["drop", "retype", "extra", "time", "grade", "bounds"]))
        name = draw(st.sampled_from(EVENT_FIELDS))
        if kind == "drop":
            ev.pop(name, None)
        elif kind == "retype":
            ev[name] = draw(json_values)
        elif kind == "extra":
            ev[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
        elif kind == "time":
            ev["time"] = draw(time_strings)
        elif kind == "grade":
            ev["grade"] = draw(st.floats(allow_nan=False, allow_infinity=False) | st.none())
            ev["max_grade"] = draw(st.floats(allow_nan=False, allow_infinity=False) | st.none())
        else:
            ev[name] = draw(st.sampled_from([-1, 2**64, -(2**64), 0, 100_001, "", " ", "\x00"]))
    return ev


def _decode_or_contract_error(cls: type[BaseModel], raw: bytes | str) -> BaseModel | None:
    """The property itself: anything but a model or a ContractError fails the test."""
    try:
        return decode(cls, raw)
    except ContractError as exc:
        assert exc.model == cls.__name__
        assert "field '" in str(exc)  # says which field, so a producer can fix it
        return None


# -- decoding never raises anything but ContractError --------------------------------


@FUZZ
@given(valid_events)
def test_valid_events_round_trip_exactly(raw: dict[str, Any]) -> None:
    ev = decode_event(json.dumps(raw))
    assert decode_event(encode(ev)) == ev
    assert ev.time.tzinfo == UTC


@FUZZ
@given(mutated_events())
def test_mutated_events_decode_or_name_the_field(raw: dict[str, Any]) -> None:
    ev = _decode_or_contract_error(LmsEvent, json.dumps(raw))
    if ev is not None:  # accepted: then it is valid and stable on the wire
        assert isinstance(ev, LmsEvent)
        assert decode_event(encode(ev)) == ev


@FUZZ
@given(json_values)
def test_any_json_value_is_a_model_or_a_contract_error(value: Any) -> None:
    for cls in (LmsEvent, RiskAlert, RiskScore, DeadLetter, CourseCalendar, StudentProfile):
        _decode_or_contract_error(cls, json.dumps(value))


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_any_bytes_are_an_event_or_a_contract_error(raw: bytes) -> None:
    _decode_or_contract_error(LmsEvent, raw)


@pytest.mark.parametrize(
    "time",
    ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:00-01:00"],
)
def test_out_of_range_offset_time_is_a_contract_error(time: str) -> None:
    raw = {
        "site": "s",
        "event_id": 1,
        "user_id": 1,
        "course_id": 1,
        "time": time,
        "eventname": "e",
        "component": "mod_quiz",
        "action": "viewed",
    }
    with pytest.raises(ContractError, match="field 'time'"):
        decode_event(json.dumps(raw))


# -- dead letters keep payloads byte-exact -------------------------------------------


def _dead_letter(raw: bytes | str) -> DeadLetter:
    text, enc = DeadLetter.text_of(raw)
    return DeadLetter(
        reason="fuzz",
        stage="tests.fuzz",
        payload=text,
        payload_encoding=enc,
        failed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


@FUZZ
@given(st.binary(max_size=500))
def test_dead_letter_keeps_any_bytes_exactly_through_the_wire(raw: bytes) -> None:
    dl = _dead_letter(raw)
    assert dl.raw_bytes() == raw
    assert decode(DeadLetter, encode(dl)).raw_bytes() == raw


@FUZZ
@given(st.text(max_size=200))
def test_dead_letter_keeps_text_with_whitespace_exactly(raw: str) -> None:
    payload = f" \n{raw}\t\r\n "
    back = decode(DeadLetter, encode(_dead_letter(payload.encode())))
    assert back.raw_bytes() == payload.encode()
    assert back.payload_encoding == "utf-8"

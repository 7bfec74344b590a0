"""Non-finite numbers never enter: every float field of every wire model refuses NaN/Infinity,
and oversized dead letters keep a hash and their first bytes (issue 15)."""

from __future__ import annotations

import hashlib
import json
import typing
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from contracts import (
    ContractError,
    Contribution,
    CourseCalendar,
    DeadLetter,
    Deadline,
    LmsEvent,
    RiskAlert,
    RiskScore,
    StudentProfile,
    decode,
    encode,
)
from contracts.deadletter import PAYLOAD_KEEP_BYTES

NOW = "2024-03-01T10:00:00Z"
VALID: dict[type[BaseModel], dict[str, object]] = {
    LmsEvent: {
        "site": "s",
        "event_id": 1,
        "user_id": 1,
        "course_id": 1,
        "time": NOW,
        "eventname": "x",
        "component": "mod_quiz",
        "action": "a",
        "grade": 1.0,
        "max_grade": 2.0,
    },
    RiskAlert: {
        "alert_id": "a" * 32,
        "site": "s",
        "user_id": 1,
        "course_id": 1,
        "risk": 0.5,
        "level": "high",
        "threshold": 0.4,
        "model_version": "v1",
        "day": 3,
        "trigger_event_id": 1,
        "event_time": NOW,
        "created_at": NOW,
        "contributions": [{"feature": "quiz", "weight": 0.1, "text": "t"}],
    },
    RiskScore: {
        "site": "s",
        "user_id": 1,
        "course_id": 1,
        "risk": 0.5,
        "level": "low",
        "day": 1,
        "model_version": "v1",
        "last_event_id": 1,
        "updated_at": NOW,
    },
    Deadline: {"due": NOW, "weight": 10.0},
    Contribution: {"feature": "quiz", "weight": 0.1, "text": "t"},
}


def _float_fields(model: type[BaseModel]) -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        args = typing.get_args(ann) or (ann,)
        if float in args:
            out.append(name)
    return out


def test_every_float_field_is_covered() -> None:
    """The models with float fields are exactly those this test feeds NaN/Infinity."""
    models = [
        LmsEvent,
        RiskAlert,
        RiskScore,
        Deadline,
        Contribution,
        CourseCalendar,
        StudentProfile,
        DeadLetter,
    ]
    with_floats = {m for m in models if _float_fields(m)}
    assert with_floats == set(VALID)
    assert set(_float_fields(LmsEvent)) == {"grade", "max_grade"}


@pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)
@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_refused_in_every_float_field(model: type[BaseModel], bad: str) -> None:
    good = json.dumps(VALID[model])
    decode(model, good)  # the base payload is valid
    for name in _float_fields(model):
        raw = json.dumps(VALID[model] | {name: 0.0}).replace(f'"{name}": 0.0', f'"{name}": {bad}')
        with pytest.raises(ContractError, match=name):
            decode(model, raw)
        with pytest.raises(ValueError):
            model.model_validate(VALID[model] | {name: float(bad.replace("1e999", "inf"))})


def test_infinite_grades_refused_together() -> None:
    raw = json.dumps(VALID[LmsEvent]).replace('"grade": 1.0', '"grade": Infinity')
    raw = raw.replace('"max_grade": 2.0', '"max_grade": Infinity')
    with pytest.raises(ContractError, match=r"grade.*finite"):
        decode(LmsEvent, raw)


def test_small_payload_kept_byte_exact() -> None:
    raw = b"\xff\x00abc"
    kept = DeadLetter.keep(raw)
    assert not kept.truncated and kept.size == 5
    assert kept.sha256 == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize(
    "raw",
    [b"x" * 5_000_000, ("\u00e9" * 2_600_000).encode(), b"\x00" * 3_000_000, b"\xff" * 3_000_000],
)
def test_oversized_dead_letter_fits_one_megabyte(raw: bytes) -> None:
    kept = DeadLetter.keep(raw)
    dl = DeadLetter(
        reason=DeadLetter.short_reason("x" * 100_000),
        stage="t",
        payload=kept.text,
        payload_encoding=kept.encoding,
        payload_truncated=kept.truncated,
        payload_bytes=kept.size,
        payload_sha256=kept.sha256,
        failed_at=datetime.now(UTC),
    )
    wire = encode(dl)
    assert len(wire) < 1_000_000
    back = decode(DeadLetter, wire)
    assert back.payload_truncated and back.payload_bytes == len(raw)
    assert back.payload_sha256 == hashlib.sha256(raw).hexdigest()
    assert raw.startswith(back.raw_bytes())
    assert len(back.raw_bytes()) >= PAYLOAD_KEEP_BYTES - 3
    assert len(back.reason) < 5000

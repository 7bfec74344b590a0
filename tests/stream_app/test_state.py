"""State codec and the hand-formatted wire JSON agree with the contract."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import RiskLevel, RiskScore, decode, encode
from stream_app.alerting import AlertState
from stream_app.processor import risk_score_json
from stream_app.state import StudentKey, StudentState, decode_state, encode_state


def _roundtrip(s: StudentState, n_day: int) -> StudentState:
    fields = encode_state(s, full=True)
    raw = {k.encode(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in fields.items()}
    return decode_state(raw, n_day)


def test_state_roundtrip_and_name_clash() -> None:
    rng = np.random.default_rng(0)
    s = StudentState(
        model_state={"h": rng.random(8, dtype=np.float32), "win": rng.random(6, dtype=np.float32)},
        acc=rng.random(14, dtype=np.float32),
        day=12,
        d0=3,
        win=rng.random((4, 5), dtype=np.float32),
        last_id=99,
        ver="v0002",
        spec="abc",
        risk=0.625,
        level="medium",
        upd=1.5,
        alert=AlertState(armed=False, last_day=9, level="medium"),
        traj=rng.random(12).astype(np.float16),
    )
    fields = encode_state(s, full=True)
    assert "m_win" in fields and fields["win"] == s.win.tobytes()  # type: ignore[union-attr]
    back = _roundtrip(s, 5)
    assert back.day == 12 and back.d0 == 3 and back.last_id == 99 and back.ver == "v0002"
    assert back.alert == s.alert and back.level == "medium" and back.risk == 0.625
    np.testing.assert_array_equal(back.model_state["win"], s.model_state["win"])
    np.testing.assert_array_equal(back.model_state["h"], s.model_state["h"])
    np.testing.assert_array_equal(back.win, s.win)
    np.testing.assert_array_equal(back.traj, s.traj)
    # a light write leaves model state, window and version alone
    light = encode_state(s, full=False, alert=False)
    assert set(light) == {"day", "last_id", "risk", "level", "upd", "acc"}


@settings(max_examples=50, deadline=None)
@given(
    armed=st.booleans(),
    last_day=st.none() | st.integers(-5, 400),
    level=st.sampled_from([None, "medium", "high"]),
)
def test_alert_state_json(armed: bool, last_day: int | None, level: str | None) -> None:
    a = AlertState(armed, last_day, level)
    assert AlertState.from_json(a.to_json()) == a


@settings(max_examples=50, deadline=None)
@given(
    site=st.text(min_size=1, max_size=20).filter(lambda s: s.strip() == s and s),
    risk=st.floats(0.0, 1.0),
    level=st.sampled_from(list(RiskLevel)),
    day=st.integers(0, 400),
    last_id=st.integers(0, 2**53),
)
def test_fast_risk_score_json_matches_contract(
    site: str, risk: float, level: RiskLevel, day: int, last_id: int
) -> None:
    created = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    s = StudentState(risk=risk, level=level.value, last_id=last_id)
    fast = risk_score_json(
        s,
        StudentKey(site, 7, 42),
        day,
        '"v0001"',
        f'"{created.isoformat()}"'.replace("+00:00", "Z"),
    )
    want = RiskScore(
        site=site,
        user_id=42,
        course_id=7,
        risk=risk,
        level=level,
        day=day,
        model_version="v0001",
        last_event_id=last_id,
        updated_at=created,
    )
    assert decode(RiskScore, fast) == want
    assert decode(RiskScore, encode(want)) == want

"""Live calibration: reliability, ECE and precision of high over known outcomes."""

from __future__ import annotations

import numpy as np

from models.live_calibration import StudentRecord, band_calibration, course_calibration


def _students(rng: np.random.Generator, n: int, bias: float = 0.0) -> list[StudentRecord]:
    out = []
    for _ in range(n):
        p = float(rng.random())
        label = int(rng.random() < min(1.0, max(0.0, p + bias)))
        out.append(StudentRecord([p] * 30, start=0, label=label))
    return out


def test_calibrated_risk_has_small_ece_and_a_shift_raises_the_alarm() -> None:
    rng = np.random.default_rng(0)
    good = band_calibration(_students(rng, 3000), 14, high=0.7, medium=0.5)
    assert good["ece"] < 0.05 and good["verdict"] == "ok"
    assert good["complete"] and good["known"] == good["scored"] == 3000
    assert abs(good["precision_high"] - 0.85) < 0.05
    bad = band_calibration(_students(rng, 3000, bias=-0.3), 14, high=0.7, medium=0.5)
    assert bad["ece"] > 0.2 and bad["verdict"] == "alarm"


def test_partial_outcomes_give_a_floor_and_withdrawn_before_d_are_left_out() -> None:
    studs = [
        StudentRecord([0.9] * 30, 0, label=1, withdraw_day=20),  # known positive
        StudentRecord([0.9] * 30, 0, label=None),  # still enrolled, unknown
        StudentRecord([0.9] * 30, 0, label=1, withdraw_day=5),  # gone before day 14
        StudentRecord([0.1] * 5, 0, label=None),  # not scored at day 14
    ]
    b = band_calibration(studs, 14, high=0.7, medium=0.5, min_known=1)
    assert b["scored"] == 2 and b["known"] == 1 and not b["complete"]
    assert b["precision_high"] == 1.0 and b["precision_high_lower_bound"] == 0.5
    few = band_calibration(studs, 14, high=0.7, medium=0.5)
    assert few["verdict"] == "insufficient"


def test_risk_is_read_at_the_band_day_from_the_trajectory_start() -> None:
    s = StudentRecord([0.1, 0.2, 0.3], start=12, label=1)
    assert s.risk_at(14) == 0.3 and s.risk_at(11) is None and s.risk_at(15) is None
    doc = course_calibration([s], high=0.7, medium=0.5, days=(14, 28), min_known=1)
    assert [b["day"] for b in doc["bands"]] == [14]
    assert doc["outcomes_known"] == 1

"""Drift: PSI against per-week training shares, the stream's counts, the alarm rule."""

from __future__ import annotations

import numpy as np
import pytest

from models.drift import (
    ALARM_PSI,
    MIN_DAYS,
    DriftReference,
    bin_increments,
    build_reference,
    course_week_psi,
    parse_counts,
    psi,
)

FEATURES = ("clicks_total", "active", "deadline_days")


def _tensors(rng: np.random.Generator, n: int, t: int, scale: float = 1.0) -> np.ndarray:
    active = rng.random((n, t)) < 0.4
    clicks = np.where(active, np.log1p(rng.poisson(10 * scale, (n, t))), 0.0)
    deadline = rng.random((n, t))
    return np.stack([clicks, active.astype(float), deadline], axis=2).astype(np.float32)


def _week(ref: DriftReference, x: np.ndarray, week: int) -> dict[str, object]:
    vec = x[:, 7 * week : 7 * week + 7].reshape(-1, x.shape[2])
    days = np.repeat(np.arange(7 * week, 7 * week + 7)[None, :], len(x), axis=0).ravel()
    weeks = parse_counts(bin_increments(ref, vec, days), ref)
    n, counts = weeks[week]
    return course_week_psi(ref, week, counts, n)


def test_same_distribution_is_stable_and_a_shift_raises_the_alarm() -> None:
    rng = np.random.default_rng(0)
    train = _tensors(rng, 600, 28)
    ref = build_reference(train, np.full(600, 27), FEATURES)
    same = _week(ref, _tensors(rng, 300, 28), 2)
    assert same["max_psi"] is not None and same["max_psi"] < 0.05
    assert not same["alarm"] and same["level"] == "ok"
    # students who click a third as much and are active half as often
    rng2 = np.random.default_rng(1)
    low = _tensors(rng2, 300, 28, scale=0.3)
    low[:, :, 1] *= rng2.random(low.shape[:2]) < 0.5
    low[:, :, 0] *= low[:, :, 1]
    shifted = _week(ref, low, 2)
    assert shifted["max_psi"] > ALARM_PSI and shifted["alarm"]
    assert shifted["worst_feature"] in ("clicks_total", "active")


def test_calendar_features_are_reported_but_never_alarm() -> None:
    rng = np.random.default_rng(2)
    train = _tensors(rng, 400, 14)
    ref = build_reference(train, np.full(400, 13), FEATURES)
    x = _tensors(rng, 300, 14)
    x[:, :, 2] = 0.99  # a course whose deadlines are all far away
    row = _week(ref, x, 1)
    assert row["psi"]["deadline_days"] > ALARM_PSI
    assert not row["alarm"] and row["worst_feature"] != "deadline_days"


def test_small_weeks_and_weeks_beyond_training_get_no_verdict() -> None:
    rng = np.random.default_rng(3)
    train = _tensors(rng, 200, 14)
    ref = build_reference(train, np.full(200, 13), FEATURES)
    small = _week(ref, _tensors(rng, MIN_DAYS // 7 - 1, 14), 1)
    assert small["max_psi"] is None and small["level"] == "insufficient"
    counts = np.zeros((3, ref.max_bins))
    counts[:, 0] = 500
    beyond = course_week_psi(ref, 40, counts, 500)
    assert beyond["max_psi"] is None and not beyond["alarm"]


def test_withdrawn_days_are_left_out_of_the_reference() -> None:
    x = np.zeros((2, 14, 3), np.float32)
    x[1, 7:, 1] = 1.0  # only a withdrawn student is active in week 1
    ref = build_reference(x, np.asarray([13, 6]), FEATURES)
    assert ref.counts[1] == 7  # student 0's days only
    assert ref.shares[1][1, 0] == pytest.approx(1.0)  # all inactive


def test_reference_round_trips_and_counts_add_up() -> None:
    rng = np.random.default_rng(4)
    ref = build_reference(_tensors(rng, 100, 21), np.full(100, 20), FEATURES)
    back = DriftReference.from_dict(ref.to_dict())
    x = _tensors(rng, 10, 21).reshape(-1, 3)
    assert (back.bin_index(x) == ref.bin_index(x)).all()
    days = np.tile(np.arange(21), 10)
    inc = bin_increments(ref, x, days)
    assert sum(v for k, v in inc.items() if k.endswith(":n")) == len(x)
    for w, (n, counts) in parse_counts(inc, ref).items():
        assert (counts.sum(axis=1) == n).all(), w


def test_psi_formula() -> None:
    e = np.asarray([0.5, 0.5])
    assert psi(e, np.asarray([50, 50])) == pytest.approx(0.0)
    want = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi(e, np.asarray([80, 20])) == pytest.approx(want)
    assert np.isnan(psi(e, np.asarray([0, 0])))


def test_the_shipped_model_carries_its_reference() -> None:
    """The demo imports the shipped model; its drift and segment references come along."""
    import json

    from models.pretrained import SHIPPED
    from models.segments import Segments

    spec = json.loads((SHIPPED / "spec.json").read_text())["spec"]
    ref = DriftReference.load(SHIPPED)
    assert ref is not None and list(ref.features) == spec["day_features"]
    assert set(range(38)) <= set(ref.weeks) and min(ref.counts.values()) > 1000
    for w in ref.weeks:
        for f in range(len(ref.features)):
            assert abs(ref.shares[w][f].sum() - 1.0) < 1e-3
    seg = Segments.from_dict(json.loads((SHIPPED / "segments.json").read_text()))
    assert seg.k == 4 and all(r is not None for r in seg.outcome_rate)

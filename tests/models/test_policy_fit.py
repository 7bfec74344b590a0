"""Calibration per day band and the act-on threshold from out-of-time day risks."""

from __future__ import annotations

import numpy as np

from models.calibration import DayBandCalibrator, expected_calibration_error, fit_day_bands
from models.policy_fit import DayRisks, fit_policy, held, precision_by, simulate


def _synthetic(seed: int, n: int = 3000, t: int = 120) -> DayRisks:
    """Balanced-scale scores (like a class-weighted model's): over-confident, shifted up."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.35).astype(np.int64)
    signal = np.linspace(0.3, 2.0, t)[None, :] * (2 * label[:, None] - 1)
    z = signal + rng.normal(0, 1.0, (n, t)) + 1.0
    risk = (1 / (1 + np.exp(-z))).astype(np.float32)
    last = np.where(rng.random(n) < 0.2, rng.integers(10, t, n), t - 1)
    return DayRisks(risk, label, last, rng.integers(0, 3, n), f"s{seed}")


def test_calibration_fitted_out_of_time_lowers_ece_on_another_set() -> None:
    fit_set, test_set = _synthetic(0), _synthetic(1)
    cal = fit_day_bands(fit_set.risk, fit_set.label, fit_set.last_day)
    days = np.arange(test_set.risk.shape[1])[None, :]
    after = cal.apply(test_set.risk, days)
    for d in (14, 56, 100):
        m = test_set.last_day >= d
        raw = expected_calibration_error(test_set.label[m], test_set.risk[m, d])
        new = expected_calibration_error(test_set.label[m], after[m, d])
        assert new < raw and new < 0.05
        # monotone within a day: the ranking (and so ROC-AUC) is unchanged
        order = np.argsort(test_set.risk[m, d])
        assert np.all(np.diff(after[m, d][order]) >= -1e-6)
    again = DayBandCalibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.apply(test_set.risk, days), after)
    assert DayBandCalibrator().apply(np.float32(0.3), 5) == np.float32(0.3)  # identity


def test_simulated_policy_keeps_capacity_and_persistence() -> None:
    s = _synthetic(2)
    first = simulate(s.risk, s.course, s.last_day, 0.8, min_days=14, persist_days=3)
    h = held(s.risk, 3)
    alerted = np.flatnonzero(first >= 0)
    assert len(alerted) and (first[alerted] >= 14).all()
    assert (h[alerted, first[alerted]] >= 0.8).all()
    for c in np.unique(s.course):
        n_c = int((s.course == c).sum())
        _days, counts = np.unique(first[(s.course == c) & (first >= 0)], return_counts=True)
        assert counts.max() <= max(1, int(0.05 * n_c))


def test_fit_policy_reaches_the_target_on_its_own_data() -> None:
    sets = [_synthetic(3), _synthetic(4)]
    cal, th, evidence = fit_policy(sets, target_precision=0.8)
    assert 0.6 <= th["high"] <= 0.95 and th["medium"] <= th["high"]
    assert evidence["threshold_search"][-1]["precision_56"] >= 0.8
    risk = cal.apply(sets[0].risk, np.arange(sets[0].risk.shape[1])[None, :])
    first = simulate(risk, sets[0].course, sets[0].last_day, th["high"], min_days=14)
    prec, rec, _share = precision_by(first, sets[0].label, sets[0].last_day, 56)
    assert prec is not None and prec >= 0.7 and rec is not None and rec > 0


def _shifted_courses(seed: int, shifts: tuple[float, ...], n: int = 1500, t: int = 90) -> DayRisks:
    """Students ranked well within each course, but each course's scores carry a level of
    its own that says nothing about its outcome rate (a course level that moved)."""
    rng = np.random.default_rng(seed)
    course = rng.integers(0, len(shifts), n)
    label = (rng.random(n) < 0.4).astype(np.int64)
    signal = np.linspace(0.5, 2.0, t)[None, :] * (2 * label[:, None] - 1)
    z = signal + rng.normal(0, 1.0, (n, t)) + np.asarray(shifts)[course][:, None]
    return DayRisks((1 / (1 + np.exp(-z))).astype(np.float32), label, np.full(n, t - 1), course)


def test_cohort_relative_risk_undoes_a_course_level_and_keeps_ranks_in_a_course() -> None:
    from models.cohort import SHRINK_N, course_day_means
    from models.evaluate import roc_auc

    s = _shifted_courses(5, (-1.5, 0.0, 1.5))
    mean, count = course_day_means(s.risk, s.course, s.last_day)
    cal = fit_day_bands(
        s.risk, s.label, s.last_day, cohort_mean=mean, cohort_count=count, cohort_weight=1.0
    )
    assert cal.cohort and len(cal.cohort_ref) == len(cal.a)
    days = np.arange(s.risk.shape[1])[None, :]
    plain = cal.apply(s.risk, days)
    rel = cal.relative(plain, days, mean, count)
    d = 60
    # pooled over courses the relative risk ranks better: the course levels were noise
    assert roc_auc(s.label, rel[:, d]) > roc_auc(s.label, plain[:, d]) + 0.02
    for c in range(3):  # within a course nobody changes place
        m = s.course == c
        order = np.argsort(plain[m, d])
        assert np.all(np.diff(rel[m, d][order]) >= -1e-6)
    # a cohort of nobody (or NaN) leaves the risk as it was; a few students barely move it
    np.testing.assert_allclose(cal.relative(plain[:, d], d, np.nan, 0), plain[:, d], atol=1e-6)
    few = cal.relative(np.float32(0.7), d, 3.0, 3)
    many = cal.relative(np.float32(0.7), d, 3.0, 10 * SHRINK_N)
    assert many < few < 0.7
    again = DayBandCalibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.relative(plain, days, mean, count), rel)

"""Risk calibration per course-day band, fitted on presentations the model never trained on.

A risk model fitted on some presentations is over-confident on the next one (on OULAD the
shipped model's calibration error was 0.20 at day 14 on an unseen presentation), and its
early-day risks mean something else than its late-day risks. So the raw risk is mapped,
per band of course days, by Platt scaling on the logit (``sigmoid(a * logit(p) + b)``),
with ``a`` and ``b`` fitted on out-of-time predictions: a model trained on older
presentations scoring a newer one. The map is monotone within a band, so it never changes
who ranks above whom on one day; it makes "0.8" mean roughly "8 in 10 of these students
fail or withdraw", which is what a threshold a teacher trusts needs.

The stream and the offline evaluation call the same ``apply``, so they stay equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: first course day of each band (a band runs until the next one starts)
DEFAULT_BANDS: tuple[int, ...] = (0, 14, 28, 56, 84, 140)
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class DayBandCalibrator:
    """Platt scaling per band of course days; the identity when ``a`` is empty."""

    bands: tuple[int, ...] = DEFAULT_BANDS
    a: tuple[float, ...] = ()
    b: tuple[float, ...] = ()
    fitted_on: dict[str, Any] = field(default_factory=dict, compare=False)
    #: share of a course's deviation from ``cohort_ref`` taken off its students' act-on
    #: logit (``models.cohort``); 0 = off
    cohort_weight: float = 0.0
    cohort_ref: tuple[float, ...] = ()

    @property
    def identity(self) -> bool:
        return not self.a

    @property
    def cohort(self) -> bool:
        """Whether act-on decisions read risk against the course cohort (``relative``)."""
        return self.cohort_weight > 0 and bool(self.a) and bool(self.cohort_ref)

    def relative(
        self,
        risk: np.ndarray | float,
        day: np.ndarray | int,
        mean: np.ndarray | float,
        count: np.ndarray | float,
    ) -> np.ndarray:
        """Calibrated risk read against the cohort: ``mean`` is the course's mean raw logit
        that day over ``count`` students (``models.cohort``); the course's distance from the
        reference level is taken off the logit ``cohort_weight * n / (n + SHRINK_N)`` times,
        through the band's Platt slope."""
        from models.cohort import SHRINK_N

        p = np.asarray(risk, dtype=np.float64)
        if not self.cohort:
            return p.astype(np.float32)
        band = np.clip(self.band_of(np.broadcast_to(np.asarray(day), p.shape)), 0, len(self.a) - 1)
        a = np.asarray(self.a)[band]
        ref = np.asarray(self.cohort_ref)[np.minimum(band, len(self.cohort_ref) - 1)]
        mu = np.asarray(mean, dtype=np.float64)
        n = np.maximum(np.asarray(count, dtype=np.float64), 0.0)
        mu = np.where(np.isnan(mu) | (n <= 0), ref, mu)  # nobody counted: the reference
        w = self.cohort_weight * n / (n + SHRINK_N)
        z = _logit(p) - a * w * (mu - ref)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def band_of(self, day: np.ndarray | int) -> np.ndarray:
        return np.searchsorted(np.asarray(self.bands), np.asarray(day), side="right") - 1

    def apply(self, risk: np.ndarray | float, day: np.ndarray | int) -> np.ndarray:
        """Calibrated risk; ``day`` broadcasts against ``risk`` (the course day of each)."""
        p = np.asarray(risk, dtype=np.float64)
        if self.identity:
            return p.astype(np.float32)
        band = np.clip(self.band_of(np.broadcast_to(np.asarray(day), p.shape)), 0, len(self.a) - 1)
        a = np.asarray(self.a)[band]
        b = np.asarray(self.b)[band]
        z = a * _logit(p) + b
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "platt per day band",
            "bands": list(self.bands),
            "a": list(self.a),
            "b": list(self.b),
            "fitted_on": self.fitted_on,
            "cohort_weight": self.cohort_weight,
            "cohort_ref": list(self.cohort_ref),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DayBandCalibrator:
        if not data:
            return cls()
        return cls(
            bands=tuple(int(x) for x in data["bands"]),
            a=tuple(float(x) for x in data["a"]),
            b=tuple(float(x) for x in data["b"]),
            fitted_on=dict(data.get("fitted_on", {})),
            cohort_weight=float(data.get("cohort_weight", 0.0)),
            cohort_ref=tuple(float(x) for x in data.get("cohort_ref", ())),
        )


def fit_day_bands(
    risk: np.ndarray,
    label: np.ndarray,
    last_day: np.ndarray,
    bands: tuple[int, ...] = DEFAULT_BANDS,
    max_day: int | None = None,
    fitted_on: dict[str, Any] | None = None,
    cohort_mean: np.ndarray | None = None,
    cohort_weight: float = 0.0,
    cohort_count: np.ndarray | None = None,
) -> DayBandCalibrator:
    """Fit Platt scaling per band from day risks [N, T] of enrolments with known outcomes.

    Every (enrolment, day) pair with the enrolment still registered that day is one sample,
    as in the evaluation (the population at cut-off D is who is still registered at D).
    With ``cohort_mean`` and ``cohort_count`` [N, T] (``models.cohort.course_day_means``)
    and a weight, the
    reference level per band is the mean cohort logit of the band's samples and Platt is
    fitted on the cohort-relative logit, so ``relative`` is the calibrated act-on risk.
    """
    from sklearn.linear_model import LogisticRegression

    risk = np.asarray(risk)
    t = risk.shape[1]
    t = t if max_day is None else min(t, max_day + 1)
    edges = [*bands[1:], t]
    ref: list[float] = []
    if cohort_mean is not None and cohort_count is not None and cohort_weight > 0:
        mean = np.asarray(cohort_mean)
        for lo, hi in zip(bands, edges, strict=True):
            days = np.arange(lo, min(hi, t, mean.shape[1]))
            reg = last_day[:, None] >= days[None, :]
            vals = mean[:, days][reg]
            ref.append(float(vals.mean()) if vals.size else (ref[-1] if ref else 0.0))
    a_out: list[float] = []
    b_out: list[float] = []
    for lo, hi in zip(bands, edges, strict=True):
        hi = min(hi, t)
        if lo >= hi:
            a_out.append(1.0)
            b_out.append(0.0)
            continue
        days = np.arange(lo, hi, max(1, (hi - lo) // 14))  # ~14 days per band is plenty
        reg = last_day[:, None] >= days[None, :]
        x = _logit(risk[:, days][reg])
        if ref:  # fitted on the cohort-relative logit: ``relative`` is then calibrated
            from models.cohort import SHRINK_N

            k = len(a_out)
            n = np.asarray(cohort_count)[:, days][reg].astype(np.float64)
            w = cohort_weight * n / (n + SHRINK_N)
            x = x - w * (np.asarray(cohort_mean)[:, days][reg] - ref[k])
        x = x.reshape(-1, 1)
        y = np.broadcast_to(label[:, None], reg.shape)[reg]
        if len(np.unique(y)) < 2:
            a_out.append(1.0)
            b_out.append(0.0)
            continue
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(x, y)
        a_out.append(float(lr.coef_[0, 0]))
        b_out.append(float(lr.intercept_[0]))
    return DayBandCalibrator(
        tuple(bands),
        tuple(a_out),
        tuple(b_out),
        fitted_on or {},
        cohort_weight=cohort_weight if ref else 0.0,
        cohort_ref=tuple(ref),
    )


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE with equal-width bins: the share-weighted gap between mean risk and outcome rate."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    err = 0.0
    for k in range(n_bins):
        m = idx == k
        if m.any():
            err += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(err)

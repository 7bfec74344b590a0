"""Cohort-relative act-on risk: a student's risk read against their course cohort that day.

Why: how risky a course is as a whole moves between presentations (a new module team, an
easier first assignment), and a model fitted on older presentations carries the old course
levels. Measured on the temporal splits, trusting the model's course level only halfway
(partial pooling of the course's mean logit towards a constant) gave, at D14-D196, +0.017
to +0.045 ROC-AUC on split A (2013B -> 2013J) and -0.001 to +0.005 on split B
(2013B+2013J -> 2014B), where full centring cost up to 0.009 early on split B (table in
README). Within one course it changes nobody's rank; it moves whole courses.

The cohort mean of a course day is the mean raw model logit over the course's students
still enrolled that day. Both doors sum the same *quantized* logits (integers, so the
stream's Redis ``HINCRBY`` sums are exact and order-free, and a crash replays them
atomically with the student's state): the stream keeps ``ls{day}`` (sum) and ``ln{day}``
(count) in the course's policy book ``rs:cap:{site:course}:{partition}``; offline,
:func:`course_day_means` computes them from day risks [N, T].
"""

from __future__ import annotations

import numpy as np

#: logits are summed as integers of 1/SCALE (exact, order-free sums in Redis)
SCALE = 10_000
#: a cohort of n students moves the act-on risk n / (n + SHRINK_N) of the full weight: a
#: mean over few students (a small course, or one of many partitions) is mostly noise
SHRINK_N = 30
_CLIP = 30.0
_EPS = 1e-6


def quantized_logit(risk: np.ndarray | float) -> np.ndarray:
    """Raw model risk -> integer logit in units of 1/SCALE (clipped at +-30)."""
    p = np.clip(np.asarray(risk, dtype=np.float64), _EPS, 1 - _EPS)
    logit = np.clip(np.log(p / (1 - p)), -_CLIP, _CLIP)
    return np.rint(logit * SCALE).astype(np.int64)


def mean_of(total: int, count: int) -> float | None:
    """The cohort mean logit from the stream's book fields (None when nobody counted)."""
    return total / count / SCALE if count > 0 else None


def course_day_means(
    risk: np.ndarray, course: np.ndarray, last_day: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per enrolment and day [N, T]: its course's mean logit that day over the enrolments
    still registered (``last_day >= day``), as the stream sums them, and their count."""
    risk = np.asarray(risk)
    q = quantized_logit(risk)
    n, t = risk.shape
    present = np.asarray(last_day)[:, None] >= np.arange(t)[None, :]
    out = np.zeros((n, t), dtype=np.float64)
    counts = np.zeros((n, t), dtype=np.int64)
    for c in np.unique(course):
        rows = np.flatnonzero(course == c)
        m = present[rows]
        total = np.where(m, q[rows], 0).sum(axis=0)
        count = m.sum(axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1) / SCALE, 0.0)
        out[rows] = mean[None, :]
        counts[rows] = count[None, :]
    return out, counts

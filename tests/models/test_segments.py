"""Segments: k-means over four-week activity profiles, described in words."""

from __future__ import annotations

import numpy as np

from models.segments import Segments, fit_segments, profiles, segment_table

FEATURES = ("clicks_total", "active")


def _population(rng: np.random.Generator, n: int, t: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Half busy students who pass, half who stop after day 20 and fail."""
    x = np.zeros((n, t, 2), np.float32)
    label = np.zeros(n, np.int64)
    for i in range(n):
        quitter = i % 2 == 1
        for d in range(t):
            if quitter and d > 20:
                continue
            if rng.random() < (0.3 if quitter else 0.8):
                x[i, d] = (np.log1p(rng.poisson(5 if quitter else 30)), 1.0)
        label[i] = int(quitter)
    return x, label


def test_segments_separate_busy_from_silent_students_with_their_outcomes() -> None:
    rng = np.random.default_rng(0)
    x, y = _population(rng, 200)
    last = np.full(len(x), 59)
    seg = fit_segments(x, last, y, FEATURES, cutoffs=(27, 55), k=2)
    assert seg.outcome_rate[0] is not None and seg.outcome_rate[1] is not None
    assert seg.outcome_rate[0] < 0.2 < 0.8 < seg.outcome_rate[1]  # most active first
    assert "active" in seg.descriptions[0]
    assert "almost no activity" in seg.descriptions[1] or "fading" in seg.descriptions[1]
    back = Segments.from_dict(seg.to_dict())
    p = profiles(x, 55, FEATURES)
    assert (back.assign(p) == seg.assign(p)).all()
    table = segment_table(seg, x, last, y, FEATURES, (55,), risk=np.zeros((len(x), 60)))
    rows = table["55"]
    assert sum(r["n"] for r in rows) == len(x)
    assert rows[1]["outcome_rate"] > 0.9


def test_profiles_are_weekly_clicks_and_active_shares() -> None:
    x = np.zeros((1, 28, 2), np.float32)
    x[0, 21:28] = (np.log1p(2.0), 1.0)  # the last week: 2 clicks a day, every day
    p = profiles(x, 27, FEATURES)
    assert np.allclose(p[0, :4], [0, 0, 0, np.log1p(14.0)])
    assert np.allclose(p[0, 4:], [0, 0, 0, 1.0])

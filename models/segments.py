"""Student segments: k-means over the last four weeks' activity profile.

A profile is, for each of the ``weeks`` weeks ending on day D, log1p of the week's clicks
and the share of active days: 2 x weeks numbers computed from the same day vectors the
model sees (so the stream, which keeps the last 28 day vectors per student in ``win``, can
place a student with no extra state). Segments are fitted on training students pooled over
the evaluation cut-offs, numbered from the most to the least active, and described in words
with the outcome rate (Fail or Withdrawn) of their training members.

Fitting uses scikit-learn; assigning is plain numpy (the API uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SEGMENTS_FILE = "segments.json"
WEEKS = 4
CLICKS = "clicks_total"
ACTIVE = "active"


def profiles(
    x: np.ndarray, end_day: int, features: Sequence[str], weeks: int = WEEKS
) -> np.ndarray:
    """Profiles [N, 2 * weeks] of day tensors ``x`` [N, T, n_day] for the weeks ending on
    ``end_day`` (inclusive), oldest week first: log1p weekly clicks, then active-day shares."""
    ci, ai = list(features).index(CLICKS), list(features).index(ACTIVE)
    lo = end_day + 1 - 7 * weeks
    if lo < 0:
        raise ValueError(f"day {end_day} is before the end of week {weeks}: no full profile")
    win = x[:, lo : end_day + 1]
    return window_profiles(win, ci, ai, weeks)


def window_profiles(win: np.ndarray, ci: int, ai: int, weeks: int = WEEKS) -> np.ndarray:
    """Profiles of windows [N, 7 * weeks, n_day] (the last 7 x weeks days)."""
    n = win.shape[0]
    clicks = np.expm1(np.clip(win[:, :, ci], 0, None)).reshape(n, weeks, 7).sum(axis=2)
    active = (win[:, :, ai] > 0).reshape(n, weeks, 7).mean(axis=2)
    return np.concatenate([np.log1p(clicks), active], axis=1).astype(np.float64)


@dataclass
class Segments:
    """Fitted centroids (standardised space) with what each segment means."""

    weeks: int
    mean: np.ndarray
    scale: np.ndarray
    centroids: np.ndarray  # [k, 2 * weeks], standardised
    descriptions: list[str]
    outcome_rate: list[float | None]  # Fail/Withdrawn among training members
    share: list[float]
    features: tuple[str, str] = (CLICKS, ACTIVE)

    @property
    def k(self) -> int:
        return len(self.centroids)

    def assign(self, prof: np.ndarray) -> np.ndarray:
        z = (np.asarray(prof, dtype=np.float64) - self.mean) / self.scale
        d = ((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d, axis=1) if len(z) else np.zeros(0, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "k-means over weekly profiles (log1p weekly clicks, active-day share)",
            "weeks": self.weeks,
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "centroids": self.centroids.tolist(),
            "descriptions": self.descriptions,
            "outcome_rate": self.outcome_rate,
            "share": self.share,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Segments:
        feats = d.get("features", [CLICKS, ACTIVE])
        return cls(
            weeks=int(d["weeks"]),
            mean=np.asarray(d["mean"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            centroids=np.asarray(d["centroids"], dtype=np.float64),
            descriptions=[str(s) for s in d["descriptions"]],
            outcome_rate=[None if v is None else float(v) for v in d["outcome_rate"]],
            share=[float(v) for v in d["share"]],
            features=(str(feats[0]), str(feats[1])),
        )


def describe(centroid_raw: np.ndarray, overall_clicks: float, weeks: int) -> str:
    """Words for a profile in raw units: level against the population, then the trend."""
    clicks = np.expm1(centroid_raw[:weeks])
    active = centroid_raw[weeks:] * 7
    mean_clicks = float(clicks.mean())
    ratio = mean_clicks / max(overall_clicks, 1e-9)
    if mean_clicks < 1.0:
        level = "almost no activity"
    elif ratio >= 1.6:
        level = "very active"
    elif ratio >= 0.8:
        level = "steadily active"
    elif ratio >= 0.35:
        level = "light activity"
    else:
        level = "little activity"
    first, last = float(clicks[0]), float(clicks[-1])
    if mean_clicks < 1.0:
        trend = "silent for four weeks"
    elif last < 0.25 * max(first, 1.0):
        trend = "fading out"
    elif last < 0.7 * first:
        trend = "falling"
    elif last > 1.4 * max(first, 1.0):
        trend = "picking up"
    else:
        trend = "steady"
    return (
        f"{level}, {trend}: {float(active.mean()):.1f} active days a week, weekly clicks "
        f"{first:.0f} -> {last:.0f}"
    )


def fit_segments(
    x: np.ndarray,
    last_day: np.ndarray,
    label: np.ndarray,
    features: Sequence[str],
    cutoffs: Sequence[int],
    k: int = 4,
    weeks: int = WEEKS,
    seed: int = 0,
    max_rows: int = 50_000,
) -> Segments:
    """k-means on training profiles pooled over ``cutoffs`` (students registered at D)."""
    from sklearn.cluster import KMeans

    profs, labels = [], []
    for d in cutoffs:
        if d + 1 < 7 * weeks or d >= x.shape[1]:
            continue
        m = last_day >= d
        if m.any():
            profs.append(profiles(x[m], d, features, weeks))
            labels.append(label[m])
    if not profs:
        raise ValueError(f"no cut-off at or after day {7 * weeks - 1}: nothing to cluster")
    p = np.concatenate(profs)
    y = np.concatenate(labels)
    rng = np.random.default_rng(seed)
    if len(p) > max_rows:
        keep = rng.choice(len(p), max_rows, replace=False)
        p, y = p[keep], y[keep]
    mean = p.mean(axis=0)
    scale = np.where(p.std(axis=0) > 1e-9, p.std(axis=0), 1.0)
    z = (p - mean) / scale
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    cent = km.cluster_centers_
    raw = cent * scale + mean
    order = np.argsort(-raw[:, :weeks].mean(axis=1))  # most active first
    cent, raw = cent[order], raw[order]
    lab = np.argsort(order)[km.labels_]
    overall = float(np.expm1(p[:, :weeks]).mean())
    rates: list[float | None] = []
    share: list[float] = []
    for s in range(k):
        m = lab == s
        rates.append(round(float(y[m].mean()), 4) if m.any() else None)
        share.append(round(float(m.mean()), 4))
    return Segments(
        weeks=weeks,
        mean=mean,
        scale=scale,
        centroids=cent,
        descriptions=[describe(raw[s], overall, weeks) for s in range(k)],
        outcome_rate=rates,
        share=share,
    )


def segment_table(
    seg: Segments,
    x: np.ndarray,
    last_day: np.ndarray,
    label: np.ndarray,
    features: Sequence[str],
    cutoffs: Sequence[int],
    risk: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per cut-off: share, observed Fail/Withdrawn rate (and mean model risk) per segment
    of the students registered at D (the report's table for the hold-out)."""
    out: dict[str, Any] = {}
    for d in cutoffs:
        if d + 1 < 7 * seg.weeks or d >= x.shape[1]:
            continue
        m = last_day >= d
        if not m.any():
            continue
        a = seg.assign(profiles(x[m], d, features, seg.weeks))
        y = label[m]
        rows = []
        for s in range(seg.k):
            sm = a == s
            row: dict[str, Any] = {
                "segment": s,
                "n": int(sm.sum()),
                "share": round(float(sm.mean()), 4),
                "outcome_rate": round(float(y[sm].mean()), 4) if sm.any() else None,
            }
            if risk is not None:
                row["mean_risk"] = round(float(risk[m][sm, d].mean()), 4) if sm.any() else None
            rows.append(row)
        out[str(d)] = rows
    return out

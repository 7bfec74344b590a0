"""Feature drift: population stability index (PSI) of the day vectors against training.

The model sees one day vector per student and day. At training time we store, per day
feature, bin edges from the training distribution and the share of training day vectors in
each bin *per course week* (``drift_reference.json`` in the registry version). The stream
counts the day vectors it commits into the same bins per (course, week); PSI per feature is

    PSI = sum_b (a_b - e_b) * ln(a_b / e_b)

with ``e`` the training shares of that week (pooled over all training courses) and ``a`` the
live shares, both floored at ``EPS``. Conventional reading: < 0.1 stable, 0.1-0.25 moderate,
> 0.25 (``ALARM_PSI``) the inputs no longer look like what the model was trained on.

Bins: one bin for exactly 0 (most day features are zero on most days), then up to 9 bins at
the deciles of the non-zero training values. Weeks compare like with like: day 3 of a course
is compared with days 0-6 of the training courses, so calendar drift (students simply being
later in the term) does not count. ``deadline_days`` and ``day_index`` depend on the course's
calendar, not on the students: they are reported but never raise the alarm.

Only numpy here (the API imports this module and never loads torch).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_FILE = "drift_reference.json"
REFERENCE_VERSION = 1
EPS = 1e-4
ALARM_PSI = 0.25
WARN_PSI = 0.1
MIN_DAYS = 200  # day vectors a course-week needs before its PSI is reported
CALENDAR_FEATURES = frozenset({"deadline_days", "day_index"})
N_QUANTILE_BINS = 9


@dataclass(frozen=True)
class DriftReference:
    """Bins and per-week training shares for each day feature of one model version."""

    features: tuple[str, ...]
    edges: tuple[np.ndarray, ...]  # per feature: inner edges over the non-zero values
    shares: dict[int, np.ndarray]  # week -> [n_features, max_bins] training shares
    counts: dict[int, int]  # week -> training day vectors
    max_bins: int

    @property
    def weeks(self) -> list[int]:
        return sorted(self.shares)

    def n_bins(self, f: int) -> int:
        return 2 + len(self.edges[f])

    def bin_index(self, x: np.ndarray) -> np.ndarray:
        """Bin of every value of day vectors ``x`` [M, n_features] -> int16 [M, n_features]."""
        x = np.asarray(x)
        out = np.zeros(x.shape, dtype=np.int16)  # <= 11 bins; millions of rows in training
        for f, e in enumerate(self.edges):
            v = x[:, f]
            b = 1 + np.searchsorted(e, v, side="left")
            out[:, f] = np.where(v > 0, b, 0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REFERENCE_VERSION,
            "statistic": "PSI",
            "alarm_psi": ALARM_PSI,
            "features": list(self.features),
            "edges": [[float(v) for v in e] for e in self.edges],
            "weeks": {
                str(w): {
                    "n": int(self.counts[w]),
                    "shares": [
                        [round(float(s), 6) for s in self.shares[w][f, : self.n_bins(f)]]
                        for f in range(len(self.features))
                    ],
                }
                for w in self.weeks
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReference:
        features = tuple(str(f) for f in data["features"])
        edges = tuple(np.asarray(e, dtype=np.float64) for e in data["edges"])
        max_bins = max(2 + len(e) for e in edges) if edges else 2
        shares: dict[int, np.ndarray] = {}
        counts: dict[int, int] = {}
        for w, item in data["weeks"].items():
            arr = np.zeros((len(features), max_bins))
            for f, row in enumerate(item["shares"]):
                arr[f, : len(row)] = row
            shares[int(w)] = arr
            counts[int(w)] = int(item["n"])
        return cls(features, edges, shares, counts, max_bins)

    @classmethod
    def load(cls, version_dir: Path) -> DriftReference | None:
        path = Path(version_dir) / REFERENCE_FILE
        if not path.is_file():
            return None
        return cls.from_dict(json.loads(path.read_text()))


def build_reference(
    x: np.ndarray, last_day: np.ndarray, features: tuple[str, ...]
) -> DriftReference:
    """Reference from training day tensors ``x`` [N, T, n_day]; a student's days after
    ``last_day`` (withdrawn) are left out, as the stream commits no days for them."""
    n, t_len, n_day = x.shape
    if n_day != len(features):
        raise ValueError(f"x has {n_day} day features but {len(features)} names were given")
    days = np.arange(t_len)
    registered = days[None, :] <= np.asarray(last_day)[:, None]
    flat = x[registered]  # [M, n_day]
    day_of = np.broadcast_to(days[None, :], (n, t_len))[registered]
    edges = []
    qs = np.linspace(0.0, 1.0, N_QUANTILE_BINS + 1)[1:-1]
    for f in range(n_day):
        nz = flat[:, f][flat[:, f] > 0]
        edges.append(np.unique(np.quantile(nz, qs)) if nz.size else np.zeros(0))
    max_bins = max(2 + len(e) for e in edges)
    ref = DriftReference(features, tuple(edges), {}, {}, max_bins)
    bins = ref.bin_index(flat)
    week = day_of // 7
    for w in np.unique(week):
        rows = bins[week == w]
        arr = np.zeros((n_day, max_bins))
        for f in range(n_day):
            arr[f] = np.bincount(rows[:, f], minlength=max_bins)[:max_bins] / len(rows)
        ref.shares[int(w)] = arr
        ref.counts[int(w)] = len(rows)
    return ref


def psi(expected: np.ndarray, actual_counts: np.ndarray) -> float:
    """PSI of live ``actual_counts`` against training shares ``expected`` (same bins)."""
    total = float(np.sum(actual_counts))
    if total <= 0:
        return float("nan")
    a = np.maximum(np.asarray(actual_counts, dtype=np.float64) / total, EPS)
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def level_of(value: float | None, alarm: float = ALARM_PSI) -> str:
    if value is None or not np.isfinite(value):
        return "unknown"
    return "alarm" if value > alarm else "warn" if value > WARN_PSI else "ok"


def course_week_psi(
    ref: DriftReference, week: int, counts: np.ndarray, n: int, alarm: float = ALARM_PSI
) -> dict[str, Any]:
    """PSI per feature of one course-week from its bin ``counts`` [n_features, max_bins].

    ``max_psi`` and ``alarm`` cover the behaviour features only (not the calendar ones);
    a week with fewer than ``MIN_DAYS`` day vectors, or one the training courses never
    reached, is reported without a verdict.
    """
    ref_week = week if week in ref.shares else None
    per: dict[str, float | None] = {}
    if ref_week is not None and n >= MIN_DAYS:
        for f, name in enumerate(ref.features):
            nb = ref.n_bins(f)
            per[name] = round(psi(ref.shares[ref_week][f, :nb], counts[f, :nb]), 4)
    behaviour = [v for k, v in per.items() if k not in CALENDAR_FEATURES and v is not None]
    top = max(behaviour) if behaviour else None
    worst = max(
        (k for k in per if k not in CALENDAR_FEATURES and per[k] is not None),
        key=lambda k: per[k] or 0.0,
        default=None,
    )
    return {
        "week": week,
        "days": int(n),
        "psi": per,
        "max_psi": top,
        "worst_feature": worst,
        "level": level_of(top, alarm) if per else "insufficient",
        "alarm": bool(top is not None and top > alarm),
    }


def parse_counts(raw: dict[str, int], ref: DriftReference) -> dict[int, tuple[int, np.ndarray]]:
    """The stream's hash fields (``{week}:n`` and ``{week}:{feature}:{bin}``) -> per week
    (day vectors, counts [n_features, max_bins]). Unknown fields are ignored."""
    out: dict[int, tuple[int, np.ndarray]] = {}
    n_f = len(ref.features)

    def week_entry(w: int) -> tuple[int, np.ndarray]:
        if w not in out:
            out[w] = (0, np.zeros((n_f, ref.max_bins)))
        return out[w]

    for key, value in raw.items():
        parts = key.split(":")
        try:
            w = int(parts[0])
            if len(parts) == 2 and parts[1] == "n":
                _, arr = week_entry(w)
                out[w] = (int(value), arr)
            elif len(parts) == 3:
                f, b = int(parts[1]), int(parts[2])
                if 0 <= f < n_f and 0 <= b < ref.max_bins:
                    week_entry(w)[1][f, b] += int(value)
        except ValueError:
            continue
    return out


def bin_increments(ref: DriftReference, vectors: np.ndarray, days: np.ndarray) -> dict[str, int]:
    """Hash increments for one course's committed day vectors: ``{week}:n`` and
    ``{week}:{feature}:{bin}`` -> count (what the stream adds to ``rs:drift:...``)."""
    if len(vectors) == 0:
        return {}
    bins = ref.bin_index(vectors)
    weeks = np.asarray(days, dtype=np.int64) // 7
    out: dict[str, int] = {}
    for w in np.unique(weeks):
        rows = bins[weeks == w]
        out[f"{int(w)}:n"] = len(rows)
        for f in range(bins.shape[1]):
            cnt = np.bincount(rows[:, f], minlength=ref.max_bins)
            for b in np.flatnonzero(cnt):
                out[f"{int(w)}:{f}:{int(b)}"] = int(cnt[b])
    return out

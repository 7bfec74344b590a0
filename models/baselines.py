"""The LSTM's rivals: logistic regression and LightGBM on aggregate features up to day D.

The aggregates are computed from the same day tensor the LSTM reads (the featurizer's
vectorised door), so every model sees the same information; only the model differs.
One model is fitted per cut-off day, the usual (and strongest) way to run these baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

WINDOWS: tuple[int, ...] = (7, 28)  # recent windows (days) besides the whole course so far


def aggregate_features(
    days: np.ndarray,
    static: np.ndarray,
    cutoff: int,
    active: np.ndarray | None = None,
) -> np.ndarray:
    """One row per enrolment: aggregates of days 0..cutoff plus the static features.

    ``days`` is [N, T, n_day]; ``active`` [N, T] marks days with any activity (default: any
    non-zero day feature). Per day feature: mean over 0..D, mean over each recent window, max,
    mean over the days it was non-zero (average grade over graded days, clicks per active
    day) and days since it was last non-zero; then the share of active days, the days since
    the last active day and the active days in the last week. Nothing after day ``cutoff`` is
    read. These are the summaries the LSTM computes as running aggregates
    (``models.aggregates``), so both sides see the same information.
    """
    if days.ndim != 3:
        raise ValueError(f"days must be [N, T, n_day], got shape {days.shape}")
    n, t, _ = days.shape
    d = min(cutoff, t - 1)
    upto = days[:, : d + 1, :].astype(np.float32)
    src = upto if active is None else np.asarray(active)[:, : d + 1, None]
    act: np.ndarray = np.asarray((np.abs(src) > 0).any(axis=2))
    parts = [upto.mean(axis=1)]
    for w in WINDOWS:
        parts.append(upto[:, max(0, d + 1 - w) :, :].mean(axis=1))
    parts.append(upto.max(axis=1))
    nz = upto != 0
    parts.append(upto.sum(axis=1) / np.maximum(nz.sum(axis=1), 1))
    span = np.arange(d + 1)
    last_nz = np.where(nz, span[None, :, None], -1).max(axis=1)
    parts.append((d - last_nz).astype(np.float32))  # never non-zero: d + 1
    last = np.where(act, span[None, :], -1).max(axis=1)
    since_last = np.where(last >= 0, d - last, d + 1).astype(np.float32)
    parts.append(
        np.stack(
            [
                act.mean(axis=1),
                since_last,
                act[:, max(0, d - 6) :].sum(axis=1),
            ],
            axis=1,
        ).astype(np.float32)
    )
    if static.shape[0] != n:
        raise ValueError(f"static has {static.shape[0]} rows, days has {n}")
    parts.append(static.astype(np.float32).reshape(n, -1))
    return np.concatenate(parts, axis=1)


def aggregate_names(day_names: Sequence[str], static_names: Sequence[str]) -> list[str]:
    """Column names of :func:`aggregate_features` (for importances in the report)."""
    names = [f"mean_{f}" for f in day_names]
    for w in WINDOWS:
        names += [f"mean{w}d_{f}" for f in day_names]
    names += [f"max_{f}" for f in day_names]
    names += [f"meanactive_{f}" for f in day_names]
    names += [f"since_{f}" for f in day_names]
    names += ["active_share", "days_since_active", "active_days_7d"]
    names += list(static_names)
    return names


class Baseline(Protocol):
    """Learn/predict shape shared by both baselines: rows in, P(Fail or Withdrawn) out."""

    name: str

    def fit(self, x: np.ndarray, y: np.ndarray) -> Baseline: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


class LogisticBaseline:
    """Standardised logistic regression: the linear reference point."""

    name = "logreg"

    def __init__(self, c: float = 1.0, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self._model = make_pipeline(
            StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed)
        )

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticBaseline:
        _check_xy(x, y)
        self._model.fit(np.nan_to_num(x), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.predict_proba(np.nan_to_num(x))[:, 1], dtype=np.float64)


class LightGbmBaseline:
    """Gradient-boosted trees: the strong tabular baseline the LSTM has to beat."""

    name = "lightgbm"

    def __init__(self, n_estimators: int = 300, seed: int = 0, n_jobs: int = 2) -> None:
        import lightgbm as lgb

        self._model = lgb.LGBMClassifier(
            n_estimators=n_estimators,
            learning_rate=0.05,
            num_leaves=31,
            min_child_samples=40,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            reg_lambda=1.0,
            random_state=seed,
            n_jobs=n_jobs,
            verbose=-1,
        )

    def fit(self, x: np.ndarray, y: np.ndarray) -> LightGbmBaseline:
        _check_xy(x, y)
        self._model.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        proba: np.ndarray = np.asarray(self._model.predict_proba(x))
        return proba[:, 1].astype(np.float64)

    def importances(self) -> np.ndarray:
        return np.asarray(self._model.feature_importances_, dtype=np.float64)


def make_baseline(name: str, seed: int = 0) -> Baseline:
    """Build a baseline by name ('logreg' or 'lightgbm')."""
    if name == "logreg":
        return LogisticBaseline(seed=seed)
    if name == "lightgbm":
        return LightGbmBaseline(seed=seed)
    raise ValueError(f"unknown baseline {name!r}: use 'logreg' or 'lightgbm'")


def _check_xy(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x must be [n, k] with one label per row; got {x.shape} and {len(y)}")
    if np.unique(y).size < 2:
        raise ValueError(
            "training labels have a single class: widen the training data "
            "(more presentations or an earlier cut-off)"
        )

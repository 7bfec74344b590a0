"""Metrics over plain arrays: discrimination, calibration, fairness, thresholds.

Everything here takes numpy arrays (labels, predicted risks, group labels) so the same code
scores the LSTM, the baselines and anything else, and tests can check it on hand-made cases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, r2_score, roc_auc_score

CUTOFFS: tuple[int, ...] = (14, 28, 56, 84, 112, 140, 168, 196)
FAIRNESS_ATTRIBUTES: tuple[str, ...] = ("gender", "age_band", "disability", "imd_band")


def _nan_to_none(x: float) -> float | None:
    """JSON has no NaN: an undefined metric (one class only) is written as null."""
    return None if x is None or math.isnan(x) else float(x)


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC, NaN when only one class is present (undefined, not 0.5)."""
    y = np.asarray(y)
    if y.size == 0 or np.unique(y).size < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def paired_bootstrap_auc(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int = 500, seed: int = 0
) -> tuple[float, float]:
    """95 % interval of AUC(a) - AUC(b) over enrolments resampled with replacement (both
    models scored on the same resample, so the interval is of the paired difference)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        yy = y[idx]
        if np.unique(yy).size < 2:
            continue
        diffs.append(roc_auc_score(yy, a[idx]) - roc_auc_score(yy, b[idx]))
    if not diffs:
        return float("nan"), float("nan")
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def stacked(a: CutoffPredictions, b: CutoffPredictions) -> CutoffPredictions:
    """Equal-weight average of two models' logits on the same enrolments (the stack)."""
    if len(a.y) != len(b.y) or not np.array_equal(a.y, b.y):
        raise ValueError("stacking needs both models scored on the same enrolments")
    eps = 1e-6
    la = np.log(np.clip(a.risk, eps, 1 - eps) / (1 - np.clip(a.risk, eps, 1 - eps)))
    lb = np.log(np.clip(b.risk, eps, 1 - eps) / (1 - np.clip(b.risk, eps, 1 - eps)))
    risk = 1.0 / (1.0 + np.exp(-(la + lb) / 2))
    return CutoffPredictions(y=a.y, risk=risk, module=a.module, attributes=a.attributes)


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve); NaN without positives."""
    y = np.asarray(y)
    if y.size == 0 or y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, p))


def confusion_rates(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall (TPR), FPR, F1 and accuracy of ``risk >= threshold``.

    Undefined ratios (no predicted positives, no positives) are NaN, never silently 0.
    """
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= threshold
    tp = float(np.sum(pred & y))
    fp = float(np.sum(pred & ~y))
    fn = float(np.sum(~pred & y))
    tn = float(np.sum(~pred & ~y))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    fpr = fp / (fp + tn) if fp + tn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    n = tp + fp + fn + tn
    accuracy = (tp + tn) / n if n else float("nan")
    return {
        "precision": precision,
        "recall": recall,
        "tpr": recall,
        "fpr": fpr,
        "f1": f1,
        "accuracy": accuracy,
        "flagged": tp + fp,
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE and R² for the expected-score head (ignores NaN targets: students with no mark)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    ok = ~(np.isnan(y_true) | np.isnan(y_pred))
    if ok.sum() < 2:
        return {"mse": float("nan"), "r2": float("nan"), "n": int(ok.sum())}
    mse = float(np.mean((y_true[ok] - y_pred[ok]) ** 2))
    return {"mse": mse, "r2": float(r2_score(y_true[ok], y_pred[ok])), "n": int(ok.sum())}


@dataclass(frozen=True)
class Reliability:
    """Equal-width bins of predicted risk: mean prediction vs observed rate, and the ECE."""

    ece: float
    bin_edges: list[float]
    mean_pred: list[float | None]
    observed: list[float | None]
    counts: list[int]


def calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> Reliability:
    """Expected calibration error: sum over bins of |observed - predicted| weighted by size.

    Bins are [0, 1/n), ..., [(n-1)/n, 1]; the last bin includes 1.0.
    """
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    mean_pred: list[float | None] = []
    observed: list[float | None] = []
    counts: list[int] = []
    for b in range(n_bins):
        m = idx == b
        c = int(m.sum())
        counts.append(c)
        if c == 0:
            mean_pred.append(None)
            observed.append(None)
            continue
        mp, ob = float(p[m].mean()), float(y[m].mean())
        mean_pred.append(mp)
        observed.append(ob)
        ece += c / max(len(p), 1) * abs(ob - mp)
    return Reliability(float(ece), [float(e) for e in edges], mean_pred, observed, counts)


def threshold_for_precision(y: np.ndarray, p: np.ndarray, target: float) -> float | None:
    """Lowest threshold whose alerts reach ``target`` precision (so recall is the highest).

    Returns None when no threshold reaches it. Thresholds are the distinct predicted values;
    a student is flagged when risk >= threshold.
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    if y.size == 0:
        return None
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    flagged = np.arange(1, len(ps) + 1)
    # Only cut between distinct values: the last index of each run of equal scores.
    last_of_run = np.r_[ps[1:] != ps[:-1], True]
    prec = tp / flagged
    ok = last_of_run & (prec >= target)
    if not ok.any():
        return None
    i = int(np.flatnonzero(ok)[-1])
    return float(ps[i])


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Everything reported per model and cut-off for the Fail-or-Withdrawn task."""
    y = np.asarray(y)
    rates = confusion_rates(y, p, threshold)
    rel = calibration(y, p)
    out: dict[str, Any] = {
        "n": int(y.size),
        "positives": int(np.sum(y)),
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "threshold": float(threshold),
        "ece": rel.ece,
    }
    out.update({k: rates[k] for k in ("precision", "recall", "f1", "accuracy", "fpr")})
    return out


def group_metrics(
    y: np.ndarray, p: np.ndarray, groups: Sequence[object] | np.ndarray, threshold: float
) -> dict[str, dict[str, float | int]]:
    """AUC, TPR and FPR per group value (missing values form the group 'unknown')."""
    y = np.asarray(y)
    p = np.asarray(p)
    keys = np.array(["unknown" if g is None or g != g else str(g) for g in groups], dtype=object)
    out: dict[str, dict[str, float | int]] = {}
    for g in sorted(set(keys.tolist())):
        m = keys == g
        r = confusion_rates(y[m], p[m], threshold)
        out[g] = {
            "n": int(m.sum()),
            "positives": int(y[m].sum()),
            "roc_auc": roc_auc(y[m], p[m]),
            "tpr": r["tpr"],
            "fpr": r["fpr"],
        }
    return out


@dataclass
class CutoffPredictions:
    """One model's predictions for every enrolment still registered at one cut-off day."""

    y: np.ndarray  # 1 = Fail or Withdrawn
    risk: np.ndarray  # predicted P(Fail or Withdrawn)
    module: np.ndarray  # module code per row (per-module table)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # fairness groups
    score_true: np.ndarray | None = None  # observed score target (NaN = none)
    score_pred: np.ndarray | None = None  # the score head's prediction


def choose_threshold(y: np.ndarray, p: np.ndarray, target_precision: float) -> float:
    """The operating point used for F1/precision/recall: target precision, else the base rate.

    Falling back to the positive rate keeps a meaningful threshold when the target is out of
    reach (a weak model at an early cut-off).
    """
    t = threshold_for_precision(y, p, target_precision)
    if t is not None:
        return t
    return float(np.quantile(p, 1.0 - float(np.mean(y)))) if len(p) else 0.5


def evaluate_cutoff(pred: CutoffPredictions, threshold: float) -> dict[str, Any]:
    """All metrics of one model at one cut-off: overall, score head, fairness, per module."""
    res = binary_metrics(pred.y, pred.risk, threshold)
    if pred.score_true is not None and pred.score_pred is not None:
        res["score"] = regression_metrics(pred.score_true, pred.score_pred)
    res["calibration"] = calibration(pred.y, pred.risk).__dict__
    res["fairness"] = {
        attr: group_metrics(pred.y, pred.risk, vals, threshold)
        for attr, vals in pred.attributes.items()
    }
    res["per_module"] = {
        str(mod): {
            "n": int(m.sum()),
            "positives": int(pred.y[m].sum()),
            "roc_auc": roc_auc(pred.y[m], pred.risk[m]),
            "pr_auc": pr_auc(pred.y[m], pred.risk[m]),
        }
        for mod in sorted(set(pred.module.tolist()))
        for m in [pred.module == mod]
    }
    return res


def evaluate_models(
    predictions: Mapping[str, Mapping[int, CutoffPredictions]],
    target_precision: float,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Score every model at every cut-off, side by side.

    ``thresholds`` fixes one operating threshold per model (e.g. the registry's alert
    threshold); otherwise each cut-off uses the threshold that reaches ``target_precision``.
    """
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for name, by_d in predictions.items():
        out[name] = {}
        for d, pred in sorted(by_d.items()):
            if thresholds and name in thresholds:
                t = thresholds[name]
            else:
                t = choose_threshold(pred.y, pred.risk, target_precision)
            out[name][d] = evaluate_cutoff(pred, t)
    return out


def jsonable(obj: Any) -> Any:
    """Turn numpy scalars/arrays and NaN into plain JSON values (NaN -> null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _nan_to_none(float(obj))
    return obj

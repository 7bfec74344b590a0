"""What drives risk overall: permutation importance and partial dependence, per cut-off day.

Permutation importance of a feature at cut-off D: among the students registered at D, give
each student another student's values of that feature (the whole day sequence for a day
feature, the value for a static feature), re-run the model over days 0..D, and report

- ``auc_drop``: ROC-AUC with the true values minus ROC-AUC with the shuffled ones (how much
  ranking quality rests on the feature), and
- ``mean_abs_change``: the change of each student's risk, averaged over students (how much
  the predictions move), the attribution the issue asks for "averaged over students".

One shuffle per feature and cut-off (seeded); with a few hundred students the noise on the
AUC drop is about +-0.005, so only larger drops mean much.

Partial dependence of a day feature: set it to one value on every day up to D for every
student and average the risk at D; a grid of training quantiles. It shows the model's
average response, including off-manifold combinations (e.g. clicks with ``active`` = 0), so
read it together with the importance, not as a causal effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from models.features import FeatureSpec

CALENDAR = frozenset({"deadline_days", "day_index"})


#: the registry version's calibration: (raw risk, course day) -> the risk teachers see
Calibrate = Callable[[np.ndarray, np.ndarray], np.ndarray]


@torch.no_grad()
def _risk_at(
    model: Any,
    device: torch.device,
    x: np.ndarray,
    static: np.ndarray,
    calibrate: Calibrate | None = None,
) -> np.ndarray:
    """Risk after the last day of ``x`` [N, D+1, n_day] (calibrated when given)."""
    out = []
    for i in range(0, len(x), 512):
        xb = torch.as_tensor(x[i : i + 512], device=device)
        sb = torch.as_tensor(static[i : i + 512], device=device)
        out.append(model(xb, sb).risk[:, -1].float().cpu().numpy())
    r = np.concatenate(out) if out else np.zeros(0)
    if calibrate is not None and r.size:
        r = np.asarray(calibrate(r, np.full(r.shape, x.shape[1] - 1)), dtype=np.float64)
    return r


@torch.no_grad()
def risk_all_days(
    model: Any,
    device: torch.device,
    x: np.ndarray,
    static: np.ndarray,
    calibrate: Calibrate | None = None,
) -> np.ndarray:
    """Risk after every day [N, T] (calibrated when given)."""
    out = []
    for i in range(0, len(x), 512):
        xb = torch.as_tensor(x[i : i + 512], device=device)
        sb = torch.as_tensor(static[i : i + 512], device=device)
        out.append(model(xb, sb).risk.float().cpu().numpy())
    r = np.concatenate(out) if out else np.zeros((0, x.shape[1]))
    if calibrate is not None and r.size:
        r = np.asarray(calibrate(r, np.arange(r.shape[1])[None, :]), dtype=np.float64)
    return r


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(y) == 0 or np.unique(y).size < 2:
        return None
    return float(roc_auc_score(y, p))


def permutation_importance(
    model: Any,
    device: torch.device,
    spec: FeatureSpec,
    x: np.ndarray,
    static: np.ndarray,
    label: np.ndarray,
    last_day: np.ndarray,
    cutoffs: Sequence[int],
    seed: int = 0,
    calibrate: Calibrate | None = None,
) -> dict[str, Any]:
    """Per cut-off: base AUC and, per feature, ``auc_drop`` and ``mean_abs_change``."""
    rng = np.random.default_rng(seed)
    names = [*spec.day_features, *spec.static_features]
    out: dict[str, Any] = {}
    for d in cutoffs:
        if d >= x.shape[1]:
            continue
        m = np.flatnonzero(last_day >= d)
        if len(m) < 10:
            continue
        xs = np.ascontiguousarray(x[m, : d + 1])
        ss = static[m]
        y = label[m]
        base = _risk_at(model, device, xs, ss, calibrate)
        base_auc = _auc(y, base)
        per: dict[str, dict[str, float | None]] = {}
        for j, name in enumerate(names):
            perm = rng.permutation(len(m))
            if j < spec.n_day:
                xp = xs.copy()
                xp[:, :, j] = xs[perm, :, j]
                r = _risk_at(model, device, xp, ss, calibrate)
            else:
                sp = ss.copy()
                sp[:, j - spec.n_day] = ss[perm, j - spec.n_day]
                r = _risk_at(model, device, xs, sp, calibrate)
            auc = _auc(y, r)
            per[name] = {
                "auc_drop": None if base_auc is None or auc is None else round(base_auc - auc, 4),
                "mean_abs_change": round(float(np.mean(np.abs(r - base))), 4),
            }
        out[str(d)] = {"n": len(m), "roc_auc": base_auc, "features": per}
    return out


def top_features(importance: dict[str, Any], day_features: Sequence[str], n: int = 3) -> list[str]:
    """Behaviour day features with the largest ``mean_abs_change`` summed over the
    cut-offs (partial dependence is drawn for day features)."""
    score: dict[str, float] = {}
    for item in importance.values():
        for name, v in item["features"].items():
            if name not in day_features or name in CALENDAR:
                continue
            score[name] = score.get(name, 0.0) + float(v["mean_abs_change"])
    return [k for k, _ in sorted(score.items(), key=lambda kv: -kv[1])[:n]]


def pdp_grid(values: np.ndarray, points: int = 6) -> list[float]:
    """0 plus quantiles of the non-zero training values (binary features: 0 and 1)."""
    nz = values[values > 0]
    if nz.size == 0:
        return [0.0]
    qs = np.unique(np.round(np.quantile(nz, np.linspace(0.05, 0.95, points - 1)), 4))
    return [0.0, *[float(q) for q in qs]]


def partial_dependence(
    model: Any,
    device: torch.device,
    spec: FeatureSpec,
    x: np.ndarray,
    static: np.ndarray,
    last_day: np.ndarray,
    cutoffs: Sequence[int],
    features: Sequence[str],
    reference_x: np.ndarray,
    calibrate: Calibrate | None = None,
) -> dict[str, Any]:
    """Per feature: grid values and, per cut-off, the mean risk at D of the students
    registered at D when the feature is set to the value on every day (one forward pass
    per grid value covers every cut-off). The grid comes from ``reference_x`` (training)."""
    out: dict[str, Any] = {}
    for name in features:
        j = list(spec.day_features).index(name)
        grid = pdp_grid(np.asarray(reference_x[:, :, j]).ravel())
        curves: dict[str, list[float]] = {str(d): [] for d in cutoffs if d < x.shape[1]}
        for v in grid:
            xp = x.copy()
            xp[:, :, j] = v
            r = risk_all_days(model, device, xp, static, calibrate)
            for d in cutoffs:
                if d >= x.shape[1]:
                    continue
                m = last_day >= d
                curves[str(d)].append(round(float(r[m, d].mean()), 4) if m.any() else float("nan"))
        out[name] = {"grid": grid, "mean_risk": curves}
    return out

"""Fit what the alert policy needs on presentations the model never trained on.

``riskstream calibrate`` takes day risks from models scoring *later* presentations than they
were fitted on (out of time), fits the risk calibration per day band on them
(``models.calibration``), and picks the act-on threshold by simulating the alert policy on
the calibrated risks: the lowest threshold whose alerts reach the target precision among
students alerted by day 56. The simulation mirrors ``stream_app.alerting`` (persistence as
the minimum of the last days' risks, first day, per-course daily and weekly capacity filled
highest risk first, one alert per student) on end-of-day risks, which equal the stream's to
1e-5; the exact figures come from replaying through the worker (``riskstream
evaluate-alerts``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.calibration import DayBandCalibrator, expected_calibration_error, fit_day_bands

#: the act-on threshold never goes below this (a teacher acts on "more likely than not")
MIN_ACT = 0.6
WATCH = 0.5
POLICY_DEFAULTS: dict[str, Any] = {
    "min_days": 14,
    "cooldown_days": 28,
    "persist_days": 3,
    "day_cap": 0.05,
    "week_cap": 0.10,
}


@dataclass
class DayRisks:
    """Day risks [N, T] of enrolments with outcomes: one presentation scored by one model."""

    risk: np.ndarray
    label: np.ndarray
    last_day: np.ndarray
    course: np.ndarray
    name: str = ""
    #: cohort-relative held risk [N, T] (``models.cohort``); None = act on ``held`` itself
    rel_held: np.ndarray | None = None


def held(risk: np.ndarray, persist_days: int) -> np.ndarray:
    """Minimum of the last ``persist_days`` end-of-day risks (0 before that many days)."""
    out = risk.copy()
    for j in range(1, persist_days):
        shifted = np.concatenate([np.zeros((risk.shape[0], j), risk.dtype), risk[:, :-j]], axis=1)
        out = np.minimum(out, shifted)
    return out


def simulate(
    risk: np.ndarray,
    course: np.ndarray,
    last_day: np.ndarray,
    act: float,
    min_days: int = 14,
    persist_days: int = 3,
    day_cap: float = 0.05,
    week_cap: float = 0.10,
    end_day: int = 200,
    rel_held: np.ndarray | None = None,
    watch: float = 0.0,
) -> np.ndarray:
    """First alert day per enrolment (-1 = never) under the policy; see the module doc.
    With ``rel_held`` (cohort-relative held risk) a candidate holds ``watch`` on its own
    risk and ``act`` relative to its cohort, and is ranked by the relative risk (as the
    stream's ``_policy`` and ``_release``)."""
    n, t = risk.shape
    h = held(risk, persist_days)
    gate = h >= watch
    if rel_held is not None:
        h = np.where(gate, rel_held, 0.0)
    first = np.full(n, -1)
    for c in np.unique(course):
        idx = np.flatnonzero(course == c)
        per_day: dict[int, int] = {}
        for d in range(min_days, min(end_day, t)):
            reg = idx[last_day[idx] >= d]
            if not len(reg):
                continue
            day_max = max(1, math.floor(day_cap * len(reg)))
            week_max = max(1, math.floor(week_cap * len(reg)))
            week = sum(v for k, v in per_day.items() if d - 7 < k <= d)
            room = min(day_max, week_max - week)
            cand = reg[(first[reg] < 0) & (h[reg, d] >= act)]
            if room <= 0 or not len(cand):
                continue
            top = cand[np.argsort(-h[cand, d], kind="stable")][:room]
            first[top] = d
            per_day[d] = len(top)
    return first


def precision_by(
    first: np.ndarray, label: np.ndarray, last_day: np.ndarray, d: int
) -> tuple[float | None, float | None, float]:
    """(precision, recall, share alerted) among enrolments registered at ``d``."""
    m = last_day >= d
    al = m & (first >= 0) & (first <= d)
    pos = int(label[m].sum())
    prec = float(label[al].mean()) if al.any() else None
    rec = float(label[al].sum() / pos) if pos else None
    return prec, rec, float(al.sum() / max(m.sum(), 1))


def choose_act_threshold(
    sets: list[DayRisks],
    target_precision: float,
    grid: np.ndarray | None = None,
    **policy: Any,
) -> tuple[float, list[dict[str, Any]]]:
    """Lowest threshold whose pooled day-56 precision reaches the target (>= MIN_ACT)."""
    grid = np.round(np.arange(MIN_ACT, 0.96, 0.01), 2) if grid is None else grid
    rows = []
    chosen = float(grid[-1])
    for act in grid:
        tp = al = pos = 0
        for s in sets:
            first = simulate(
                s.risk, s.course, s.last_day, float(act), rel_held=s.rel_held, **policy
            )
            m = s.last_day >= 56
            a = m & (first >= 0) & (first <= 56)
            tp += int(s.label[a].sum())
            al += int(a.sum())
            pos += int(s.label[m].sum())
        prec = tp / al if al else 0.0
        rows.append({"act": float(act), "precision_56": prec, "recall_56": tp / max(pos, 1)})
        if prec >= target_precision:
            chosen = float(act)
            break
    return chosen, rows


def fit_policy(
    sets: list[DayRisks],
    target_precision: float = 0.8,
    cohort_weight: float = 0.0,
) -> tuple[DayBandCalibrator, dict[str, Any], dict[str, Any]]:
    """Calibration + thresholds from out-of-time day risks; returns (calibrator, thresholds
    dict for ``Thresholds.from_dict``, evidence for the registry). ``cohort_weight`` > 0
    makes act-on decisions cohort-relative (``models.cohort``)."""
    from models.cohort import course_day_means

    risk = np.concatenate([s.risk[:, :200] for s in sets])
    label = np.concatenate([s.label for s in sets])
    last = np.concatenate([s.last_day for s in sets])
    means = [course_day_means(s.risk[:, :200], s.course, s.last_day) for s in sets]
    cal = fit_day_bands(
        risk,
        label,
        last,
        fitted_on={"sets": [s.name for s in sets]},
        cohort_mean=np.concatenate([m for m, _ in means]) if cohort_weight > 0 else None,
        cohort_weight=cohort_weight,
        cohort_count=np.concatenate([n for _, n in means]) if cohort_weight > 0 else None,
    )
    persist = int(POLICY_DEFAULTS["persist_days"])
    cal_sets = []
    for s, (mu, count) in zip(sets, means, strict=True):
        days = np.arange(min(200, s.risk.shape[1]))[None, :]
        plain = cal.apply(s.risk[:, :200], days)
        rel = cal.relative(held(plain, persist), days, mu, count) if cal.cohort else None
        cal_sets.append(DayRisks(plain, s.label, s.last_day, s.course, s.name, rel))
    sim: dict[str, Any] = {
        k: POLICY_DEFAULTS[k] for k in ("min_days", "persist_days", "day_cap", "week_cap")
    }
    if cal.cohort:
        sim["watch"] = WATCH
    act, search = choose_act_threshold(cal_sets, target_precision, **sim)
    watch = min(WATCH, act)
    thresholds = {
        "high": act,
        "medium": watch,
        "rearm": max(0.0, watch - 0.1),
        **POLICY_DEFAULTS,
    }
    ece = {}
    for d in (14, 28, 56, 84, 112, 140, 168, 196):
        ys, ps = [], []
        for s in cal_sets:
            if d < s.risk.shape[1]:
                m = s.last_day >= d
                ys.append(s.label[m])
                ps.append(s.risk[m, d])  # the plain calibrated risk (what is shown)
        if ys:
            ece[str(d)] = expected_calibration_error(np.concatenate(ys), np.concatenate(ps))
    evidence = {
        "target_precision_by_56": target_precision,
        "fitted_on": [s.name for s in sets],
        "threshold_search": search,
        "ece_in_sample": ece,
    }
    return cal, thresholds, evidence


def day_risks(
    registry_root: Any,
    version: str | None,
    data_dir: Any,
    presentation: str,
    cache_dir: Any = None,
) -> DayRisks:
    """Raw (uncalibrated) day risks of a registry model on one presentation."""
    import hashlib
    from pathlib import Path

    import torch

    from models.oulad import Oulad
    from models.registry import Registry
    from models.train import TrainConfig, load_tensors, predict_days

    reg = Registry(Path(registry_root))
    loaded = reg.load(version)
    cfg = TrainConfig(spec=loaded.spec, cache_dir=None if cache_dir is None else Path(cache_dir))
    oulad = Oulad(Path(data_dir))
    name = f"{loaded.version}@{presentation}"
    path = None
    if cfg.cache_dir is not None:  # keyed by the weights and the data, never stale
        weights = (reg.root / loaded.version / "model.pt").read_bytes()
        key = hashlib.sha256(weights + presentation.encode() + oulad.content_hash().encode())
        path = cfg.cache_dir / f"risks-{key.hexdigest()[:16]}.npz"
        if path.is_file():
            with np.load(path) as z:
                return DayRisks(z["risk"], z["label"], z["last_day"], z["course"], name)
    t = load_tensors(oulad, cfg, (presentation,), None)
    pred = predict_days(loaded.model, t, torch.device("cpu"))
    out = DayRisks(pred["risk"], t.label, t.last_day, t.course_id, name)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, risk=out.risk, label=out.label, last_day=out.last_day, course=out.course)
    return out


def calibrate_version(
    registry_root: Any,
    version: str | None,
    sets: list[DayRisks],
    target_precision: float = 0.8,
    make_current: bool = True,
    cohort_weight: float = 0.0,
) -> tuple[str, dict[str, Any]]:
    """Publish ``version``'s weights again with calibration and policy thresholds fitted on
    ``sets`` (out-of-time day risks); the registry keeps the evidence in metrics.json."""
    import json
    from pathlib import Path

    from models.registry import Registry, Thresholds

    reg = Registry(Path(registry_root))
    src = reg.root / (version or reg.current_version() or "")
    if not (src / "model.pt").is_file():
        from models.registry import RegistryError

        raise RegistryError(f"no model version {version or 'current'} in {reg.root}")
    cal, th, evidence = fit_policy(sets, target_precision, cohort_weight)
    thresholds = Thresholds.from_dict(th)
    metrics = (
        json.loads((src / "metrics.json").read_text()) if (src / "metrics.json").is_file() else {}
    )
    metrics["policy_calibration"] = evidence
    new = reg.import_version(
        src,
        make_current=make_current,
        replace_json={
            "thresholds.json": thresholds.to_dict(),
            "calibration.json": cal.to_dict(),
            "metrics.json": metrics,
        },
    )
    return new, {"thresholds": thresholds.to_dict(), **evidence}

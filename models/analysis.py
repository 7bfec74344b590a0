"""The evaluation report's analysis sections: what drives risk, segments, input drift.

``analysis_sections`` is called by ``run_evaluation`` on its temporal split (training
presentations vs the hold-out presentation) and returns plain dicts for the report:

- ``importance``: permutation importance per cut-off (``models.importance``),
- ``partial_dependence``: mean risk at D against the main day features,
- ``segments``: k-means segments fitted on training students, described in words, with
  the hold-out's share, Fail/Withdrawn rate and mean risk per segment and cut-off,
- ``drift``: PSI of the hold-out presentation's day vectors against the training reference
  per course and week (what the stream would have reported, see ``models.drift``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.dataset import DayTensors
from models.drift import ALARM_PSI, bin_increments, build_reference, course_week_psi, parse_counts
from models.importance import (
    partial_dependence,
    permutation_importance,
    risk_all_days,
    top_features,
)
from models.live_calibration import StudentRecord, course_calibration
from models.segments import fit_segments, segment_table

#: cut-offs of the permutation importance (cost grows with D x features x students)
IMPORTANCE_CUTOFFS: tuple[int, ...] = (14, 28, 56, 112, 196)


def analysis_sections(
    loaded: Any,
    train: DayTensors | None,
    val: DayTensors,
    val_static: np.ndarray,
    cutoffs: Sequence[int],
    seed: int = 0,
    max_students: int = 600,
    importance_cutoffs: Sequence[int] = IMPORTANCE_CUTOFFS,
) -> dict[str, Any]:
    """Importance, partial dependence, segments and drift for the report (see module doc).

    Risks are the calibrated ones teachers see (``loaded.calibrate``, as the stream applies
    it). Permutation importance re-runs the model once per feature and cut-off, so it runs on
    a sample of ``max_students`` hold-out students and at ``importance_cutoffs`` (those of
    the report's cut-offs); partial dependence, segments and drift use every cut-off. Without
    training presentations (``train`` None) segments are fitted on the hold-out itself and
    there is no drift section."""
    spec = loaded.spec
    cal = getattr(loaded, "calibrate", None)
    rng = np.random.default_rng(seed)
    idx = np.arange(len(val))
    if len(idx) > max_students:  # permutation passes scale with students x features
        idx = np.sort(rng.choice(idx, max_students, replace=False))
    x, st = val.x[idx], val_static[idx]
    imp_days = [d for d in cutoffs if d in importance_cutoffs] or list(cutoffs)
    imp = permutation_importance(
        loaded.model,
        loaded.device,
        spec,
        x,
        st,
        val.label[idx],
        val.last_day[idx],
        imp_days,
        seed,
        calibrate=cal,
    )
    main = top_features(imp, spec.day_features, n=3)
    ref = train if train is not None else val
    pdp = partial_dependence(
        loaded.model,
        loaded.device,
        spec,
        x,
        st,
        val.last_day[idx],
        cutoffs,
        main,
        ref.x[: min(len(ref), 2000)],
        calibrate=cal,
    )
    seg = fit_segments(ref.x, ref.last_day, ref.label, spec.day_features, cutoffs, seed=seed)
    risk = risk_all_days(loaded.model, loaded.device, val.x, val_static, calibrate=cal)
    seg_rows = segment_table(
        seg, val.x, val.last_day, val.label, spec.day_features, cutoffs, risk=risk
    )
    out = {
        "importance": imp,
        "partial_dependence": pdp,
        "segments": {
            **seg.to_dict(),
            "fitted_on": "training presentations" if train is not None else "hold-out",
            "holdout": seg_rows,
        },
        "live_calibration": holdout_calibration(val, risk, loaded.thresholds, cutoffs),
    }
    if train is not None:
        out["drift"] = holdout_drift(train, val, spec.day_features)
    return out


def holdout_calibration(
    val: DayTensors, risk: np.ndarray, thresholds: Any, cutoffs: Sequence[int]
) -> dict[str, Any]:
    """Per hold-out course, what the API's live calibration reports once the final results
    are in: the same daily risks the stream keeps in ``traj`` (stepping equals the forward
    pass), withdrawals at their last registered day, every outcome known."""
    out: dict[str, Any] = {
        "thresholds": {"high": thresholds.high, "medium": thresholds.medium},
        "courses": {},
    }
    for c in np.unique(val.course_id):
        idx = np.flatnonzero((val.course_id == c) & (val.last_day >= 0))
        recs = []
        for i in idx:
            last = int(val.last_day[i])
            withdrawn = last < int(val.length[i]) - 1
            recs.append(
                StudentRecord(
                    risk[i, : last + 1].tolist(),
                    0,
                    int(val.label[i]),
                    last if withdrawn else None,
                )
            )
        doc = course_calibration(
            recs, thresholds.high, thresholds.medium, days=cutoffs, target_precision=0.8
        )
        out["courses"][str(int(c))] = {
            str(b["day"]): {
                k: b[k] for k in ("scored", "ece", "precision_high", "flagged_high", "verdict")
            }
            for b in doc["bands"]
        }
    return out


def holdout_drift(train: DayTensors, val: DayTensors, features: Sequence[str]) -> dict[str, Any]:
    """PSI per hold-out course and week against the training reference, the same counts
    and statistic the stream keeps (``rs:drift:...``)."""
    ref = build_reference(train.x, train.last_day, tuple(features))
    days = np.arange(val.x.shape[1])
    out: dict[str, Any] = {"alarm_psi": ALARM_PSI, "courses": {}}
    for c in np.unique(val.course_id):
        m = val.course_id == c
        reg = days[None, :] <= val.last_day[m][:, None]
        vec = val.x[m][reg]
        day_of = np.broadcast_to(days[None, :], reg.shape)[reg]
        weeks = parse_counts(bin_increments(ref, vec, day_of), ref)
        rows = [course_week_psi(ref, w, cnt, n) for w, (n, cnt) in sorted(weeks.items())]
        rows = [r for r in rows if r["max_psi"] is not None]
        worst = [r["worst_feature"] for r in rows if r["alarm"]]
        out["courses"][str(int(c))] = {
            "weeks": rows,
            "alarm_features": sorted(set(worst), key=worst.count, reverse=True)[:3],
            "alarm_weeks": [r["week"] for r in rows if r["alarm"]],
            "median_max_psi": round(float(np.median([r["max_psi"] for r in rows])), 4)
            if rows
            else None,
        }
    return out

"""Live calibration: the stream's predicted risk against the outcomes that arrived.

For a course and a band day D (the evaluation's cut-off days), the population is what the
offline evaluation uses: every student the stream scored at the end of day D (their daily
risk history ``traj`` covers D) who had not withdrawn before D. Among them, those whose
outcome is known (``rs:outcome:...``: withdrawals during the term, final results when the
presentation ends) give the reliability curve, ECE and the precision of the act-on level
(``high``) with the same definitions as ``models.evaluate``.

During the term only withdrawals are known, so ``precision_high`` over known outcomes is
optimistic; ``precision_high_lower_bound`` (known positives / everyone flagged) is a safe
floor, and ``complete`` says whether every scored student's outcome is in. A verdict (ECE
above the alarm, precision below target) is only given with ``min_known`` outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.evaluate import calibration

BAND_DAYS: tuple[int, ...] = (14, 28, 56, 84, 112, 140, 168, 196)
ECE_ALARM = 0.1
MIN_KNOWN = 200


@dataclass(frozen=True)
class StudentRecord:
    """One student of a course: daily risks from ``start`` day, and the outcome if known."""

    traj: Sequence[float | None]
    start: int
    label: int | None = None  # 1 = Fail or Withdrawn
    withdraw_day: int | None = None

    def risk_at(self, day: int) -> float | None:
        i = day - self.start
        if 0 <= i < len(self.traj):
            v = self.traj[i]
            return None if v is None or not np.isfinite(v) else float(v)
        return None


def band_calibration(
    students: Sequence[StudentRecord],
    day: int,
    high: float,
    medium: float,
    n_bins: int = 10,
    ece_alarm: float = ECE_ALARM,
    min_known: int = MIN_KNOWN,
    target_precision: float | None = None,
) -> dict[str, Any]:
    """Reliability, ECE and precision of ``high`` (and ``medium``) at one band day."""
    risks, labels, known = [], [], []
    for s in students:
        if s.withdraw_day is not None and s.withdraw_day < day:
            continue  # left before D: not in D's population
        r = s.risk_at(day)
        if r is None:
            continue
        risks.append(r)
        labels.append(-1 if s.label is None else int(s.label))
        known.append(s.label is not None)
    p = np.asarray(risks, dtype=float)
    y = np.asarray(labels, dtype=int)
    k = np.asarray(known, dtype=bool)
    out: dict[str, Any] = {
        "day": day,
        "scored": len(p),
        "known": int(k.sum()),
        "positives": int((y[k] == 1).sum()) if len(p) else 0,
        "complete": bool(len(p) > 0 and k.all()),
    }
    if k.any():
        rel = calibration(y[k], p[k], n_bins)
        out.update(
            ece=round(rel.ece, 4),
            reliability={
                "mean_pred": rel.mean_pred,
                "observed": rel.observed,
                "counts": rel.counts,
            },
        )
    else:
        out.update(ece=None, reliability=None)
    for name, thr in (("high", high), ("medium", medium)):
        flagged = p >= thr
        fk = flagged & k
        out[f"flagged_{name}"] = int(flagged.sum())
        out[f"precision_{name}"] = round(float((y[fk] == 1).mean()), 4) if fk.any() else None
        out[f"precision_{name}_lower_bound"] = (
            round(float((y[flagged] == 1).sum() / flagged.sum()), 4) if flagged.any() else None
        )
    enough = out["known"] >= min_known
    alarms = []
    if enough and out["ece"] is not None and out["ece"] > ece_alarm:
        alarms.append(f"ECE {out['ece']:.3f} > {ece_alarm}")
    if (
        enough
        and target_precision is not None
        and out["precision_high"] is not None
        and out["precision_high"] < target_precision - 0.1
    ):
        alarms.append(
            f"precision of high {out['precision_high']:.2f} < {target_precision - 0.1:.2f}"
        )
    out["verdict"] = "insufficient" if not enough else ("alarm" if alarms else "ok")
    out["alarms"] = alarms
    return out


def course_calibration(
    students: Sequence[StudentRecord],
    high: float,
    medium: float,
    days: Sequence[int] = BAND_DAYS,
    **kw: Any,
) -> dict[str, Any]:
    """Every band day of one course; ``alarm`` if any band's verdict is an alarm."""
    bands = [band_calibration(students, d, high, medium, **kw) for d in days]
    bands = [b for b in bands if b["scored"]]
    return {
        "thresholds": {"high": high, "medium": medium},
        "outcomes_known": sum(1 for s in students if s.label is not None),
        "bands": bands,
        "alarm": any(b["verdict"] == "alarm" for b in bands),
    }

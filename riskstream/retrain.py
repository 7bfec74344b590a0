"""When to retrain, and the loop that does it: train -> evaluate on the newest presentation
-> promote to ``current`` only when at least as good, keeping the evidence in the registry.

The rule (``decide``), documented in README "Monitoring":

- **drift**: a course whose largest behaviour-feature PSI is above the alarm (0.25) in its
  last two weeks with enough data (one noisy week does not count);
- **calibration**: a course band day with enough known outcomes (200) whose ECE is above
  0.1 or whose precision of ``high`` is more than 0.1 below the target;
- **new data**: a finished presentation in the data the current version was neither
  trained nor validated on.

Any one of them makes a retrain due. ``run_retrain`` trains on every finished presentation
but the newest, validates on the newest (time-aware: the model never sees the presentation
it is judged on), scores the candidate and the current version on that newest presentation
with the same students, and sets ``current`` only if the candidate's mean ROC-AUC over the
cut-off days is at least the current one's minus ``tolerance`` (default 0). The decision,
both scores and the trigger go to ``promotion.json`` in the candidate's version folder and
one line of ``retrain-log.jsonl`` in the registry. Workers pick up a new ``current`` by
hot reload and re-warm each student on their next event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RETRAIN_LOG = "retrain-log.jsonl"
PROMOTION_FILE = "promotion.json"


@dataclass
class RetrainSignals:
    drifting_courses: list[int] = field(default_factory=list)
    miscalibrated_courses: list[int] = field(default_factory=list)
    new_presentations: list[str] | None = None  # None: not checked (no data folder)


@dataclass
class RetrainPolicy:
    min_drifting_courses: int = 1
    min_miscalibrated_courses: int = 1
    on_new_data: bool = True


@dataclass
class Decision:
    due: bool
    reasons: list[str]
    signals: RetrainSignals

    def as_dict(self) -> dict[str, Any]:
        return {"due": self.due, "reasons": self.reasons, "signals": asdict(self.signals)}


def decide(signals: RetrainSignals, policy: RetrainPolicy | None = None) -> Decision:
    """The retraining rule (see the module docstring)."""
    p = policy or RetrainPolicy()
    reasons = []
    if len(signals.drifting_courses) >= p.min_drifting_courses:
        reasons.append(
            f"input drift (PSI above the alarm two weeks running) in courses "
            f"{signals.drifting_courses}"
        )
    if len(signals.miscalibrated_courses) >= p.min_miscalibrated_courses:
        reasons.append(f"live calibration alarm in courses {signals.miscalibrated_courses}")
    if p.on_new_data and signals.new_presentations:
        reasons.append(f"new finished presentations {signals.new_presentations}")
    return Decision(bool(reasons), reasons, signals)


def finished_presentations(data_dir: Path) -> list[str]:
    """Presentations in the data folder, oldest first (OULAD codes sort in time order)."""
    from models.oulad import Oulad

    return sorted({c.presentation for c in Oulad(data_dir).courses})


def seen_presentations(registry_root: Path, version: str | None) -> set[str]:
    from models.registry import Registry

    reg = Registry(registry_root)
    v = version or reg.current_version()
    if v is None:
        return set()
    data = reg.read_extra(v, "data.json") or {}
    out: set[str] = set()
    for part in ("train", "validation"):
        out |= set((data.get(part) or {}).get("presentations") or [])
    return out


def new_presentations(data_dir: Path, registry_root: Path) -> list[str]:
    seen = seen_presentations(registry_root, None)
    return [p for p in finished_presentations(data_dir) if p not in seen]


async def live_signals(redis_url: str, site: str, registry_root: Path) -> RetrainSignals:
    """Drift and calibration verdicts of every course of ``site`` (what the API shows)."""
    from models.registry import Registry
    from riskstream.api.monitoring import Monitoring
    from stream_app.state import connect

    r = connect(redis_url)
    try:
        doc = await Monitoring(r, site, Registry(registry_root)).overview(force=True)
    finally:
        await r.aclose()
    s = doc["retrain"]["signals"]
    return RetrainSignals(s["drifting_courses"], s["miscalibrated_courses"], None)


def should_promote(
    candidate: dict[str, Any], current: dict[str, Any] | None, tolerance: float = 0.0
) -> bool:
    """At least as good: the candidate's mean ROC-AUC on the newest presentation is not
    below the current version's minus ``tolerance``; no scorable current -> promote."""
    if current is None or current.get("mean_roc_auc") is None:
        return True
    cand = candidate.get("mean_roc_auc")
    if cand is None or cand != cand:  # NaN: the candidate could not be judged
        return False
    return bool(cand >= float(current["mean_roc_auc"]) - tolerance)


def _score(model: Any, t: Any, device: Any) -> dict[str, Any]:
    import numpy as np

    from models.evaluate import calibration
    from models.train import cutoff_metrics, predict_days

    pred = predict_days(model, t, device)
    m = cutoff_metrics(t, pred)
    eces = []
    for d in m["per_cutoff"]:
        mask = t.registered_at(int(d))
        if mask.any():
            eces.append(calibration(t.label[mask], pred["risk"][mask, int(d)]).ece)
    return {
        "mean_roc_auc": m["mean_roc_auc"],
        "mean_ece": float(np.mean(eces)) if eces else None,
        "per_cutoff_auc": {d: v["roc_auc"] for d, v in m["per_cutoff"].items()},
    }


def run_retrain(
    data_dir: Path,
    registry_root: Path,
    cfg: Any,  # models.train.TrainConfig
    signals: RetrainSignals,
    *,
    force: bool = False,
    tolerance: float = 0.0,
    policy: RetrainPolicy | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The whole loop; returns what happened (also written to the registry)."""
    import torch

    from models.oulad import Oulad
    from models.registry import Registry, RegistryError
    from models.train import load_tensors, train

    say = progress or (lambda _m: None)
    decision = decide(signals, policy)
    out: dict[str, Any] = {"decision": decision.as_dict(), "forced": force}
    if not decision.due and not force:
        say("retraining not due: " + (", ".join(decision.reasons) or "no trigger"))
        return {**out, "trained": False, "promoted": False}
    pres = finished_presentations(data_dir)
    if len(pres) < 2:
        raise RegistryError(f"need two finished presentations to retrain, found {pres}")
    newest, train_on = pres[-1], tuple(pres[:-1])
    reg = Registry(registry_root)
    current = reg.current_version()
    say(f"training on {', '.join(train_on)}, judging on {newest} (current: {current})")
    cfg = replace(
        cfg, train_presentations=train_on, valid_presentations=(newest,), make_current=False
    )
    res = train(
        data_dir, registry_root, cfg, lambda k, i: say(i["text"]) if k == "message" else None
    )
    cand = reg.load(res.version, device="cpu")
    device = torch.device("cpu")
    eval_n = None if cfg.max_students is None else max(200, cfg.max_students // 3)
    t = load_tensors(Oulad(data_dir), replace(cfg, spec=cand.spec), (newest,), eval_n)
    t = t.subset((t.last_day >= 0).nonzero()[0])
    cand_score = _score(cand.model, t, device)
    cur_score: dict[str, Any] | None = None
    note = ""
    if current is not None:
        try:
            cur = reg.load(current, device="cpu")
            cur_score = _score(cur.model, t, device)
        except RegistryError as exc:  # e.g. trained on another feature spec
            note = f"current {current} cannot be scored here ({exc}); the candidate wins"
    promote = should_promote(cand_score, cur_score, tolerance)
    evidence = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "candidate": res.version,
        "current_before": current,
        "judged_on": {"presentation": newest, "enrolments": len(t)},
        "trained_on": list(train_on),
        "candidate_score": cand_score,
        "current_score": cur_score,
        "tolerance": tolerance,
        "rule": "promote when candidate mean ROC-AUC >= current - tolerance",
        "promoted": promote,
        "note": note,
        **out,
    }
    reg.attach(res.version, PROMOTION_FILE, evidence)
    if promote:
        reg.set_current(res.version)
    with (Path(registry_root) / RETRAIN_LOG).open("a") as fh:
        fh.write(json.dumps(evidence, default=str) + "\n")
    say(
        f"{res.version}: mean AUC {cand_score['mean_roc_auc']:.4f} vs current "
        + (f"{cur_score['mean_roc_auc']:.4f}" if cur_score else "none")
        + (" -> promoted to current" if promote else " -> kept out of service")
    )
    return {**evidence, "trained": True}

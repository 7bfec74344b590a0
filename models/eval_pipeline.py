"""The evaluation run behind ``riskstream evaluate``: registry model vs baselines on OULAD.

Temporal validation: baselines train on the earlier presentations (2013B, 2013J), every model
is scored on the latest one (2014B). At each cut-off day D every enrolment still registered
at D is scored from its days 0..D only: the LSTM's risk after stepping days 0..D, the
baselines from aggregates of the same day tensor up to D (plus the same static features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts import StudentProfile
from models.analysis import analysis_sections
from models.baselines import aggregate_features, make_baseline
from models.dataset import DayTensors, build_day_tensors
from models.evaluate import (
    CUTOFFS,
    CutoffPredictions,
    evaluate_models,
    jsonable,
    paired_bootstrap_auc,
    roc_auc,
    stacked,
    threshold_for_precision,
)
from models.explain import explain, reference_day, sentence
from models.features import Featurizer
from models.oulad import Oulad
from models.registry import LoadedModel, Registry, Thresholds
from models.report import build_report, write_report
from models.train import TrainConfig, load_tensors

Progress = Callable[[str], None]


@dataclass
class EvalConfig:
    train_presentations: tuple[str, ...] = ("2013B", "2013J")
    validation: str = "2014B"
    cutoffs: tuple[int, ...] = CUTOFFS
    target_precision: float = 0.8
    baselines: tuple[str, ...] = ("logreg", "lightgbm")
    protected_baselines: tuple[str, ...] = ("lightgbm",)  # variants that see protected attrs
    max_students: int | None = None  # sample (tests, quick looks); None = everyone
    seed: int = 0
    device: str = "cpu"
    explain_examples: int = 5
    compare_versions: tuple[str, ...] = ()  # more registry versions side by side
    protected_version: str | None = None  # a registry model trained with protected attrs
    cache_dir: Path | None = None  # share the trainer's cached day tensors
    extra_meta: dict[str, Any] = field(default_factory=dict)
    analysis: bool = True  # report sections from models/analysis.py


@dataclass
class _Split:
    tensors: DayTensors
    static_protected: np.ndarray
    module: np.ndarray
    attributes: dict[str, np.ndarray]


def _split(
    oulad: Oulad,
    featurizer: Featurizer,
    presentations: tuple[str, ...],
    cfg: EvalConfig,
    profiles: dict[tuple[int, int], StudentProfile],
) -> _Split:
    n_days = max(cfg.cutoffs) + 1
    if cfg.cache_dir is not None:
        # the trainer's cached tensors (same key: spec, presentations, sample, seed)
        tc = TrainConfig(spec=featurizer.spec, cache_dir=cfg.cache_dir, seed=cfg.seed)
        t = load_tensors(oulad, tc, presentations, cfg.max_students)
        if t.n_days > n_days:
            t = replace(t, x=t.x[:, :n_days], active=t.active[:, :n_days])
    else:
        t = build_day_tensors(
            oulad,
            featurizer,
            presentations=presentations,
            n_days=n_days,
            max_students=cfg.max_students,
            seed=cfg.seed,
        )
    rows = [profiles.get((int(c), int(u))) for c, u in zip(t.course_id, t.user_id, strict=True)]
    prot = Featurizer(featurizer.spec.with_protected()).static_matrix(rows)
    modules = {c.course_id: c.module for c in oulad.courses}

    def attr(name: str) -> np.ndarray:
        vals = []
        for p in rows:
            v = None if p is None else getattr(p, name)
            if isinstance(v, bool):
                v = "Y" if v else "N"
            vals.append("unknown" if v is None else str(v))
        return np.asarray(vals, dtype=object)

    return _Split(
        tensors=t,
        static_protected=prot,
        module=np.asarray([modules.get(int(c), "?") for c in t.course_id], dtype=object),
        attributes={a: attr(a) for a in ("gender", "age_band", "disability", "imd_band")},
    )


@torch.no_grad()
def sequence_outputs(
    loaded: LoadedModel, x: np.ndarray, static: np.ndarray, batch: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Risk and score after every day [N, T] (forward == stepping, tested by models)."""
    risk, score = [], []
    for i in range(0, len(x), batch):
        xb = torch.as_tensor(x[i : i + batch], device=loaded.device)
        sb = torch.as_tensor(static[i : i + batch], device=loaded.device)
        out = loaded.model(xb, sb)
        risk.append(out.risk.float().cpu().numpy())
        score.append(out.score.float().cpu().numpy())
    if not risk:
        return np.zeros((0, x.shape[1])), np.zeros((0, x.shape[1]))
    return np.concatenate(risk), np.concatenate(score)


def _static_for(loaded: LoadedModel, split: _Split) -> np.ndarray:
    base = split.tensors.static
    if loaded.spec.n_static == base.shape[1]:
        return base
    if loaded.spec.n_static == split.static_protected.shape[1]:
        return split.static_protected
    raise ValueError(
        f"model {loaded.version} expects {loaded.spec.n_static} static features; evaluation "
        f"built {base.shape[1]} (default spec) or {split.static_protected.shape[1]} (protected)"
    )


def _registry_predictions(
    name: str,
    loaded: LoadedModel,
    val: _Split,
    cutoffs: Sequence[int],
    relative: bool = False,
) -> dict[int, CutoffPredictions]:
    """Per cut-off predictions of a registry model; ``relative``: the act-on risk read
    against the course cohort (``models.cohort``), as the stream admits alerts."""
    t = val.tensors
    raw, score = sequence_outputs(loaded, t.x, _static_for(loaded, val))
    # the risk teachers see: through the version's calibration, as the stream applies it
    days = np.arange(raw.shape[1])[None, :]
    risk = loaded.calibrate(raw, days) if raw.size else raw
    if relative and raw.size:
        from models.cohort import course_day_means

        risk = loaded.relative(risk, days, *course_day_means(raw, t.course_id, t.last_day))
    out: dict[int, CutoffPredictions] = {}
    for d in cutoffs:
        m = t.registered_at(d)
        out[d] = CutoffPredictions(
            y=t.label[m],
            risk=risk[m, d],
            module=val.module[m],
            attributes={k: v[m] for k, v in val.attributes.items()},
            score_true=t.final_score[m],
            score_pred=score[m, d],
        )
    return out


def _baseline_predictions(
    name: str,
    train: _Split,
    val: _Split,
    cfg: EvalConfig,
    protected: bool,
    progress: Progress,
) -> dict[int, CutoffPredictions]:
    tr, va = train.tensors, val.tensors
    s_tr = train.static_protected if protected else tr.static
    s_va = val.static_protected if protected else va.static
    out: dict[int, CutoffPredictions] = {}
    for d in cfg.cutoffs:
        mt, mv = tr.registered_at(d), va.registered_at(d)
        x_tr = aggregate_features(tr.x[mt], s_tr[mt], d, tr.active[mt])
        x_va = aggregate_features(va.x[mv], s_va[mv], d, va.active[mv])
        model = make_baseline(name, seed=cfg.seed).fit(x_tr, tr.label[mt])
        out[d] = CutoffPredictions(
            y=va.label[mv],
            risk=model.predict(x_va),
            module=val.module[mv],
            attributes={k: v[mv] for k, v in val.attributes.items()},
        )
        progress(f"{name}{'+protected' if protected else ''} D={d} fitted on {int(mt.sum())}")
    return out


def recommend_thresholds(
    preds: dict[int, CutoffPredictions], target: float, current: Thresholds
) -> tuple[Thresholds, dict[str, Any]]:
    """Alert thresholds from the primary model, pooled over every cut-off day.

    Same meaning as the trainer's: high = lowest risk whose alerts reach ``target``
    precision, medium = the same for ``target - 0.15``, rearm 0.1 below medium (hysteresis);
    min_days and cooldown_days are kept. Unreachable targets keep the current values.
    """
    y = np.concatenate([p.y for p in preds.values()])
    r = np.concatenate([p.risk for p in preds.values()])
    medium_target = max(0.05, target - 0.15)
    high = threshold_for_precision(y, r, target)
    medium = threshold_for_precision(y, r, medium_target)
    hi = current.high if high is None else high
    med = min(hi, current.medium if medium is None else medium)
    th = Thresholds(
        medium=round(med, 4),
        high=round(hi, 4),
        rearm=round(max(0.0, med - 0.1), 4),
        min_days=current.min_days,
        cooldown_days=current.cooldown_days,
    )
    per_d = {str(d): threshold_for_precision(p.y, p.risk, target) for d, p in sorted(preds.items())}
    info = {
        "target_precision_high": target,
        "target_precision_medium": medium_target,
        "reached": {"high": high is not None, "medium": medium is not None},
        "chosen_on": "validation presentation, all cut-offs pooled",
        "per_cutoff_high": per_d,
    }
    return th, info


def _examples(
    loaded: LoadedModel, val: _Split, preds: dict[int, CutoffPredictions], cfg: EvalConfig
) -> list[dict[str, Any]]:
    """Explanations for the highest-risk students at a mid-course cut-off (14-day window)."""
    if cfg.explain_examples <= 0 or not preds:
        return []
    d = min(preds, key=lambda c: abs(c - 56))
    t = val.tensors
    idx = np.flatnonzero(t.registered_at(d))
    if idx.size == 0:
        return []
    top = idx[np.argsort(-preds[d].risk)[: cfg.explain_examples]]
    static = _static_for(loaded, val)
    w0 = max(0, d - 13)
    model: Any = loaded.model
    out = []
    for i in top:
        s = torch.as_tensor(static[i : i + 1], device=loaded.device)
        with torch.no_grad():
            st = model.init_state(s)
            for day in range(w0):
                st, _ = model.step(st, torch.as_tensor(t.x[i : i + 1, day], device=s.device))
        course = (t.course_id == t.course_id[i]) & t.registered_at(d)
        ref = reference_day(t.x[course, w0 : d + 1], loaded.spec.day_features)
        contribs = explain(loaded, t.x[i, w0 : d + 1], static[i], reference=ref, state=st)
        out.append(
            {
                "course_id": int(t.course_id[i]),
                "user_id": int(t.user_id[i]),
                "day": d,
                "risk": float(preds[d].risk[np.searchsorted(idx, i)]),
                "label": int(t.label[i]),
                "explanation": sentence(contribs),
                "contributions": [c.model_dump() for c in contribs],
            }
        )
    return out


def run_evaluation(
    data_dir: Path,
    registry_root: Path,
    version: str | None,
    out: Path,
    cfg: EvalConfig | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate a registry model (None/'current' = current) and write the report into ``out``."""
    cfg = cfg or EvalConfig()
    say = progress or (lambda _m: None)
    registry = Registry(registry_root)
    loaded = registry.load(None if version in (None, "current") else version, device=cfg.device)
    oulad = Oulad(data_dir)
    have = sorted({c.presentation for c in oulad.courses})
    if cfg.validation not in have:
        raise KeyError(
            f"presentation {cfg.validation} is not in {data_dir} (it holds {', '.join(have)}); "
            "pass --presentation one of those"
        )
    missing = [p for p in cfg.train_presentations if p not in have]
    if missing:
        raise KeyError(
            f"training presentation(s) {', '.join(missing)} not in {data_dir} (it holds "
            f"{', '.join(have)}); pass --train-presentations from those, or none"
        )
    say(f"model {loaded.version} ({loaded.kind}); building day tensors")
    profiles = oulad.profiles()
    val = _split(oulad, loaded.featurizer, (cfg.validation,), cfg, profiles)
    train = (
        _split(oulad, loaded.featurizer, cfg.train_presentations, cfg, profiles)
        if cfg.train_presentations
        else None
    )
    if train is None and cfg.baselines:
        say("no training presentations: the baselines are skipped (pass --train-presentations)")
    say(f"train {len(train.tensors) if train else 0} enrolments, validation {len(val.tensors)}")

    primary = loaded.kind
    preds: dict[str, dict[int, CutoffPredictions]] = {
        primary: _registry_predictions(primary, loaded, val, cfg.cutoffs)
    }
    if loaded.calibrator.cohort:  # what admission acts on (models/cohort.py)
        preds[f"{primary}+cohort"] = _registry_predictions(
            primary, loaded, val, cfg.cutoffs, relative=True
        )
    for v in cfg.compare_versions:
        other = registry.load(v, device=cfg.device)
        preds[f"{other.kind}:{other.version}"] = _registry_predictions(v, other, val, cfg.cutoffs)
    protected_pairs: dict[str, str] = {}
    if cfg.protected_version:
        other = registry.load(cfg.protected_version, device=cfg.device)
        preds[f"{primary}+protected"] = _registry_predictions(
            cfg.protected_version, other, val, cfg.cutoffs
        )
        protected_pairs[f"{primary}+protected"] = primary
    say("model predictions done; fitting baselines per cut-off")
    if train is not None:
        for name in cfg.baselines:
            preds[name] = _baseline_predictions(name, train, val, cfg, False, say)
        for name in cfg.protected_baselines:
            preds[f"{name}+protected"] = _baseline_predictions(name, train, val, cfg, True, say)
            protected_pairs[f"{name}+protected"] = name

    if "lightgbm" in preds:  # the stack: LSTM and LightGBM logits averaged
        preds[f"{primary}+lightgbm"] = {
            d: stacked(preds[primary][d], preds["lightgbm"][d]) for d in preds[primary]
        }
    metrics = evaluate_models(preds, cfg.target_precision)
    th, th_info = recommend_thresholds(preds[primary], cfg.target_precision, loaded.thresholds)
    meta = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": loaded.version,
        "model_kind": loaded.kind,
        "spec_hash": loaded.spec.hash()[:12],
        "train_presentations": ", ".join(cfg.train_presentations),
        "validation": cfg.validation,
        "train_enrolments": len(train.tensors) if train is not None else 0,
        "data": str(data_dir),
        "calibrated": not loaded.calibrator.identity,
        "validation_enrolments": len(val.tensors),
        **({"sample": f"max {cfg.max_students} students"} if cfg.max_students else {}),
        **cfg.extra_meta,
    }
    report = build_report(
        metrics,
        primary=primary,
        reference="lightgbm" if "lightgbm" in preds else primary,
        target_precision=cfg.target_precision,
        thresholds={**th.to_dict(), **th_info},
        meta=meta,
        protected_pairs=protected_pairs,
    )
    say("paired bootstrap of the AUC differences (500 resamples)")
    report["paired_bootstrap"] = {
        f"{m} - lightgbm": {
            str(d): paired_bootstrap_auc(p.y, p.risk, preds["lightgbm"][d].risk)
            for d, p in sorted(preds[m].items())
        }
        for m in (primary, f"{primary}+cohort", f"{primary}+lightgbm")
        if m in preds and "lightgbm" in preds
    }
    # at the worker's act-on bar, on the risk the worker acts on (cohort-relative if so)
    acted = preds.get(f"{primary}+cohort", preds[primary])
    report["fairness_at_worker_threshold"] = fairness_at(
        acted, loaded.thresholds.high, (28, 56, 84)
    )
    report["reference_day"] = reference_day(
        (train or val).tensors.x, loaded.spec.day_features
    )
    report["explanation_examples"] = _examples(loaded, val, preds[primary], cfg)
    if cfg.analysis:  # importance, partial dependence, segments, drift (models/analysis.py)
        say("analysis: permutation importance, partial dependence, segments, drift")
        report.update(
            jsonable(
                analysis_sections(
                    loaded,
                    None if train is None else train.tensors,
                    val.tensors,
                    _static_for(loaded, val),
                    cfg.cutoffs,
                )
            )
        )
    write_report(report, out)
    with (out / "report.md").open("a") as fh:
        fh.write(bootstrap_markdown(report["paired_bootstrap"]))
        fh.write(fairness_markdown(report["fairness_at_worker_threshold"]))
    (out / "thresholds.json").write_text(_dumps(th.to_dict()))
    say(f"report written to {out}")
    return report


def fairness_at(
    preds: dict[int, CutoffPredictions], threshold: float, days: Sequence[int]
) -> dict[str, Any]:
    """Per group at the threshold the worker really alerts at (the registry's act-on level):
    n, positives, ROC-AUC, TPR, FPR, precision, ECE, and the largest FPR gap per attribute."""
    from models.calibration import expected_calibration_error

    out: dict[str, Any] = {"threshold": threshold, "by_day": {}}
    for d in days:
        if d not in preds:
            continue
        p = preds[d]
        flag = p.risk >= threshold
        per_attr: dict[str, Any] = {}
        for attr, vals in p.attributes.items():
            groups: dict[str, Any] = {}
            for g in sorted(set(vals.tolist())):
                m = vals == g
                y, f = p.y[m], flag[m]
                pos, neg = int(y.sum()), int((1 - y).sum())
                groups[str(g)] = {
                    "n": int(m.sum()),
                    "positives": pos,
                    "roc_auc": float(roc_auc(y, p.risk[m])),
                    "tpr": float((f & (y == 1)).sum() / pos) if pos else None,
                    "fpr": float((f & (y == 0)).sum() / neg) if neg else None,
                    "precision": float(y[f].mean()) if f.any() else None,
                    "ece": expected_calibration_error(y, p.risk[m]),
                }
            fprs = [v["fpr"] for v in groups.values() if v["fpr"] is not None and v["n"] >= 50]
            per_attr[attr] = {
                "groups": groups,
                "fpr_gap": float(max(fprs) - min(fprs)) if len(fprs) > 1 else None,
            }
        out["by_day"][str(d)] = per_attr
    return out


def bootstrap_markdown(boot: dict[str, dict[str, tuple[float, float]]]) -> str:
    """Paired bootstrap 95 % intervals of AUC differences, as Markdown."""
    if not boot:
        return ""
    lines = ["", "## Paired bootstrap: 95 % interval of the ROC-AUC difference", ""]
    lines += ["| D | " + " | ".join(boot) + " |", "|---|" + "---|" * len(boot)]
    days = sorted({int(d) for v in boot.values() for d in v})
    for d in days:
        cells = []
        for v in boot.values():
            lo, hi = v.get(str(d), (float("nan"), float("nan")))
            cells.append(f"[{lo:+.3f}, {hi:+.3f}]")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fairness_markdown(fair: dict[str, Any]) -> str:
    """The fairness table at the worker's threshold, as Markdown."""
    lines = [
        "",
        f"## Fairness at the worker's act-on threshold ({fair['threshold']:.3f})",
        "",
        "| D | attribute | group | n | AUC | TPR | FPR | precision | ECE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def f(x: Any) -> str:
        return "-" if x is None or x != x else f"{x:.3f}"

    for d, per_attr in fair["by_day"].items():
        for attr, info in per_attr.items():
            for g, r in info["groups"].items():
                lines.append(
                    f"| {d} | {attr} | {g} | {r['n']} | {f(r['roc_auc'])} | {f(r['tpr'])} | "
                    f"{f(r['fpr'])} | {f(r['precision'])} | {f(r['ece'])} |"
                )
            lines.append(f"| {d} | {attr} | FPR gap (groups of 50+) | | | | "
                         f"{f(info['fpr_gap'])} | | |")
    return "\n".join(lines) + "\n"


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2, sort_keys=True) + "\n"

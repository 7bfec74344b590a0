"""Trainer behind ``riskstream train``: OULAD day tensors -> LstmRisk/CnnLstmRisk -> registry.

Method (chosen to generalise, not to fit one split):
- Temporal split: fit on earlier presentations (2013B, 2013J), report on the latest (2014B).
  Early stopping and alert thresholds use a held-out 10% of the *training* students, so the
  2014B figures are never looked at while training.
- Risk is supervised at every day a student is still registered (BCE per day, class-weighted);
  days after withdrawal are masked so the model never learns from the silence of someone who
  has already left. Score (final weighted mark, MSE) and engagement (active in the next 7
  days) are auxiliary heads on the same days.
- Adam with exponential learning-rate decay, gradient clipping, early stopping on the mean
  ROC-AUC over the cut-off days (gains under ``min_delta`` are a plateau: past it the model
  fits the training presentations and a later presentation's AUC falls), fixed seeds.
  Batches are length-bucketed and cut after their last registered day, which changes
  nothing (the model is causal) but saves time.
- ``members`` > 1 trains that many seeds (in parallel processes on CPU) and publishes their
  average as one ``EnsembleRisk``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.dataset import DayTensors, build_day_tensors
from models.device import resolve_device
from models.features import DEFAULT_SPEC, FeatureSpec, Featurizer
from models.oulad import Oulad
from models.reference import reference_files
from models.registry import Registry, Thresholds, model_class

CUTOFFS: tuple[int, ...] = (14, 28, 56, 84, 112, 140, 168, 196)
ENGAGEMENT_HORIZON = 7

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class TrainConfig:
    model: str = "lstm"
    hidden: int = 64  # 128 gets half the epochs in the 15-minute CPU budget and ends worse
    dropout: float = 0.5
    aggregates: bool = True  # running mean + weekly/monthly averages as extra LSTM inputs
    head_hidden: int = 64  # shared ReLU layer in the heads (0 = linear heads)
    summaries: bool = True  # running max, mean-when-active, recency as inputs
    head_skip: bool = True  # heads read the aggregates directly (wide-and-deep skip)
    epochs: int = 60
    batch_size: int = 32  # small batches: 4x the Adam steps for the same CPU time
    lr: float = 1e-3
    lr_decay: float = 0.95  # per epoch (exponential)
    patience: int = 10
    min_delta: float = 0.002  # a holdout gain below this is a plateau, not progress
    grad_clip: float = 1.0
    weight_averaging: float = 0.998  # EMA of the weights (Polyak); 0 = off
    click_augment: float = 0.0  # per-course click-volume jitter (log-normal sigma); 0 = off
    score_weight: float = 0.5
    day_weight_power: float = 0.0  # loss weight ((t + 7) / 7) ** -p per day t; 0 = uniform
    weight_decay: float = 0.01  # AdamW's decoupled decay (0 = plain Adam)
    engagement_weight: float = 0.2
    holdout: float = 0.1  # share of training students for early stopping and thresholds
    train_presentations: tuple[str, ...] = ("2013B", "2013J")
    valid_presentations: tuple[str, ...] = ("2014B",)
    module: str | None = None
    max_students: int | None = None  # per split, for quick runs and tests
    folds: int = 0  # >1: k-fold by student over the training presentations
    seed: int = 0
    device: str = "auto"
    time_budget_s: float | None = None  # stop (keeping the best epoch) after this long
    finetune_from: str | None = None
    cache_dir: Path | None = None
    target_precision: float = 0.8
    spec: FeatureSpec = field(default_factory=lambda: DEFAULT_SPEC)
    threads: int | None = None
    make_current: bool = True
    members: int = 1  # >1: an ensemble of this many seeds (logits averaged)
    member_procs: int = 0  # parallel processes for the members (0 = one per core, CPU only)


@dataclass
class TrainResult:
    version: str
    metrics: dict[str, Any]
    thresholds: Thresholds
    wall_s: float


def quick_config(**overrides: Any) -> TrainConfig:
    """A small model in well under a minute (demo, smoke tests); not for real use."""
    base = TrainConfig(
        hidden=32, epochs=8, batch_size=32, max_students=2000, patience=3, time_budget_s=20.0
    )
    return replace(base, **overrides)


def auto_threads() -> int:
    """One thread when the machine is busy: small LSTM kernels with OpenMP threads fighting
    other processes for cores ran 3-4x slower than a single thread (measured here)."""
    import os

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return 1 if load > cores * 0.5 else min(cores, 8)


# -- data ------------------------------------------------------------------------------
def _cache_key(
    cfg: TrainConfig,
    presentations: tuple[str, ...],
    max_students: int | None,
    data_hash: str = "",
) -> str:
    raw = json.dumps(
        [cfg.spec.hash(), presentations, cfg.module, max_students, cfg.seed, data_hash],
        default=str,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def load_tensors(
    oulad: Oulad, cfg: TrainConfig, presentations: tuple[str, ...], max_students: int | None
) -> DayTensors:
    """Day tensors through the featurizer's table door, cached as .npz when a cache dir is set."""
    path = None
    if cfg.cache_dir is not None:
        key = _cache_key(cfg, presentations, max_students, oulad.content_hash())
        path = Path(cfg.cache_dir) / f"days-{key}.npz"
        if path.is_file():
            return DayTensors.load(path)
    t = build_day_tensors(
        oulad,
        Featurizer(cfg.spec),
        presentations=presentations,
        module=cfg.module,
        max_students=max_students,
        seed=cfg.seed,
    )
    if path is not None:
        t.save(path)
    return t


def targets(t: DayTensors) -> dict[str, np.ndarray]:
    """Per-day training targets and masks [N, T]."""
    n, T = t.active.shape
    days = np.arange(T)[None, :]
    registered = days <= t.last_day[:, None]
    # engagement: any activity in the next ENGAGEMENT_HORIZON days (known before course end)
    act = t.active.astype(np.int32)
    csum = np.concatenate([np.zeros((n, 1), np.int32), np.cumsum(act, axis=1)], axis=1)
    hi = np.minimum(np.arange(T) + ENGAGEMENT_HORIZON, T - 1)
    future = csum[:, hi + 1] - csum[:, np.arange(T) + 1]
    eng_known = (days + ENGAGEMENT_HORIZON) <= (t.length[:, None] - 1)
    return {
        "mask": registered,
        "engaged": (future > 0),
        "eng_mask": registered & eng_known,
    }


# -- evaluation ------------------------------------------------------------------------
@torch.no_grad()
def predict_days(
    model: nn.Module, t: DayTensors, device: torch.device, batch: int = 512
) -> dict[str, np.ndarray]:
    """Risk, score and engagement after every day [N, T] (eval mode)."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {"risk": [], "score": [], "engagement": []}
    for i in range(0, len(t), batch):
        x = torch.as_tensor(t.x[i : i + batch], device=device)
        s = torch.as_tensor(t.static[i : i + batch], device=device)
        o = model(x, s)
        out["risk"].append(o.risk.cpu().numpy())
        out["score"].append(o.score.cpu().numpy())
        out["engagement"].append(o.engagement.cpu().numpy())
    T = t.x.shape[1]
    return {k: (np.concatenate(v) if v else np.zeros((0, T), np.float32)) for k, v in out.items()}


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(y) == 0 or np.unique(y).size < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def cutoff_metrics(
    t: DayTensors, pred: dict[str, np.ndarray], cutoffs: tuple[int, ...] = CUTOFFS
) -> dict[str, Any]:
    """ROC-AUC per cut-off D over enrolments still registered at D, from days 0..D only."""
    per: dict[str, Any] = {}
    for d in cutoffs:
        if d >= t.x.shape[1]:
            continue
        m = t.registered_at(d)
        y = t.label[m]
        r = pred["risk"][m, d]
        sc = t.final_score[m]
        ok = ~np.isnan(sc)
        per[str(d)] = {
            "n": int(m.sum()),
            "positives": int(y.sum()),
            "roc_auc": _auc(y, r),
            "score_mse": float(np.mean((pred["score"][m, d][ok] - sc[ok]) ** 2))
            if ok.any()
            else float("nan"),
        }
    aucs = [v["roc_auc"] for v in per.values() if not math.isnan(v["roc_auc"])]
    return {"per_cutoff": per, "mean_roc_auc": float(np.mean(aucs)) if aucs else float("nan")}


def _precision_threshold(y: np.ndarray, p: np.ndarray, target: float) -> float | None:
    """Lowest threshold whose flagged set reaches ``target`` precision (None if never)."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order].astype(bool)
    prec = np.cumsum(ys) / np.arange(1, len(ps) + 1)
    last_of_run = np.r_[ps[1:] != ps[:-1], True]
    ok = last_of_run & (prec >= target)
    if not ok.any():
        return None
    return float(ps[int(np.flatnonzero(ok)[-1])])


#: Days on which alert thresholds are calibrated. Early in a course everyone's risk sits near
#: the base rate, so a threshold chosen here does not hold before the first of these days.
CALIBRATION_DAYS: tuple[int, ...] = (28, 42, 56)


def choose_thresholds(
    t: DayTensors, pred: dict[str, np.ndarray], target_precision: float
) -> tuple[Thresholds, dict[str, Any]]:
    """high = reaches ``target_precision`` at days 28-56; medium = 3/4 of the way there.

    ``min_days`` is the first calibration day: the policy never alerts where the thresholds
    were not measured (on OULAD, day-6 risks crossed ``medium`` for almost every student).
    """
    ys, ps = [], []
    for d in CALIBRATION_DAYS:
        if d < t.x.shape[1]:
            m = t.registered_at(d)
            ys.append(t.label[m])
            ps.append(pred["risk"][m, d])
    y = np.concatenate(ys) if ys else np.zeros(0)
    p = np.concatenate(ps) if ps else np.zeros(0)
    high = _precision_threshold(y, p, target_precision) if len(y) else None
    medium_target = target_precision - 0.15
    medium = _precision_threshold(y, p, medium_target) if len(y) else None
    hi = 0.8 if high is None else high
    med = min(hi, 0.6 if medium is None else medium)
    th = Thresholds(
        medium=med,
        high=hi,
        rearm=max(0.0, med - 0.1),
        min_days=CALIBRATION_DAYS[0],
        cooldown_days=7,
    )
    info = {
        "target_precision_high": target_precision,
        "target_precision_medium": medium_target,
        "reached": {"high": high is not None, "medium": medium is not None},
        "chosen_on": "held-out training students, days 28/42/56",
    }
    return th, info


# -- training --------------------------------------------------------------------------
def _seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batches(t: DayTensors, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Length buckets: sort by last day (with noise), chunk, shuffle the chunks."""
    noisy = t.last_day + rng.uniform(0, 30, size=len(t))
    order = np.argsort(noisy, kind="stable")
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(chunks)  # type: ignore[arg-type]
    return chunks


def augment_clicks(
    x: np.ndarray,
    course_id: np.ndarray,
    click_cols: tuple[int, ...],
    sigma: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Scale each course's click volume by one random factor (log-normal, ``sigma``).

    Courses differ in how much clicking a normal week takes; the model should judge a
    student against that, not learn the volume of the courses it was trained on. Counts are
    stored as log1p, so the factor applies to expm1 of them. Returns a new array.
    """
    out = x.copy()
    cols = list(click_cols)
    for c in np.unique(course_id):
        rows = course_id == c
        f = float(np.exp(rng.normal(0.0, sigma)))
        sub = out[rows]
        sub[..., cols] = np.log1p(np.expm1(sub[..., cols]) * f)
        out[rows] = sub
    return out


def _loss(
    model: nn.Module,
    t: DayTensors,
    tg: dict[str, np.ndarray],
    idx: np.ndarray,
    pos_weight: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device,
    rng: np.random.Generator | None = None,
    click_cols: tuple[int, ...] = (),
) -> torch.Tensor:
    T = int(min(t.x.shape[1], t.last_day[idx].max() + 1))
    xs = t.x[idx, :T]
    if rng is not None and cfg.click_augment > 0 and click_cols:
        xs = augment_clicks(xs, t.course_id[idx], click_cols, cfg.click_augment, rng)
    x = torch.as_tensor(xs, device=device)
    s = torch.as_tensor(t.static[idx], device=device)
    logits = model.logits(x, s)  # type: ignore[operator]
    mask = torch.as_tensor(tg["mask"][idx, :T], device=device, dtype=torch.float32)
    y = torch.as_tensor(t.label[idx], device=device, dtype=torch.float32)[:, None].expand(-1, T)
    if cfg.day_weight_power > 0:
        # each student has ~200 late days and 28 early ones: without this the late days
        # dominate the loss and are fitted (and over-fitted) first
        day = torch.arange(T, device=device, dtype=torch.float32)
        mask = mask * ((day + 7.0) / 7.0).pow(-cfg.day_weight_power)[None, :]
    n = mask.sum().clamp_min(1.0)
    risk = F.binary_cross_entropy_with_logits(
        logits[..., 0], y, pos_weight=pos_weight, reduction="none"
    )
    loss = (risk * mask).sum() / n
    score = torch.as_tensor(t.final_score[idx], device=device)
    known = ~torch.isnan(score)
    if known.any() and cfg.score_weight > 0:
        sm = mask * known[:, None].float()
        target = torch.nan_to_num(score)[:, None].expand(-1, T)
        se = (torch.sigmoid(logits[..., 1]) - target) ** 2
        loss = loss + cfg.score_weight * (se * sm).sum() / sm.sum().clamp_min(1.0)
    if cfg.engagement_weight > 0:
        em = torch.as_tensor(tg["eng_mask"][idx, :T], device=device, dtype=torch.float32)
        ey = torch.as_tensor(tg["engaged"][idx, :T], device=device, dtype=torch.float32)
        eb = F.binary_cross_entropy_with_logits(logits[..., 2], ey, reduction="none")
        loss = loss + cfg.engagement_weight * (eb * em).sum() / em.sum().clamp_min(1.0)
    return loss


def fit(
    model: nn.Module,
    train: DayTensors,
    holdout: DayTensors,
    cfg: TrainConfig,
    device: torch.device,
    lr: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train in place; leaves the best-holdout weights in ``model``. Returns the history.

    With an empty ``holdout`` there is nothing to stop on: it trains exactly ``cfg.epochs``
    epochs and keeps the last averaged weights (the final model, fitted on every
    presentation, uses the epoch count the temporal splits chose).
    """
    say = progress or (lambda _m, _i: None)
    tg = targets(train)
    mask = tg["mask"]
    pos_days = float((mask * train.label[:, None]).sum())
    neg_days = float(mask.sum()) - pos_days
    pos_weight = torch.tensor(neg_days / max(pos_days, 1.0), device=device)
    opt: torch.optim.Optimizer
    if cfg.weight_decay > 0:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    rng = np.random.default_rng(cfg.seed)
    # evaluate and keep an exponential moving average of the weights: smoother than the
    # last step's weights and it generalises better at no extra training cost
    avg = copy.deepcopy(model) if cfg.weight_averaging > 0 else model
    avg_params: list[torch.Tensor] = list(avg.parameters())
    params: list[torch.Tensor] = list(model.parameters())
    names = cfg.spec.day_features
    click_cols = tuple(i for i, n in enumerate(names) if n.startswith("clicks_"))
    steps = 0
    best = -1.0
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = 0
    history: list[dict[str, Any]] = []
    start = time.monotonic()
    stopped = "epochs"
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        batches = _batches(train, cfg.batch_size, rng)
        say("epoch_start", {"epoch": epoch, "batches": len(batches)})
        total = 0.0
        for bi, idx in enumerate(batches):
            loss = _loss(model, train, tg, idx, pos_weight, cfg, device, rng, click_cols)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if avg is not model:
                steps += 1
                # warm-up as in TF's ExponentialMovingAverage: short runs are not
                # dominated by the initial weights
                decay = min(cfg.weight_averaging, (1 + steps) / (10 + steps))
                with torch.no_grad():
                    torch._foreach_lerp_(avg_params, params, 1.0 - decay)
            total += float(loss.detach())
            say("batch", {"epoch": epoch, "batch": bi + 1, "loss": float(loss.detach())})
        sched.step()
        if len(holdout):
            score = cutoff_metrics(holdout, predict_days(avg, holdout, device))["mean_roc_auc"]
        else:
            score = float(epoch)  # no holdout: every epoch is "better", the last one is kept
        row = {
            "epoch": epoch,
            "loss": total / max(len(batches), 1),
            "holdout_mean_auc": score,
            "lr": opt.param_groups[0]["lr"],
            "elapsed_s": round(time.monotonic() - start, 1),
        }
        history.append(row)
        if best < 0 or score > best + cfg.min_delta:
            # on a plateau of the in-distribution holdout the model keeps fitting the
            # training presentations: on two temporal splits (2013B->2013J, 2013->2014B)
            # the later presentation's AUC fell from there on, so plateaus do not count
            best, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in avg.state_dict().items()}
        say("epoch_end", {**row, "best": best, "best_epoch": best_epoch})
        if epoch - best_epoch >= cfg.patience:
            stopped = "early_stopping"
            break
        elapsed = time.monotonic() - start
        per_epoch = elapsed / epoch
        if cfg.time_budget_s is not None and elapsed + per_epoch > cfg.time_budget_s:
            stopped = "time_budget"  # the next epoch would not finish in time
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {
        "history": history,
        "best_epoch": best_epoch,
        "best_holdout_mean_auc": best,
        "stopped": stopped,
        "final_lr": lr * cfg.lr_decay ** max(best_epoch, 1),
        "pos_weight": float(pos_weight),
    }


def new_model(cfg: TrainConfig) -> nn.Module:
    """A fresh model of ``cfg.model`` sized by ``cfg`` (seed the RNG first)."""
    return model_class(cfg.model)(  # type: ignore[call-arg]
        n_day=cfg.spec.n_day,
        n_static=cfg.spec.n_static,
        hidden=cfg.hidden,
        dropout=cfg.dropout,
        aggregates=cfg.aggregates,
        head_hidden=cfg.head_hidden,
        summaries=cfg.summaries,
        head_skip=cfg.head_skip,
    )


def member_seed(seed: int, i: int) -> int:
    return seed + 1000 * i


def _member_job(
    cfg: TrainConfig,
    i: int,
    tr: DayTensors,
    ho: DayTensors,
    device: str,
    lr: float,
    queue: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One ensemble member in a worker process: one thread, events sent back on ``queue``."""
    torch.set_num_threads(1)
    seed = member_seed(cfg.seed, i)
    _seed_all(seed)
    model = new_model(cfg).to(device)

    def relay(kind: str, info: dict[str, Any]) -> None:
        if kind == "epoch_end" or i == 0:  # member 0 drives the progress bar
            queue.put((kind, {**info, "member": i}))

    info = fit(model, tr, ho, replace(cfg, seed=seed), torch.device(device), lr, relay)
    return {k: v.cpu() for k, v in model.state_dict().items()}, info


def fit_members(
    cfg: TrainConfig,
    tr: DayTensors,
    ho: DayTensors,
    device: torch.device,
    lr: float,
    progress: Progress | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``cfg.members`` models that differ only by seed; one model or an EnsembleRisk.

    On CPU the members train in parallel processes (one thread each: small LSTM kernels gain
    little from a second thread, a second member gains more). All members share one holdout,
    so the ensemble's holdout predictions stay clean for the thresholds.
    """
    from models.ensemble import EnsembleRisk

    say = progress or (lambda _m, _i: None)
    if cfg.members <= 1:
        _seed_all(cfg.seed)
        model = new_model(cfg).to(device)
        return model, fit(model, tr, ho, cfg, device, lr, progress)
    import os

    procs = cfg.member_procs or min(cfg.members, os.cpu_count() or 1)
    if device.type != "cpu":
        procs = 1
    models: list[nn.Module] = []
    infos: list[dict[str, Any]] = []
    if procs <= 1:
        share = None if cfg.time_budget_s is None else cfg.time_budget_s / cfg.members
        for i in range(cfg.members):
            say("message", {"text": f"member {i + 1}/{cfg.members}"})
            seed = member_seed(cfg.seed, i)
            _seed_all(seed)
            m = new_model(cfg).to(device)
            mcfg = replace(cfg, seed=seed, time_budget_s=share)
            infos.append(fit(m, tr, ho, mcfg, device, lr, progress))
            models.append(m)
    else:
        import multiprocessing as mp
        import queue as queue_mod
        from concurrent.futures import ProcessPoolExecutor

        say("message", {"text": f"{cfg.members} members in {procs} processes"})
        ctx = mp.get_context("spawn")  # fork after torch/OpenMP start-up can hang
        with ctx.Manager() as manager, ProcessPoolExecutor(procs, mp_context=ctx) as pool:
            events = manager.Queue()
            futures = [
                pool.submit(_member_job, cfg, i, tr, ho, str(device), lr, events)
                for i in range(cfg.members)
            ]
            while not all(f.done() for f in futures):
                try:
                    kind, info = events.get(timeout=0.5)
                except queue_mod.Empty:
                    continue
                say(kind, info)
            for f in futures:
                state, info = f.result()
                m = new_model(cfg)
                m.load_state_dict(state)
                models.append(m.to(device))
                infos.append(info)
    ens = EnsembleRisk.of(models).to(device)
    ens.eval()
    info = {
        "members": infos,
        "best_epoch": [x["best_epoch"] for x in infos],
        "best_holdout_mean_auc": float(
            cutoff_metrics(ho, predict_days(ens, ho, device))["mean_roc_auc"]
        ),
        "stopped": [x["stopped"] for x in infos],
        "final_lr": float(np.mean([x["final_lr"] for x in infos])),
        "pos_weight": infos[0]["pos_weight"],
        "history": infos[0]["history"],
    }
    return ens, info


def _split_holdout(t: DayTensors, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole students (all their enrolments) so nobody is on both sides."""
    users = np.unique(t.user_id)
    rng = np.random.default_rng(seed + 7)
    held = set(rng.choice(users, size=max(1, int(len(users) * share)), replace=False).tolist())
    is_held = np.asarray([u in held for u in t.user_id])
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def _fold_splits(t: DayTensors, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    users = np.unique(t.user_id)
    rng = np.random.default_rng(seed + 11)
    fold_of = dict(zip(rng.permutation(users).tolist(), np.arange(len(users)) % k, strict=True))
    f = np.asarray([fold_of[int(u)] for u in t.user_id])
    return [(np.flatnonzero(f != i), np.flatnonzero(f == i)) for i in range(k)]


def _summary(t: DayTensors, presentations: tuple[str, ...]) -> dict[str, Any]:
    usable = t.last_day >= 0
    return {
        "presentations": list(presentations),
        "enrolments": len(t),
        "used": int(usable.sum()),
        "positive_rate": float(t.label[usable].mean()) if usable.any() else float("nan"),
        "courses": sorted({int(c) for c in t.course_id}),
        "n_days": t.n_days,
    }


def train(
    data_dir: Path,
    registry_root: Path,
    cfg: TrainConfig,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate on the temporal validation split, publish; returns the new version."""
    say = progress or (lambda _m, _i: None)
    t0 = time.monotonic()
    _seed_all(cfg.seed)
    torch.set_num_threads(cfg.threads or auto_threads())
    device = resolve_device(cfg.device)
    registry = Registry(registry_root)
    spec = cfg.spec
    lr = cfg.lr
    parent_model: nn.Module | None = None
    if cfg.finetune_from:
        if cfg.folds > 1:
            raise ValueError("--folds and --finetune-from do not mix: fine-tune one model")
        parent = registry.load(cfg.finetune_from, device="cpu")
        spec = parent.spec
        parent_model = parent.model
        lr = float(parent.metrics.get("training", {}).get("final_lr", cfg.lr * 0.1)) * cfg.lr_decay
        cfg = replace(cfg, spec=spec, model=parent.kind)
    oulad = Oulad(data_dir)
    say("message", {"text": f"building day tensors ({', '.join(cfg.train_presentations)})"})
    full_train = load_tensors(oulad, cfg, cfg.train_presentations, cfg.max_students)
    full_train = full_train.subset(np.flatnonzero(full_train.last_day >= 0))
    if cfg.valid_presentations:
        valid = load_tensors(
            oulad,
            cfg,
            cfg.valid_presentations,
            None if cfg.max_students is None else max(200, cfg.max_students // 3),
        )
    else:  # fitted on everything: nothing left to validate on (the splits did that)
        valid = full_train.subset(np.zeros(0, dtype=np.int64))
    say(
        "message",
        {
            "text": f"{len(full_train)} training enrolments, {len(valid)} validation "
            f"({time.monotonic() - t0:.0f} s); device {device}"
        },
    )
    if cfg.folds > 1:
        splits = _fold_splits(full_train, cfg.folds, cfg.seed)
    elif cfg.holdout <= 0:
        splits = [(np.arange(len(full_train)), np.zeros(0, dtype=np.int64))]
    else:
        splits = [_split_holdout(full_train, cfg.holdout, cfg.seed)]
    runs = []
    for fi, (tr_idx, ho_idx) in enumerate(splits):
        if len(splits) > 1:
            say("message", {"text": f"fold {fi + 1}/{len(splits)}"})
        tr, ho = full_train.subset(tr_idx), full_train.subset(ho_idx)
        if parent_model is not None:
            _seed_all(cfg.seed + fi)
            model = parent_model
            model.train()
            model.to(device)
            info = fit(model, tr, ho, cfg, device, lr, progress)
        else:
            budget = None
            if cfg.time_budget_s is not None:
                budget = max(1.0, cfg.time_budget_s - (time.monotonic() - t0))
            model, info = fit_members(
                replace(cfg, seed=cfg.seed + fi, spec=spec, time_budget_s=budget),
                tr,
                ho,
                device,
                lr,
                progress,
            )
        ho_pred = predict_days(model, ho, device)
        val_pred = predict_days(model, valid, device)
        runs.append((model, ho, ho_pred, info, cutoff_metrics(valid, val_pred), val_pred))
    best_i = int(np.argmax([r[3]["best_holdout_mean_auc"] for r in runs]))
    model, ho, ho_pred, info, va_metrics, val_pred = runs[best_i]
    thresholds, th_info = choose_thresholds(ho, ho_pred, cfg.target_precision)
    prec = _precision_at(valid, val_pred, thresholds.high)
    wall = time.monotonic() - t0
    metrics: dict[str, Any] = {
        "task": "P(Fail or Withdrawn) at cut-off day D, enrolments registered at D, days 0..D",
        "validation": {"presentations": list(cfg.valid_presentations), **va_metrics},
        "holdout": cutoff_metrics(ho, ho_pred),
        "thresholds": th_info,
        "validation_precision_at_high_days_28_56": prec,
        "training": {
            **{k: v for k, v in info.items() if k != "history"},
            "history": info["history"],
            "wall_s": round(wall, 1),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "config": _config_dict(cfg),
        },
    }
    if len(runs) > 1:
        fold_means = [r[4]["mean_roc_auc"] for r in runs]
        metrics["folds"] = {
            "k": len(runs),
            "validation_mean_auc": fold_means,
            "validation_mean_auc_mean": float(np.mean(fold_means)),
            "validation_mean_auc_std": float(np.std(fold_means)),
            "published_fold": best_i,
        }
    data_summary = {
        "source": "OULAD",
        "train": _summary(full_train, cfg.train_presentations),
        "validation": _summary(valid, cfg.valid_presentations),
        "holdout_students": len(np.unique(ho.user_id)),
        "max_students": cfg.max_students,
    }
    version = registry.publish(
        model.cpu(),
        spec,
        thresholds,
        metrics,
        data_summary,
        make_current=cfg.make_current,
        parent=cfg.finetune_from,
        notes=f"riskstream train --model {cfg.model}",
        extras=reference_files(full_train, spec, cfg.seed),  # drift + segments (monitoring)
    )
    say("message", {"text": f"published {version} in {registry_root} ({wall:.0f} s)"})
    return TrainResult(version=version, metrics=metrics, thresholds=thresholds, wall_s=wall)


def _precision_at(t: DayTensors, pred: dict[str, np.ndarray], threshold: float) -> float | None:
    ys, flagged = [], []
    for d in (28, 42, 56):
        if d < t.x.shape[1]:
            m = t.registered_at(d)
            ys.append(t.label[m])
            flagged.append(pred["risk"][m, d] >= threshold)
    if not ys:
        return None
    y, f = np.concatenate(ys), np.concatenate(flagged)
    return float(y[f].mean()) if f.any() else None


def _config_dict(cfg: TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["spec"] = cfg.spec.hash()[:12]
    d["cache_dir"] = None if cfg.cache_dir is None else str(cfg.cache_dir)
    return d

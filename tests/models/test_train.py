"""Trainer: masks after withdrawal, trains and publishes a loadable model, fine-tunes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.dataset import DayTensors
from models.lstm import LstmRisk
from models.registry import Registry
from models.train import TrainConfig, _loss, choose_thresholds, cutoff_metrics, targets, train
from tests.conftest import OULAD_DIR

needs_oulad = pytest.mark.skipif(
    not (OULAD_DIR / "studentVle.parquet").is_file(), reason="OULAD not present"
)


def _toy(n: int = 6, T: int = 20, n_day: int = 4) -> DayTensors:
    rng = np.random.default_rng(0)
    active = rng.random((n, T)) > 0.5
    return DayTensors(
        x=rng.random((n, T, n_day)).astype(np.float32),
        static=rng.random((n, 2)).astype(np.float32),
        active=active,
        course_id=np.ones(n, np.int64),
        user_id=np.arange(n, dtype=np.int64),
        label=np.asarray([0, 1] * (n // 2), np.int64),
        final_score=np.asarray([0.7, np.nan] * (n // 2), np.float32),
        last_day=np.asarray([19, 5] * (n // 2), np.int64),
        length=np.full(n, T, np.int64),
    )


def test_targets_mask_days_after_withdrawal() -> None:
    t = _toy()
    tg = targets(t)
    assert tg["mask"][1, :6].all() and not tg["mask"][1, 6:].any()
    assert tg["mask"][0].all()
    # engaged(t) = any activity in days t+1..t+7
    want = t.active[0, 4:11].any()
    assert tg["engaged"][0, 3] == want
    assert not tg["eng_mask"][0, -1]  # the next week is past the course end


def test_loss_ignores_days_after_withdrawal() -> None:
    t = _toy()
    tg = targets(t)
    torch.manual_seed(0)
    model = LstmRisk(n_day=4, n_static=2, hidden=8, dropout=0.0)
    cfg = TrainConfig()
    idx = np.asarray([1, 3, 5])  # all withdrew on day 5
    before = _loss(model, t, tg, idx, torch.tensor(1.0), cfg, torch.device("cpu"))
    t.x[idx, 6:] = 99.0  # whatever happens after leaving must not matter
    after = _loss(model, t, tg, idx, torch.tensor(1.0), cfg, torch.device("cpu"))
    torch.testing.assert_close(before, after)
    t.x[idx, 3] = 99.0
    changed = _loss(model, t, tg, idx, torch.tensor(1.0), cfg, torch.device("cpu"))
    assert not torch.isclose(before, changed)


def test_cutoff_metrics_and_thresholds() -> None:
    t = _toy(n=40, T=60)
    t.last_day[:] = 59
    noise = np.random.default_rng(1).normal(0, 0.05, (40, 1))
    risk = np.repeat(np.where(t.label[:, None] == 1, 0.8, 0.2) + noise, 60, axis=1)
    pred = {"risk": risk, "score": np.zeros((40, 60)), "engagement": np.zeros((40, 60))}
    m = cutoff_metrics(t, pred, cutoffs=(14, 28, 56, 84))
    assert set(m["per_cutoff"]) == {"14", "28", "56"}  # 84 is past the sequence
    assert m["per_cutoff"]["28"]["roc_auc"] == pytest.approx(1.0)
    th, info = choose_thresholds(t, pred, 0.8)
    assert info["reached"]["high"]
    flagged = risk[:, 28] >= th.high
    y = t.label.astype(bool)
    assert (y & flagged).sum() / flagged.sum() >= 0.8 and flagged[y].all()
    assert (y & (risk[:, 28] >= th.high - 0.1)).sum() / (risk[:, 28] >= th.high - 0.1).sum() < 0.8
    assert th.rearm <= th.medium <= th.high


@needs_oulad
def test_train_publish_and_finetune(tmp_path: Path) -> None:
    cfg = TrainConfig(
        hidden=8,
        epochs=2,
        batch_size=32,
        module="AAA",
        train_presentations=("2013J",),
        valid_presentations=("2013J",),
        max_students=150,
        cache_dir=tmp_path / "cache",
        device="cpu",
    )
    events: list[str] = []
    res = train(OULAD_DIR, tmp_path / "reg", cfg, lambda kind, _info: events.append(kind))
    assert res.version == "v0001"
    assert {"epoch_start", "batch", "epoch_end"} <= set(events)
    per = res.metrics["validation"]["per_cutoff"]
    assert set(per) >= {"14", "28", "56"} and 0.0 <= per["56"]["roc_auc"] <= 1.0
    assert list((tmp_path / "cache").glob("days-*.npz"))  # tensors cached for the next run
    reg = Registry(tmp_path / "reg")
    loaded = reg.load()
    assert loaded.version == "v0001" and loaded.metrics["training"]["best_epoch"] >= 1
    assert loaded.thresholds.rearm <= loaded.thresholds.medium <= loaded.thresholds.high
    # no alert before the first day the thresholds were calibrated on
    from models.train import CALIBRATION_DAYS

    assert loaded.thresholds.min_days == CALIBRATION_DAYS[0] == 28
    ft = train(
        OULAD_DIR,
        tmp_path / "reg",
        TrainConfig(**{**cfg.__dict__, "finetune_from": "v0001", "epochs": 1}),
    )
    assert ft.version == "v0002"
    meta = reg.load("v0002").meta
    assert meta["parent"] == "v0001"
    first_lr = loaded.metrics["training"]["history"][0]["lr"]
    assert ft.metrics["training"]["history"][0]["lr"] < first_lr


def test_click_augmentation_scales_whole_courses_only() -> None:
    from models.train import augment_clicks

    counts = np.arange(1, 25, dtype=np.float32).reshape(4, 3, 2)
    x = np.concatenate([np.log1p(counts), np.ones((4, 3, 1), np.float32)], axis=-1)
    course = np.asarray([1, 1, 2, 2])
    out = augment_clicks(x, course, (0, 1), 0.3, np.random.default_rng(0))
    ratio = np.expm1(out[..., :2]) / counts
    np.testing.assert_allclose(ratio[:2], ratio[0, 0, 0], rtol=1e-4)  # one factor per course
    np.testing.assert_allclose(ratio[2:], ratio[2, 0, 0], rtol=1e-4)
    assert abs(ratio[0, 0, 0] - ratio[2, 0, 0]) > 1e-3  # courses get different factors
    np.testing.assert_array_equal(out[..., 2], x[..., 2])  # non-click features untouched
    np.testing.assert_array_equal(x[..., :2], np.log1p(counts))  # input not modified


@pytest.mark.parametrize("procs", [1, 2], ids=["in-process", "two-processes"])
def test_members_train_into_one_ensemble(procs: int) -> None:
    from models.ensemble import EnsembleRisk
    from models.features import FeatureSpec
    from models.train import fit_members, predict_days

    t = _toy(n=24, T=30, n_day=4)
    t.last_day[:] = 29
    spec = FeatureSpec(
        day_features=("clicks_content", "clicks_quiz", "active", "score"),
        static_features=("num_prev_attempts", "studied_credits"),
    )
    cfg = TrainConfig(
        hidden=6, head_hidden=4, epochs=2, patience=5, members=2, member_procs=procs, spec=spec
    )
    events: list[tuple[str, dict[str, object]]] = []
    model, info = fit_members(
        cfg,
        t.subset(np.arange(16)),
        t.subset(np.arange(16, 24)),
        torch.device("cpu"),
        1e-3,
        lambda kind, i: events.append((kind, i)),
    )
    assert isinstance(model, EnsembleRisk) and len(model.members) == 2
    assert len(info["members"]) == 2 and all(e >= 1 for e in info["best_epoch"])
    # the members differ (own seeds), and the ensemble predicts their mean logit
    w0, w1 = (m.lstm.weight_ih_l0 for m in model.members)
    assert not torch.equal(w0, w1)
    pred = predict_days(model, t, torch.device("cpu"))
    assert pred["risk"].shape == (24, 30)
    ends = [i for kind, i in events if kind == "epoch_end"]
    assert len(ends) >= 4  # two epochs of each member reported (from the workers too)


def test_day_weighting_follows_its_formula() -> None:
    t = _toy(n=6, T=20)
    t.last_day[:] = 19
    tg = targets(t)
    torch.manual_seed(0)
    model = LstmRisk(n_day=4, n_static=2, hidden=8, dropout=0.0).eval()
    idx = np.arange(6)
    cfg = TrainConfig(score_weight=0.0, engagement_weight=0.0, day_weight_power=1.0)
    got = _loss(model, t, tg, idx, torch.tensor(1.0), cfg, torch.device("cpu"))
    with torch.no_grad():
        logits = model.logits(torch.as_tensor(t.x), torch.as_tensor(t.static))[..., 0]
    y = torch.as_tensor(t.label, dtype=torch.float32)[:, None].expand(-1, 20)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    w = ((torch.arange(20.0) + 7.0) / 7.0) ** -1.0
    want = (bce * w).sum() / (w.sum() * 6)
    torch.testing.assert_close(got.detach(), want)
    uniform = _loss(
        model,
        t,
        tg,
        idx,
        torch.tensor(1.0),
        TrainConfig(score_weight=0.0, engagement_weight=0.0),
        torch.device("cpu"),
    )
    torch.testing.assert_close(uniform.detach(), bce.mean())


def test_holdout_gains_below_min_delta_are_a_plateau(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.train as mt

    scores = iter([0.70, 0.75, 0.751, 0.7515, 0.752, 0.7525, 0.753])
    monkeypatch.setattr(
        mt, "cutoff_metrics", lambda *_a, **_k: {"mean_roc_auc": next(scores), "per_cutoff": {}}
    )
    t = _toy(n=8, T=20)
    cfg = TrainConfig(hidden=4, head_hidden=0, epochs=7, patience=3, min_delta=0.002)
    model = LstmRisk(n_day=4, n_static=2, hidden=4)
    info = mt.fit(model, t, t, cfg, torch.device("cpu"), 1e-3)
    # 0.751..0.753 never beat 0.75 by 0.002: epoch 2 stays best, patience ends it at epoch 5
    assert info["best_epoch"] == 2 and info["stopped"] == "early_stopping"
    assert len(info["history"]) == 5

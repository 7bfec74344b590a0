"""The retraining rule and the whole loop on a small OULAD sample (trainer's quick config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.registry import Registry
from riskstream.retrain import (
    PROMOTION_FILE,
    RETRAIN_LOG,
    RetrainPolicy,
    RetrainSignals,
    decide,
    new_presentations,
    run_retrain,
    should_promote,
)
from tests.conftest import OULAD_DIR

needs_oulad = pytest.mark.skipif(
    not (OULAD_DIR / "studentVle.parquet").is_file(), reason="OULAD not present"
)
REPO = Path(__file__).resolve().parents[2]


def test_rule_fires_on_drift_calibration_or_new_data() -> None:
    assert not decide(RetrainSignals()).due
    assert decide(RetrainSignals(drifting_courses=[4])).due
    assert decide(RetrainSignals(miscalibrated_courses=[2])).due
    d = decide(RetrainSignals(new_presentations=["2014J"]))
    assert d.due and "2014J" in d.reasons[0]
    strict = RetrainPolicy(min_drifting_courses=2, on_new_data=False)
    assert not decide(RetrainSignals([4], [], ["2014J"]), strict).due
    assert decide(RetrainSignals([4, 5]), strict).due


def test_promotion_needs_at_least_the_current_score() -> None:
    assert should_promote({"mean_roc_auc": 0.80}, {"mean_roc_auc": 0.80})
    assert not should_promote({"mean_roc_auc": 0.79}, {"mean_roc_auc": 0.80})
    assert should_promote({"mean_roc_auc": 0.79}, {"mean_roc_auc": 0.80}, tolerance=0.02)
    assert should_promote({"mean_roc_auc": 0.5}, None)
    assert not should_promote({"mean_roc_auc": float("nan")}, {"mean_roc_auc": 0.8})


@needs_oulad
def test_new_presentations_come_from_the_current_versions_data(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.import_version(REPO / "models" / "pretrained" / "lstm_oulad")
    seen = json.loads((tmp_path / "v0001" / "data.json").read_text())
    assert new_presentations(OULAD_DIR, tmp_path) == []  # shipped: fitted on every one
    seen["train"]["presentations"] = ["2013B"]
    seen["validation"] = {"presentations": ["2013J"]}
    (tmp_path / "v0001" / "data.json").write_text(json.dumps(seen))
    assert new_presentations(OULAD_DIR, tmp_path) == ["2014B"]


@needs_oulad
def test_retrain_loop_trains_judges_on_the_newest_and_keeps_the_evidence(
    tmp_path: Path,
) -> None:
    from models.train import quick_config

    reg = Registry(tmp_path / "reg")
    shipped = reg.import_version(REPO / "models" / "pretrained" / "lstm_oulad")
    cfg = quick_config(
        max_students=150,
        epochs=1,
        hidden=8,
        time_budget_s=15.0,
        device="cpu",
        threads=1,
        cache_dir=tmp_path / "cache",
    )
    idle = run_retrain(OULAD_DIR, tmp_path / "reg", cfg, RetrainSignals())
    assert not idle["trained"] and reg.current_version() == shipped
    out = run_retrain(
        OULAD_DIR,
        tmp_path / "reg",
        cfg,
        RetrainSignals(drifting_courses=[3]),
    )
    cand = out["candidate"]
    assert out["trained"] and out["trained_on"] == ["2013B", "2013J"]
    assert out["judged_on"]["presentation"] == "2014B"
    evidence = reg.read_extra(cand, PROMOTION_FILE)
    assert evidence is not None and evidence["current_before"] == shipped
    cand_auc = evidence["candidate_score"]["mean_roc_auc"]
    cur_auc = evidence["current_score"]["mean_roc_auc"]
    assert evidence["promoted"] == (cand_auc >= cur_auc)
    assert reg.current_version() == (cand if evidence["promoted"] else shipped)
    # a one-epoch, 150-student model does not beat the shipped one: it stays out of service
    assert cur_auc > cand_auc and reg.current_version() == shipped
    # the trainer wrote the monitoring references with the version
    assert reg.read_extra(cand, "drift_reference.json")["weeks"]
    assert reg.read_extra(cand, "segments.json")["descriptions"]
    log = (tmp_path / "reg" / RETRAIN_LOG).read_text().splitlines()
    assert len(log) == 1 and json.loads(log[0])["candidate"] == cand
    # forced with a generous tolerance: promoted, and `current` moves
    out2 = run_retrain(
        OULAD_DIR, tmp_path / "reg", cfg, RetrainSignals(), force=True, tolerance=1.0
    )
    assert out2["promoted"] and reg.current_version() == out2["candidate"]

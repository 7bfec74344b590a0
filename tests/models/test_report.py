import json
from pathlib import Path

import numpy as np

from models.evaluate import CutoffPredictions, evaluate_models
from models.report import build_report, tpr_gap, write_report


def _metrics() -> dict:
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    mod = np.array(["AAA", "BBB", "CCC"] * 100)
    attrs = {"gender": np.array(["F", "M"] * 150), "disability": np.array(["N"] * 250 + ["Y"] * 50)}
    preds: dict = {"lstm": {}, "lightgbm": {}, "lightgbm+protected": {}}
    for i, d in enumerate((14, 28)):
        strong = np.clip(y * (0.3 + 0.2 * i) + rng.random(n) * 0.6, 0, 1)
        weak = np.clip(y * 0.35 + rng.random(n) * 0.6, 0, 1)
        preds["lstm"][d] = CutoffPredictions(y, strong, mod, attrs, y * 1.0, strong)
        preds["lightgbm"][d] = CutoffPredictions(y, weak, mod, attrs)
        preds["lightgbm+protected"][d] = CutoffPredictions(y, weak, mod, attrs)
    return evaluate_models(preds, target_precision=0.7)


def test_report_verdict_tables_and_plots(tmp_path: Path) -> None:
    metrics = _metrics()
    rep = build_report(
        metrics,
        primary="lstm",
        target_precision=0.7,
        thresholds={"medium": 0.5, "high": 0.7},
        meta={"validation": "2014B"},
        protected_pairs={"lightgbm+protected": "lightgbm"},
    )
    d14 = rep["primary_vs_reference"]["14"]
    assert d14["delta"] == d14["lstm"] - d14["lightgbm"]
    assert rep["primary_beats_reference_everywhere"] == all(
        v["delta"] > 0 for v in rep["primary_vs_reference"].values()
    )
    assert rep["protected_attributes"]["lightgbm+protected"]["28"]["delta"] == 0.0
    paths = write_report(rep, tmp_path)
    back = json.loads((tmp_path / "report.json").read_text())
    assert back["models"]["lstm"]["28"]["roc_auc"] == rep["models"]["lstm"]["28"]["roc_auc"]
    md = (tmp_path / "report.md").read_text()
    assert "| D | n | lstm | lightgbm | lightgbm+protected | lstm - lightgbm |" in md
    assert f"{d14['delta']:+.3f}" in md
    assert "### gender" in md and "What adding protected attributes changes" in md
    assert "medium: 0.500" in md
    for name in ("auc_by_cutoff", "reliability_lstm", "fairness_tpr"):
        png = paths[name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png.name})" in md


def test_tpr_gap_ignores_small_groups() -> None:
    res = {
        "fairness": {
            "g": {
                "a": {"n": 100, "tpr": 0.8},
                "b": {"n": 100, "tpr": 0.5},
                "tiny": {"n": 3, "tpr": 0.0},
            }
        }
    }
    assert abs(tpr_gap(res, "g") - 0.3) < 1e-12
    assert tpr_gap(res, "missing") is None

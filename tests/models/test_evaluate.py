import numpy as np
import pytest

from models.evaluate import (
    CutoffPredictions,
    binary_metrics,
    calibration,
    confusion_rates,
    evaluate_models,
    group_metrics,
    jsonable,
    pr_auc,
    regression_metrics,
    roc_auc,
    threshold_for_precision,
)


def test_auc_perfect_inverted_and_single_class() -> None:
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert pr_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert np.isnan(roc_auc(np.ones(3), np.array([0.1, 0.2, 0.3])))
    # one swapped pair out of four: AUC = 3/4
    assert roc_auc(y, np.array([0.1, 0.85, 0.8, 0.9])) == pytest.approx(0.75)


def test_confusion_rates_by_hand() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.2, 0.1, 0.1])
    r = confusion_rates(y, p, 0.5)  # tp=2 fp=1 fn=1 tn=4
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["fpr"] == pytest.approx(1 / 5)
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["accuracy"] == pytest.approx(6 / 8)
    assert np.isnan(confusion_rates(y, p, 0.95)["precision"])


def test_ece_known_value() -> None:
    # all predictions 0.25 in one bin, observed rate 0.75 -> ECE 0.5
    rel = calibration(np.array([1, 1, 1, 0]), np.full(4, 0.25), n_bins=4)
    assert rel.ece == pytest.approx(0.5)
    assert rel.counts == [0, 4, 0, 0]
    # two bins, each perfectly calibrated -> 0; risk 1.0 lands in the last bin
    y = np.array([0, 0, 1, 1])
    rel = calibration(y, np.array([0.0, 0.0, 1.0, 1.0]), n_bins=10)
    assert rel.ece == pytest.approx(0.0)
    assert rel.counts[-1] == 2


def test_threshold_for_precision_picks_lowest_reaching_target() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    # precisions at cuts: 1, 1, 2/3, 3/4, 3/5, 1/2
    assert threshold_for_precision(y, p, 1.0) == pytest.approx(0.8)
    assert threshold_for_precision(y, p, 0.75) == pytest.approx(0.6)
    assert threshold_for_precision(y, p, 0.5) == pytest.approx(0.4)
    assert threshold_for_precision(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.5) is None
    # ties are never split: both 0.9s flagged together -> precision 1/2
    assert threshold_for_precision(np.array([1, 0]), np.array([0.9, 0.9]), 0.8) is None


def test_regression_ignores_missing_targets() -> None:
    r = regression_metrics(np.array([0.5, 1.0, np.nan]), np.array([0.5, 0.5, 0.2]))
    assert r["n"] == 2
    assert r["mse"] == pytest.approx(0.125)
    assert regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))["r2"] == 1.0


def test_group_metrics_reports_each_group_and_unknown() -> None:
    y = np.array([1, 0, 1, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.3])
    g = ["F", "F", "M", "M", None, None]
    out = group_metrics(y, p, g, threshold=0.5)
    assert set(out) == {"F", "M", "unknown"}
    assert out["F"]["roc_auc"] == 1.0 and out["F"]["tpr"] == 1.0 and out["F"]["fpr"] == 0.0
    assert out["M"]["roc_auc"] == 0.0 and out["M"]["tpr"] == 0.0 and out["M"]["fpr"] == 1.0


def test_evaluate_models_side_by_side_is_json_clean() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.clip(y * 0.6 + rng.random(200) * 0.4, 0, 1)
    noise = rng.random(200)
    mod = np.array(["AAA", "BBB"] * 100)
    attrs = {"gender": np.array(["F", "M"] * 100)}
    preds = {
        "good": {14: CutoffPredictions(y, good, mod, attrs, y * 1.0, good)},
        "noise": {14: CutoffPredictions(y, noise, mod, attrs)},
    }
    res = evaluate_models(preds, target_precision=0.8)
    assert res["good"][14]["roc_auc"] > 0.95 > res["noise"][14]["roc_auc"]
    assert res["good"][14]["precision"] >= 0.8
    assert set(res["good"][14]["per_module"]) == {"AAA", "BBB"}
    assert "score" in res["good"][14] and "score" not in res["noise"][14]
    out = jsonable(res)
    assert out["good"]["14"]["fairness"]["gender"]["F"]["n"] == 100
    m = binary_metrics(np.ones(4), np.full(4, 0.5), 0.5)
    assert jsonable(m)["roc_auc"] is None


def test_recommended_thresholds_reach_their_precisions_pooled_over_cutoffs() -> None:
    from models.eval_pipeline import recommend_thresholds
    from models.registry import Thresholds

    mod = np.array(["AAA"] * 5)
    # pooled by risk: .95 .9 .85 .8 (all 1), .6 (0), .5 (1), .4 .3 .2 .1 (all 0)
    preds = {
        14: CutoffPredictions(np.array([1, 1, 0, 0, 0]), np.array([0.95, 0.9, 0.6, 0.2, 0.1]), mod),
        28: CutoffPredictions(np.array([1, 1, 1, 0, 0]), np.array([0.85, 0.8, 0.5, 0.4, 0.3]), mod),
    }
    th, info = recommend_thresholds(preds, 0.8, Thresholds(min_days=3, cooldown_days=5))
    # high: lowest threshold with precision >= 0.8 -> 0.5 (5 of 6 flagged are positive)
    assert th.high == pytest.approx(0.5)
    # medium: precision >= 0.65 -> 0.4 (5/7 = 0.71; 0.3 gives 5/8 = 0.625)
    assert th.medium == pytest.approx(0.4)
    assert th.rearm == pytest.approx(0.3)
    assert (th.min_days, th.cooldown_days) == (3, 5)
    assert info["per_cutoff_high"]["14"] == pytest.approx(0.9)
    unreachable = {14: CutoffPredictions(np.array([0, 1]), np.array([0.9, 0.1]), mod[:2])}
    th2, info2 = recommend_thresholds(unreachable, 0.8, Thresholds())
    assert (th2.high, th2.medium) == (Thresholds().high, Thresholds().medium)
    assert info2["reached"] == {"high": False, "medium": False}

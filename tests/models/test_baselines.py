import numpy as np
import pytest

from models.baselines import (
    LightGbmBaseline,
    LogisticBaseline,
    aggregate_features,
    aggregate_names,
    make_baseline,
)
from models.evaluate import roc_auc


def test_aggregates_read_nothing_after_the_cutoff() -> None:
    days = np.zeros((2, 30, 3), dtype=np.float32)
    days[0, 5, 0] = 2.0
    days[1, 20, 1] = 9.0  # after D=10: must be invisible
    static = np.array([[1.0], [0.0]], dtype=np.float32)
    x = aggregate_features(days, static, cutoff=10)
    names = aggregate_names(["a", "b", "c"], ["s"])
    assert x.shape == (2, len(names))
    col = dict(zip(names, x[0], strict=True))
    assert col["mean_a"] == pytest.approx(2 / 11)
    assert col["max_a"] == 2.0
    assert col["days_since_active"] == 5.0
    assert col["active_share"] == pytest.approx(1 / 11)
    assert col["s"] == 1.0
    assert col["since_a"] == 5.0 and col["since_b"] == 11.0  # never non-zero: D + 1
    assert col["meanactive_a"] == 2.0  # the mean over the one day it was non-zero
    other = dict(zip(names, x[1], strict=True))
    assert other["max_b"] == 0.0 and other["days_since_active"] == 11.0
    # changing the future changes nothing
    days[1, 20:, :] = 5.0
    assert np.array_equal(aggregate_features(days, static, cutoff=10), x)


def test_recent_windows_and_bad_shapes() -> None:
    days = np.zeros((1, 40, 1), dtype=np.float32)
    days[0, 30:36, 0] = 1.0
    x = aggregate_features(days, np.zeros((1, 0)), cutoff=35)
    col = dict(zip(aggregate_names(["a"], []), x[0], strict=True))
    assert col["mean7d_a"] == pytest.approx(6 / 7)
    assert col["active_days_7d"] == 6.0
    with pytest.raises(ValueError, match="N, T, n_day"):
        aggregate_features(np.zeros((3, 4)), np.zeros((3, 0)), 2)


@pytest.mark.parametrize("name", ["logreg", "lightgbm"])
def test_baselines_learn_a_signal(name: str) -> None:
    rng = np.random.default_rng(1)
    n = 600
    x = rng.normal(size=(n, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    model = make_baseline(name).fit(x[:400], y[:400])
    p = model.predict(x[400:])
    assert p.shape == (200,) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc(y[400:], p) > 0.85


def test_single_class_training_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="single class"):
        LogisticBaseline().fit(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("svm")
    assert LightGbmBaseline(n_estimators=5).fit(
        np.arange(40.0).reshape(20, 2), np.r_[np.zeros(10), np.ones(10)]
    ).importances().shape == (2,)

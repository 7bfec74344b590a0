"""Permutation importance and partial dependence on a model whose answer we know."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from models.features import FeatureSpec
from models.importance import partial_dependence, permutation_importance, top_features

SPEC = FeatureSpec(("clicks_total", "active", "day_index"), ("studied_credits",))


class OnlyClicks(nn.Module):
    """Risk falls with the running mean of clicks_total; nothing else matters."""

    def forward(self, x: torch.Tensor, static: torch.Tensor) -> SimpleNamespace:
        mean = x[..., 0].cumsum(1) / torch.arange(1, x.shape[1] + 1)
        return SimpleNamespace(risk=torch.sigmoid(2.0 - 2.0 * mean))


def _data(n: int = 300, t: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    level = rng.random(n) * 2
    x = np.zeros((n, t, 3), np.float32)
    x[:, :, 0] = level[:, None] + rng.normal(0, 0.1, (n, t))
    x[:, :, 1] = rng.random((n, t)) < 0.5
    x[:, :, 2] = np.arange(t) / 270
    label = (level + rng.normal(0, 0.3, n) < 1.0).astype(np.int64)
    return x, rng.random((n, 1)).astype(np.float32), label


def test_only_the_feature_the_model_uses_is_important() -> None:
    x, st, y = _data()
    imp = permutation_importance(
        OnlyClicks(), torch.device("cpu"), SPEC, x, st, y, np.full(len(x), 29), (7, 21)
    )
    for d in ("7", "21"):
        f = imp[d]["features"]
        assert f["clicks_total"]["auc_drop"] > 0.2 and f["clicks_total"]["mean_abs_change"] > 0.1
        for other in ("active", "day_index", "studied_credits"):
            assert f[other]["mean_abs_change"] == 0.0 and f[other]["auc_drop"] == 0.0
    assert top_features(imp, SPEC.day_features, n=1) == ["clicks_total"]


def test_partial_dependence_follows_the_model() -> None:
    x, st, _ = _data()
    pdp = partial_dependence(
        OnlyClicks(),
        torch.device("cpu"),
        SPEC,
        x,
        st,
        np.full(len(x), 29),
        (7,),
        ["clicks_total"],
        x,
    )
    curve = pdp["clicks_total"]["mean_risk"]["7"]
    grid = pdp["clicks_total"]["grid"]
    assert grid[0] == 0.0 and len(grid) >= 3
    assert all(a > b for a, b in itertools.pairwise(curve))  # more clicks, less risk
    assert abs(curve[0] - float(torch.sigmoid(torch.tensor(2.0)))) < 1e-4

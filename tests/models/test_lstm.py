"""Stepping day by day reproduces the whole-sequence forward pass (stream == training)."""

from __future__ import annotations

import pytest
import torch

from models.cnn import CnnRisk
from models.cnn_lstm import CnnLstmRisk
from models.lstm import LstmRisk


@pytest.mark.parametrize(
    "make",
    [
        lambda: LstmRisk(n_day=6, n_static=3, hidden=16),
        lambda: CnnLstmRisk(n_day=6, n_static=3, hidden=16, channels=5, kernel=4),
        lambda: LstmRisk(n_day=6, n_static=3, hidden=16, aggregates=True, head_hidden=8),
        lambda: CnnLstmRisk(n_day=6, n_static=3, hidden=16, kernel=3, aggregates=True),
        lambda: LstmRisk(
            n_day=6, n_static=3, hidden=16, aggregates=True, summaries=True, head_skip=True
        ),
        lambda: CnnLstmRisk(
            n_day=6,
            n_static=3,
            hidden=16,
            kernel=3,
            aggregates=True,
            summaries=True,
            head_skip=True,
        ),
        lambda: CnnRisk(n_day=6, n_static=3, hidden=16, kernel=4),
        lambda: CnnRisk(n_day=6, n_static=3, hidden=16, kernel=1, summaries=False),
    ],
    ids=[
        "lstm",
        "cnn_lstm",
        "lstm+agg",
        "cnn_lstm+agg",
        "lstm+summ",
        "cnn_lstm+summ",
        "cnn+summ",
        "cnn+agg",
    ],
)
def test_step_equals_forward(make) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(5, 30, 6)
    static = torch.randn(5, 3)
    with torch.no_grad():
        full = model(x, static)
        state = model.init_state(static)
        for t in range(x.shape[1]):
            state, out = model.step(state, x[:, t])
            for a, b in zip(out, full, strict=True):
                assert a.shape == (5,)
                torch.testing.assert_close(a, b[:, t], atol=1e-5, rtol=0)
    assert full.risk.shape == (5, 30)
    assert ((full.risk > 0) & (full.risk < 1)).all()
    # state tensors all carry the batch in dim 0 (the stream stores them per student)
    assert all(t.shape[0] == 5 for t in state.values())


def test_static_features_change_the_risk() -> None:
    torch.manual_seed(1)
    model = LstmRisk(n_day=4, n_static=2, hidden=8).eval()
    x = torch.zeros(2, 5, 4)
    static = torch.tensor([[0.0, 0.0], [3.0, -3.0]])
    with torch.no_grad():
        risk = model(x, static).risk
    assert not torch.allclose(risk[0], risk[1])

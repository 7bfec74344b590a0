"""The running aggregates: vectorised sequence == day-by-day recurrence, and their meaning."""

from __future__ import annotations

import math

import torch

from models.aggregates import aggregate_sequence, aggregate_state, aggregate_step


def _stepped(x: torch.Tensor, summaries: bool) -> torch.Tensor:
    state = aggregate_state(x[:, 0], x.shape[-1], summaries)
    out = []
    for t in range(x.shape[1]):
        state, feats = aggregate_step(state, x[:, t], summaries)
        out.append(feats)
    return torch.stack(out, dim=1)


def test_sequence_equals_steps_on_sparse_days() -> None:
    torch.manual_seed(0)
    # mostly-empty days, as in real activity logs, so recency and counts matter
    x = torch.rand(4, 120, 5) * (torch.rand(4, 120, 5) < 0.15)
    for summaries in (False, True):
        torch.testing.assert_close(
            aggregate_sequence(x, summaries), _stepped(x, summaries), atol=1e-5, rtol=1e-5
        )


def test_summaries_mean_when_active_and_recency() -> None:
    # one feature: a grade of 0.6 on day 2, 0.8 on day 5, nothing else, 10 days
    x = torch.zeros(1, 10, 1)
    x[0, 2, 0], x[0, 5, 0] = 0.6, 0.8
    out = aggregate_sequence(x, summaries=True)[0]  # [T, 7]: x, mean, ema7, ema28, max, nz, since
    assert out.shape == (10, 7)
    torch.testing.assert_close(out[9, 1], torch.tensor(1.4 / 10))  # mean over all days
    torch.testing.assert_close(out[9, 4], torch.tensor(0.8))  # running max
    torch.testing.assert_close(out[9, 5], torch.tensor(0.7))  # mean over graded days only
    norm = math.log1p(270.0)
    torch.testing.assert_close(out[9, 6], torch.tensor(math.log1p(4) / norm))  # 4 days since
    torch.testing.assert_close(out[5, 6], torch.tensor(0.0))
    torch.testing.assert_close(out[1, 6], torch.tensor(math.log1p(2) / norm))  # never: t + 1

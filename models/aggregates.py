"""Running aggregates of the day vectors, computed inside the models as plain recurrences.

They hand the recurrent layer (and, with ``head_skip``, the heads) the course-so-far summaries
the tabular baselines are built on, so the network need not learn to count over 200 steps.
Being recurrences without parameters they run identically one day at a time in the stream
(``aggregate_step``) and vectorised over whole sequences in training (``aggregate_sequence``);
a test checks that both give the same numbers.

Per day feature:
- base: today's value, the mean so far, exponential averages over about a week and a month;
- ``summaries`` adds the running maximum, the mean over the days the feature was non-zero
  (the average grade over graded days, clicks per active day) and how long ago it was last
  non-zero (log-scaled: "no quiz activity for 14 days").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from models.features import DAY_SCALE

ModelState = dict[str, Tensor]

#: decay rates of the running averages (about one week and one month)
EMA_RATES: tuple[float, ...] = (1.0 / 7.0, 1.0 / 28.0)
_RECENCY_NORM = math.log1p(DAY_SCALE)


def n_aggregate_inputs(n_day: int, summaries: bool = False) -> int:
    """Width of the aggregated input for ``n_day`` day features."""
    return n_day * (2 + len(EMA_RATES) + (3 if summaries else 0))


def aggregate_state(x0: Tensor, n_day: int, summaries: bool = False) -> ModelState:
    """Zero running aggregates for a batch (``x0`` gives batch size, dtype, device)."""
    b = x0.shape[0]
    state = {
        "agg_sum": x0.new_zeros(b, n_day),
        "agg_n": x0.new_zeros(b, 1),
        "ema": x0.new_zeros(b, len(EMA_RATES) * n_day),
    }
    if summaries:
        state.update(
            {
                "agg_max": x0.new_zeros(b, n_day),
                "agg_nz": x0.new_zeros(b, n_day),
                "agg_since": x0.new_zeros(b, n_day),
            }
        )
    return state


def aggregate_step(
    state: ModelState, x: Tensor, summaries: bool = False
) -> tuple[ModelState, Tensor]:
    """Advance the running aggregates by one day; returns the new state and the aggregated
    input [B, n_aggregate_inputs]."""
    total = state["agg_sum"] + x
    n = state["agg_n"] + 1.0
    prev = state["ema"].view(x.shape[0], len(EMA_RATES), -1)
    emas = [(1.0 - a) * prev[:, i] + a * x for i, a in enumerate(EMA_RATES)]
    ema = torch.stack(emas, dim=1).view(x.shape[0], -1)
    new = {"agg_sum": total, "agg_n": n, "ema": ema}
    parts = [x, total / n, ema]
    if summaries:
        nz = (x != 0).to(x.dtype)
        mx = torch.maximum(state["agg_max"], x)
        cnt = state["agg_nz"] + nz
        since = (state["agg_since"] + 1.0) * (1.0 - nz)
        new.update({"agg_max": mx, "agg_nz": cnt, "agg_since": since})
        parts += [mx, total / cnt.clamp_min(1.0), torch.log1p(since) / _RECENCY_NORM]
    return new, torch.cat(parts, dim=-1)


def _ema_matrix(T: int, rate: float, ref: Tensor) -> Tensor:
    """[T, T] weights with ema_t = sum_s W[t, s] x_s for the recurrence from zero."""
    t = torch.arange(T, device=ref.device, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    w = rate * torch.pow(torch.tensor(1.0 - rate, dtype=torch.float64), lag.clamp_min(0))
    return torch.where(lag >= 0, w, torch.zeros_like(w)).to(ref.dtype)


def aggregate_sequence(x: Tensor, summaries: bool = False) -> Tensor:
    """``aggregate_step`` over a whole sequence, vectorised: [B, T, n_day] -> [B, T, k]."""
    T = x.shape[1]
    total = torch.cumsum(x, dim=1)
    n = torch.arange(1, T + 1, device=x.device, dtype=x.dtype)[None, :, None]
    emas = [torch.einsum("ts,bsf->btf", _ema_matrix(T, a, x), x) for a in EMA_RATES]
    parts = [x, total / n, *emas]
    if summaries:
        nz = x != 0
        mx = torch.cummax(x, dim=1).values.clamp_min(0.0)
        cnt = torch.cumsum(nz.to(x.dtype), dim=1)
        t = torch.arange(T, device=x.device)[None, :, None]
        last = torch.cummax(torch.where(nz, t, torch.full_like(t, -1)), dim=1).values
        since = (t - last).to(x.dtype)  # never non-zero: t + 1, like the step from zero
        parts += [mx, total / cnt.clamp_min(1.0), torch.log1p(since) / _RECENCY_NORM]
    return torch.cat(parts, dim=-1)

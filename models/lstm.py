"""LstmRisk: an LSTM over daily feature vectors with static features fused at the input gate.

Static features are joined to every step's input, so the gates see who the student is as
well as what they did that day. One network serves training (``forward`` over whole
sequences) and streaming (``init_state`` + ``step`` one day at a time); both run the same
``nn.LSTM`` kernel, so the stream reproduces training outputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

ModelState = dict[str, Tensor]


class RiskOutputs(NamedTuple):
    """risk = P(Fail or Withdrawn); score = expected final score in [0, 1];
    engagement = P(active in the next 7 days). Each [B] from ``step``, [B, T] from ``forward``."""

    risk: Tensor
    score: Tensor
    engagement: Tensor


class RiskHeads(nn.Module):
    """Three heads over [hidden state, static features]; returns logits.

    With ``mid`` > 0 a small shared ReLU layer comes first, so the heads can combine who the
    student is with what the LSTM has seen non-linearly (a linear head only adds them).
    """

    def __init__(self, hidden: int, n_static: int, dropout: float, mid: int = 0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.mid = nn.Sequential(nn.Linear(hidden + n_static, mid), nn.ReLU()) if mid else None
        self.out = nn.Linear(mid or hidden + n_static, 3)

    def forward(self, h: Tensor, static: Tensor) -> Tensor:
        if h.dim() == 3:
            static = static.unsqueeze(1).expand(-1, h.shape[1], -1)
        z = torch.cat([self.drop(h), static], dim=-1)
        if self.mid is not None:
            z = self.mid(z)
        return self.out(z)


#: decay rates of the running averages (about one week and one month)
EMA_RATES: tuple[float, ...] = (1.0 / 7.0, 1.0 / 28.0)


def aggregate_state(x0: Tensor, n_day: int) -> ModelState:
    """Zero running aggregates for a batch (``x0`` gives batch size, dtype, device)."""
    b = x0.shape[0]
    return {
        "agg_sum": x0.new_zeros(b, n_day),
        "agg_n": x0.new_zeros(b, 1),
        "ema": x0.new_zeros(b, len(EMA_RATES) * n_day),
    }


def aggregate_step(state: ModelState, x: Tensor) -> tuple[ModelState, Tensor]:
    """Advance the running aggregates by one day; returns [x, mean so far, EMAs] [B, 4*n_day].

    They hand the recurrent layer the course-so-far and recent averages (what the tabular
    baselines are built on) so it need not learn to count over 200 steps; being plain
    recurrences they run identically in training and in the stream.
    """
    total = state["agg_sum"] + x
    n = state["agg_n"] + 1.0
    prev = state["ema"].view(x.shape[0], len(EMA_RATES), -1)
    emas = [(1.0 - a) * prev[:, i] + a * x for i, a in enumerate(EMA_RATES)]
    ema = torch.stack(emas, dim=1).view(x.shape[0], -1)
    new = {"agg_sum": total, "agg_n": n, "ema": ema}
    return new, torch.cat([x, total / n, ema], dim=-1)


def aggregate_sequence(x: Tensor) -> Tensor:
    """``aggregate_step`` over a whole sequence: x [B, T, n_day] -> [B, T, 4*n_day]."""
    state = aggregate_state(x[:, 0], x.shape[-1])
    out = []
    for t in range(x.shape[1]):
        state, feats = aggregate_step(state, x[:, t])
        out.append(feats)
    return torch.stack(out, dim=1)


def n_aggregate_inputs(n_day: int) -> int:
    return n_day * (2 + len(EMA_RATES))


def outputs_from_logits(logits: Tensor) -> RiskOutputs:
    p = torch.sigmoid(logits)
    return RiskOutputs(p[..., 0], p[..., 1], p[..., 2])


class LstmRisk(nn.Module):
    """LSTM risk model; ``kind`` names it in the registry."""

    kind = "lstm"

    def __init__(
        self,
        n_day: int,
        n_static: int,
        hidden: int = 128,
        dropout: float = 0.5,
        aggregates: bool = False,
        head_hidden: int = 0,
    ) -> None:
        super().__init__()
        self.n_day, self.n_static, self.hidden, self.dropout = n_day, n_static, hidden, dropout
        self.aggregates, self.head_hidden = aggregates, head_hidden
        n_in = n_aggregate_inputs(n_day) if aggregates else n_day
        self.in_drop = nn.Dropout(min(dropout, 0.2))
        self.lstm = nn.LSTM(n_in + n_static, hidden, batch_first=True)
        self.heads = RiskHeads(hidden, n_static, dropout, head_hidden)

    def config(self) -> dict[str, object]:
        """Constructor arguments, stored by the registry."""
        return {
            "n_day": self.n_day,
            "n_static": self.n_static,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "aggregates": self.aggregates,
            "head_hidden": self.head_hidden,
        }

    def init_state(self, static: Tensor) -> ModelState:
        b = static.shape[0]
        z = static.new_zeros(b, self.hidden)
        state = {"h": z, "c": z.clone(), "static": static}
        if self.aggregates:
            state.update(aggregate_state(static, self.n_day))
        return state

    def _inputs(self, x: Tensor, static: Tensor) -> Tensor:
        if x.dim() == 3:
            static = static.unsqueeze(1).expand(-1, x.shape[1], -1)
        return self.in_drop(torch.cat([x, static], dim=-1))

    def step_logits(self, state: ModelState, x: Tensor) -> tuple[ModelState, Tensor]:
        static = state["static"]
        new: ModelState = {}
        if self.aggregates:
            new, x = aggregate_step(state, x)
        inp = self._inputs(x, static).unsqueeze(1)
        out, (h, c) = self.lstm(inp, (state["h"].unsqueeze(0), state["c"].unsqueeze(0)))
        new.update({"h": h.squeeze(0), "c": c.squeeze(0), "static": static})
        return new, self.heads(out[:, 0], static)

    def step(self, state: ModelState, x: Tensor) -> tuple[ModelState, RiskOutputs]:
        """Advance one day: x [B, n_day] -> new state and outputs [B]."""
        new, logits = self.step_logits(state, x)
        return new, outputs_from_logits(logits)

    def logits(self, x: Tensor, static: Tensor) -> Tensor:
        """Training path: x [B, T, n_day], static [B, n_static] -> logits [B, T, 3]."""
        if self.aggregates:
            x = aggregate_sequence(x)
        out, _ = self.lstm(self._inputs(x, static))
        return self.heads(out, static)

    def forward(self, x: Tensor, static: Tensor) -> RiskOutputs:
        """Outputs after every day: each field [B, T]."""
        return outputs_from_logits(self.logits(x, static))

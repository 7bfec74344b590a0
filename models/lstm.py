"""LstmRisk: an LSTM over daily feature vectors with static features fused at the input gate.

Static features are joined to every step's input, so the gates see who the student is as
well as what they did that day. One network serves training (``forward`` over whole
sequences) and streaming (``init_state`` + ``step`` one day at a time); both run the same
``nn.LSTM`` kernel, so the stream reproduces training outputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.aggregates import (
    ModelState,
    aggregate_sequence,
    aggregate_state,
    aggregate_step,
    n_aggregate_inputs,
)

__all__ = [
    "LstmRisk",
    "ModelState",
    "RecurrentRisk",
    "RiskHeads",
    "RiskOutputs",
    "outputs_from_logits",
]


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

    def __init__(
        self, hidden: int, n_static: int, dropout: float, mid: int = 0, n_skip: int = 0
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        n_in = hidden + n_skip + n_static
        self.mid = nn.Sequential(nn.Linear(n_in, mid), nn.ReLU()) if mid else None
        self.out = nn.Linear(mid or n_in, 3)

    def forward(self, h: Tensor, static: Tensor, skip: Tensor | None = None) -> Tensor:
        """``skip``: inputs the heads see directly, beside the hidden state (same shape
        prefix as ``h``)."""
        if h.dim() == 3:
            static = static.unsqueeze(1).expand(-1, h.shape[1], -1)
        parts = [self.drop(h)] if skip is None else [self.drop(h), skip]
        z = torch.cat([*parts, static], dim=-1)
        if self.mid is not None:
            z = self.mid(z)
        return self.out(z)


def outputs_from_logits(logits: Tensor) -> RiskOutputs:
    p = torch.sigmoid(logits)
    return RiskOutputs(p[..., 0], p[..., 1], p[..., 2])


class RecurrentRisk(nn.Module):
    """What the LSTM and the CNN-LSTM share: running aggregates, the LSTM with static features
    fused into its input, the heads, and the step/forward plumbing. ``extra_in`` widens the
    LSTM input for features a subclass computes per day (the CNN's convolution)."""

    kind = ""

    def __init__(
        self,
        n_day: int,
        n_static: int,
        hidden: int,
        dropout: float,
        aggregates: bool,
        head_hidden: int,
        summaries: bool,
        head_skip: bool,
        extra_in: int = 0,
    ) -> None:
        super().__init__()
        if (summaries or head_skip) and not aggregates:
            raise ValueError("summaries and head_skip need aggregates=True")
        self.n_day, self.n_static, self.hidden, self.dropout = n_day, n_static, hidden, dropout
        self.aggregates, self.head_hidden = aggregates, head_hidden
        self.summaries, self.head_skip = summaries, head_skip
        n_x = n_aggregate_inputs(n_day, summaries) if aggregates else n_day
        self.in_drop = nn.Dropout(min(dropout, 0.2))
        self.lstm = nn.LSTM(extra_in + n_x + n_static, hidden, batch_first=True)
        self.heads = RiskHeads(hidden, n_static, dropout, head_hidden, n_x if head_skip else 0)

    def config(self) -> dict[str, object]:
        """Constructor arguments, stored by the registry."""
        return {
            "n_day": self.n_day,
            "n_static": self.n_static,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "aggregates": self.aggregates,
            "head_hidden": self.head_hidden,
            "summaries": self.summaries,
            "head_skip": self.head_skip,
        }

    def init_state(self, static: Tensor) -> ModelState:
        b = static.shape[0]
        z = static.new_zeros(b, self.hidden)
        state = {"h": z, "c": z.clone(), "static": static}
        if self.aggregates:
            state.update(aggregate_state(static, self.n_day, self.summaries))
        return state

    def _inputs(self, x: Tensor, static: Tensor, extra: Tensor | None) -> Tensor:
        """LSTM input [..., extra, x, static]; ``extra`` goes through a ReLU first."""
        if x.dim() == 3:
            static = static.unsqueeze(1).expand(-1, x.shape[1], -1)
        parts = [x, static] if extra is None else [F.relu(extra), x, static]
        return self.in_drop(torch.cat(parts, dim=-1))

    def _step(
        self, state: ModelState, x: Tensor, extra: Tensor | None = None
    ) -> tuple[ModelState, Tensor]:
        """One day through aggregates, LSTM and heads: x [B, n_day] -> (state, logits [B, 3])."""
        static = state["static"]
        new: ModelState = {}
        if self.aggregates:
            new, x = aggregate_step(state, x, self.summaries)
        inp = self._inputs(x, static, extra).unsqueeze(1)
        out, (h, c) = self.lstm(inp, (state["h"].unsqueeze(0), state["c"].unsqueeze(0)))
        new.update({"h": h.squeeze(0), "c": c.squeeze(0), "static": static})
        return new, self.heads(out[:, 0], static, x if self.head_skip else None)

    def _sequence(self, x: Tensor, static: Tensor, extra: Tensor | None = None) -> Tensor:
        """Whole sequences: x [B, T, n_day] -> logits [B, T, 3]."""
        if self.aggregates:
            x = aggregate_sequence(x, self.summaries)
        out, _ = self.lstm(self._inputs(x, static, extra))
        return self.heads(out, static, x if self.head_skip else None)

    def step_logits(self, state: ModelState, x: Tensor) -> tuple[ModelState, Tensor]:
        return self._step(state, x)

    def logits(self, x: Tensor, static: Tensor) -> Tensor:
        """Training path: x [B, T, n_day], static [B, n_static] -> logits [B, T, 3]."""
        return self._sequence(x, static)

    def step(self, state: ModelState, x: Tensor) -> tuple[ModelState, RiskOutputs]:
        """Advance one day: x [B, n_day] -> new state and outputs [B]."""
        new, logits = self.step_logits(state, x)
        return new, outputs_from_logits(logits)

    def forward(self, x: Tensor, static: Tensor) -> RiskOutputs:
        """Outputs after every day: each field [B, T]."""
        return outputs_from_logits(self.logits(x, static))


class LstmRisk(RecurrentRisk):
    """LSTM risk model; ``kind`` names it in the registry.

    ``aggregates`` feeds the LSTM running averages besides the day vector, ``summaries`` adds
    running max, mean-when-active and recency (see ``models.aggregates``), ``head_skip``
    lets the heads read those aggregates directly (a wide-and-deep skip: the LSTM then only
    has to add what the summaries miss).
    """

    kind = "lstm"

    def __init__(
        self,
        n_day: int,
        n_static: int,
        hidden: int = 128,
        dropout: float = 0.5,
        aggregates: bool = False,
        head_hidden: int = 0,
        summaries: bool = False,
        head_skip: bool = False,
    ) -> None:
        super().__init__(
            n_day, n_static, hidden, dropout, aggregates, head_hidden, summaries, head_skip
        )

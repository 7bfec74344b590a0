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
    """Three heads over [hidden state, static features]; returns logits."""

    def __init__(self, hidden: int, n_static: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden + n_static, 3)

    def forward(self, h: Tensor, static: Tensor) -> Tensor:
        if h.dim() == 3:
            static = static.unsqueeze(1).expand(-1, h.shape[1], -1)
        return self.out(torch.cat([self.drop(h), static], dim=-1))


def outputs_from_logits(logits: Tensor) -> RiskOutputs:
    p = torch.sigmoid(logits)
    return RiskOutputs(p[..., 0], p[..., 1], p[..., 2])


class LstmRisk(nn.Module):
    """LSTM risk model; ``kind`` names it in the registry."""

    kind = "lstm"

    def __init__(self, n_day: int, n_static: int, hidden: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.n_day, self.n_static, self.hidden, self.dropout = n_day, n_static, hidden, dropout
        self.in_drop = nn.Dropout(min(dropout, 0.2))
        self.lstm = nn.LSTM(n_day + n_static, hidden, batch_first=True)
        self.heads = RiskHeads(hidden, n_static, dropout)

    def config(self) -> dict[str, object]:
        """Constructor arguments, stored by the registry."""
        return {
            "n_day": self.n_day,
            "n_static": self.n_static,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }

    def init_state(self, static: Tensor) -> ModelState:
        b = static.shape[0]
        z = static.new_zeros(b, self.hidden)
        return {"h": z, "c": z.clone(), "static": static}

    def _inputs(self, x: Tensor, static: Tensor) -> Tensor:
        if x.dim() == 3:
            static = static.unsqueeze(1).expand(-1, x.shape[1], -1)
        return self.in_drop(torch.cat([x, static], dim=-1))

    def step_logits(self, state: ModelState, x: Tensor) -> tuple[ModelState, Tensor]:
        static = state["static"]
        inp = self._inputs(x, static).unsqueeze(1)
        out, (h, c) = self.lstm(inp, (state["h"].unsqueeze(0), state["c"].unsqueeze(0)))
        new = {"h": h.squeeze(0), "c": c.squeeze(0), "static": static}
        return new, self.heads(out[:, 0], static)

    def step(self, state: ModelState, x: Tensor) -> tuple[ModelState, RiskOutputs]:
        """Advance one day: x [B, n_day] -> new state and outputs [B]."""
        new, logits = self.step_logits(state, x)
        return new, outputs_from_logits(logits)

    def logits(self, x: Tensor, static: Tensor) -> Tensor:
        """Training path: x [B, T, n_day], static [B, n_static] -> logits [B, T, 3]."""
        out, _ = self.lstm(self._inputs(x, static))
        return self.heads(out, static)

    def forward(self, x: Tensor, static: Tensor) -> RiskOutputs:
        """Outputs after every day: each field [B, T]."""
        return outputs_from_logits(self.logits(x, static))

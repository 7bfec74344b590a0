"""CnnLstmRisk: a causal Conv1d over the day x activity map, then the LSTM (CNN-LSTM hybrid).

The convolution looks back ``kernel`` days only (left zero padding), so it never sees the
future and the stream can run it one day at a time: the state keeps the last kernel-1 day
vectors (``win``), which start as zeros exactly like the padding in ``forward``.
"""

from __future__ import annotations

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
from models.lstm import RiskHeads, RiskOutputs, outputs_from_logits


class CnnLstmRisk(nn.Module):
    kind = "cnn_lstm"

    def __init__(
        self,
        n_day: int,
        n_static: int,
        hidden: int = 128,
        dropout: float = 0.5,
        channels: int = 32,
        kernel: int = 7,
        aggregates: bool = False,
        head_hidden: int = 0,
        summaries: bool = False,
        head_skip: bool = False,
    ) -> None:
        super().__init__()
        if kernel < 1:
            raise ValueError("kernel must be >= 1")
        if (summaries or head_skip) and not aggregates:
            raise ValueError("summaries and head_skip need aggregates=True")
        self.n_day, self.n_static, self.hidden, self.dropout = n_day, n_static, hidden, dropout
        self.channels, self.kernel, self.aggregates = channels, kernel, aggregates
        self.head_hidden, self.summaries, self.head_skip = head_hidden, summaries, head_skip
        self.conv = nn.Conv1d(n_day, channels, kernel)
        self.in_drop = nn.Dropout(min(dropout, 0.2))
        n_x = n_aggregate_inputs(n_day, summaries) if aggregates else n_day
        self.lstm = nn.LSTM(channels + n_x + n_static, hidden, batch_first=True)
        self.heads = RiskHeads(hidden, n_static, dropout, head_hidden, n_x if head_skip else 0)

    def config(self) -> dict[str, object]:
        return {
            "n_day": self.n_day,
            "n_static": self.n_static,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "channels": self.channels,
            "kernel": self.kernel,
            "aggregates": self.aggregates,
            "head_hidden": self.head_hidden,
            "summaries": self.summaries,
            "head_skip": self.head_skip,
        }

    def init_state(self, static: Tensor) -> ModelState:
        b = static.shape[0]
        z = static.new_zeros(b, self.hidden)
        win = static.new_zeros(b, self.kernel - 1, self.n_day)
        state = {"h": z, "c": z.clone(), "static": static, "win": win}
        if self.aggregates:
            state.update(aggregate_state(static, self.n_day, self.summaries))
        return state

    def _fuse(self, conv: Tensor, x: Tensor, static: Tensor) -> Tensor:
        """conv [B, T, C], x [B, T, n_day] -> LSTM input [B, T, C + n_day + n_static]."""
        s = static.unsqueeze(1).expand(-1, x.shape[1], -1)
        return self.in_drop(torch.cat([F.relu(conv), x, s], dim=-1))

    def logits(self, x: Tensor, static: Tensor) -> Tensor:
        """x [B, T, n_day] -> logits [B, T, 3]."""
        padded = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        conv = self.conv(padded).transpose(1, 2)
        if self.aggregates:
            x = aggregate_sequence(x, self.summaries)
        out, _ = self.lstm(self._fuse(conv, x, static))
        return self.heads(out, static, x if self.head_skip else None)

    def forward(self, x: Tensor, static: Tensor) -> RiskOutputs:
        return outputs_from_logits(self.logits(x, static))

    def step_logits(self, state: ModelState, x: Tensor) -> tuple[ModelState, Tensor]:
        static = state["static"]
        window = torch.cat([state["win"], x.unsqueeze(1)], dim=1)  # [B, k, n_day]
        conv = self.conv(window.transpose(1, 2)).transpose(1, 2)  # [B, 1, C]
        new: ModelState = {}
        if self.aggregates:
            new, x = aggregate_step(state, x, self.summaries)
        inp = self._fuse(conv, x.unsqueeze(1), static)
        out, (h, c) = self.lstm(inp, (state["h"].unsqueeze(0), state["c"].unsqueeze(0)))
        new.update({"h": h.squeeze(0), "c": c.squeeze(0), "static": static, "win": window[:, 1:]})
        return new, self.heads(out[:, 0], static, x if self.head_skip else None)

    def step(self, state: ModelState, x: Tensor) -> tuple[ModelState, RiskOutputs]:
        new, logits = self.step_logits(state, x)
        return new, outputs_from_logits(logits)

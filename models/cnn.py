"""CnnRisk: the CNN-LSTM without its LSTM, for the ablation (what does recurrence add?).

A causal Conv1d looks back ``kernel`` days; what lies further back reaches the heads only
through the parameter-free running aggregates (``models.aggregates``), which the heads read
directly with the static features (``head_skip``; without it the model sees one week).
Like the other models it steps one day at a time for the stream (the state keeps the last
kernel-1 day vectors) and equals ``forward`` (tested).
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


class CnnRisk(nn.Module):
    kind = "cnn"

    def __init__(
        self,
        n_day: int,
        n_static: int,
        hidden: int = 128,
        dropout: float = 0.5,
        aggregates: bool = True,
        head_hidden: int = 0,
        summaries: bool = True,
        head_skip: bool = True,
        kernel: int = 7,
    ) -> None:
        super().__init__()
        if kernel < 1:
            raise ValueError("kernel must be >= 1")
        if summaries and not aggregates:
            raise ValueError("summaries need aggregates=True")
        self.n_day, self.n_static, self.hidden, self.dropout = n_day, n_static, hidden, dropout
        self.aggregates, self.head_hidden, self.summaries = aggregates, head_hidden, summaries
        self.head_skip, self.kernel = head_skip, kernel
        n_x = n_aggregate_inputs(n_day, summaries) if aggregates and head_skip else 0
        self.conv = nn.Conv1d(n_day, hidden, kernel)  # ``hidden`` channels
        self.heads = RiskHeads(hidden, n_static, dropout, head_hidden, n_x)

    def config(self) -> dict[str, object]:
        return {
            "n_day": self.n_day,
            "n_static": self.n_static,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "aggregates": self.aggregates,
            "head_hidden": self.head_hidden,
            "summaries": self.summaries,
            "head_skip": self.head_skip,
            "kernel": self.kernel,
        }

    def init_state(self, static: Tensor) -> ModelState:
        state: ModelState = {
            "static": static,
            "win": static.new_zeros(static.shape[0], self.kernel - 1, self.n_day),
        }
        if self.aggregates:
            state.update(aggregate_state(static, self.n_day, self.summaries))
        return state

    def logits(self, x: Tensor, static: Tensor) -> Tensor:
        """x [B, T, n_day] -> logits [B, T, 3]."""
        conv = F.relu(self.conv(F.pad(x.transpose(1, 2), (self.kernel - 1, 0)))).transpose(1, 2)
        agg = aggregate_sequence(x, self.summaries) if self.aggregates else None
        return self.heads(conv, static, agg if self.head_skip else None)

    def step_logits(self, state: ModelState, x: Tensor) -> tuple[ModelState, Tensor]:
        window = torch.cat([state["win"], x.unsqueeze(1)], dim=1)  # [B, k, n_day]
        conv = F.relu(self.conv(window.transpose(1, 2))[..., 0])
        new: ModelState = {}
        agg = None
        if self.aggregates:
            new, agg = aggregate_step(state, x, self.summaries)
        new.update({"static": state["static"], "win": window[:, 1:]})
        return new, self.heads(conv, state["static"], agg if self.head_skip else None)

    def step(self, state: ModelState, x: Tensor) -> tuple[ModelState, RiskOutputs]:
        new, logits = self.step_logits(state, x)
        return new, outputs_from_logits(logits)

    def forward(self, x: Tensor, static: Tensor) -> RiskOutputs:
        return outputs_from_logits(self.logits(x, static))

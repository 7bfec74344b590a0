"""CnnLstmRisk: a causal Conv1d over the day x activity map, then the LSTM (CNN-LSTM hybrid).

The convolution looks back ``kernel`` days only (left zero padding), so it never sees the
future and the stream can run it one day at a time: the state keeps the last kernel-1 day
vectors (``win``), which start as zeros exactly like the padding in ``forward``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.aggregates import ModelState
from models.lstm import RecurrentRisk


class CnnLstmRisk(RecurrentRisk):
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
        if kernel < 1:
            raise ValueError("kernel must be >= 1")
        super().__init__(
            n_day,
            n_static,
            hidden,
            dropout,
            aggregates,
            head_hidden,
            summaries,
            head_skip,
            extra_in=channels,
        )
        self.channels, self.kernel = channels, kernel
        self.conv = nn.Conv1d(n_day, channels, kernel)

    def config(self) -> dict[str, object]:
        return {**super().config(), "channels": self.channels, "kernel": self.kernel}

    def init_state(self, static: Tensor) -> ModelState:
        state = super().init_state(static)
        state["win"] = static.new_zeros(static.shape[0], self.kernel - 1, self.n_day)
        return state

    def logits(self, x: Tensor, static: Tensor) -> Tensor:
        """x [B, T, n_day] -> logits [B, T, 3]."""
        padded = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return self._sequence(x, static, self.conv(padded).transpose(1, 2))

    def step_logits(self, state: ModelState, x: Tensor) -> tuple[ModelState, Tensor]:
        window = torch.cat([state["win"], x.unsqueeze(1)], dim=1)  # [B, k, n_day]
        conv = self.conv(window.transpose(1, 2))[..., 0]  # [B, C]
        new, logits = self._step(state, x, conv)
        new["win"] = window[:, 1:]
        return new, logits

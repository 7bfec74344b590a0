"""EnsembleRisk: several independently trained risk models behind the one step API.

Members differ only in their seed (initial weights, batch order, held-out students). Their
logits are averaged, which cuts the variance a single network carries into a new
presentation; on OULAD the gain was largest at the late cut-off days, where one network
is closest to the per-day LightGBM. The stream sees one model: ``init_state`` returns one
flat state dict (member ``i``'s tensors under ``e{i}_<name>``), ``step`` advances every
member, so Redis state, hot reload and explanations work unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from models.aggregates import ModelState
from models.lstm import RiskOutputs, outputs_from_logits


def _prefix(i: int) -> str:
    return f"e{i}_"


class EnsembleRisk(nn.Module):
    """Mean of the members' logits; ``members`` are registry entries {"kind", "config"}."""

    kind = "ensemble"

    def __init__(self, members: list[dict[str, Any]]) -> None:
        super().__init__()
        from models.registry import model_class

        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(model_class(str(m["kind"]))(**m["config"]) for m in members)
        self._specs = [{"kind": str(m["kind"]), "config": dict(m["config"])} for m in members]

    @classmethod
    def of(cls, models: list[nn.Module]) -> EnsembleRisk:
        """Wrap trained models (their weights are copied in)."""
        ens = cls([{"kind": m.kind, "config": m.config()} for m in models])  # type: ignore[operator]
        for dst, src in zip(ens.members, models, strict=True):
            dst.load_state_dict(src.state_dict())
        return ens

    def config(self) -> dict[str, object]:
        return {"members": self._specs}

    def init_state(self, static: Tensor) -> ModelState:
        state: ModelState = {}
        for i, m in enumerate(self.members):
            for k, v in m.init_state(static).items():  # type: ignore[operator]
                state[_prefix(i) + k] = v
        return state

    def _member_state(self, state: ModelState, i: int) -> ModelState:
        p = _prefix(i)
        return {k[len(p) :]: v for k, v in state.items() if k.startswith(p)}

    def step_logits(self, state: ModelState, x: Tensor) -> tuple[ModelState, Tensor]:
        new: ModelState = {}
        logits = []
        for i, m in enumerate(self.members):
            st, lg = m.step_logits(self._member_state(state, i), x)  # type: ignore[operator]
            new.update({_prefix(i) + k: v for k, v in st.items()})
            logits.append(lg)
        return new, torch.stack(logits).mean(dim=0)

    def step(self, state: ModelState, x: Tensor) -> tuple[ModelState, RiskOutputs]:
        """Advance one day: x [B, n_day] -> new state and outputs [B]."""
        new, logits = self.step_logits(state, x)
        return new, outputs_from_logits(logits)

    def logits(self, x: Tensor, static: Tensor) -> Tensor:
        """x [B, T, n_day], static [B, n_static] -> mean logits [B, T, 3]."""
        return torch.stack([m.logits(x, static) for m in self.members]).mean(dim=0)  # type: ignore[operator]

    def forward(self, x: Tensor, static: Tensor) -> RiskOutputs:
        return outputs_from_logits(self.logits(x, static))

"""Helpers for other parts' tests: publish a small model in well under a second."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from models.features import DEFAULT_SPEC, FeatureSpec
from models.registry import Registry, Thresholds


def tiny_model(
    registry_root: Path,
    *,
    kind: str = "lstm",
    hidden: int = 8,
    seed: int = 0,
    constant_risk: float | None = None,
    aggregates: bool = True,
    summaries: bool = True,
    spec: FeatureSpec = DEFAULT_SPEC,
    thresholds: Thresholds | None = None,
) -> str:
    """Publish a small randomly initialised model into ``registry_root`` and make it current.

    ``constant_risk`` pins the risk head to that probability for every input (zero weights,
    bias = logit), so stream/alert tests can choose whether alerts fire. ``aggregates`` and
    ``summaries`` match the trainer's defaults (the state then also holds the running
    aggregates, and the heads read them). Returns the version.
    """
    from models.registry import model_class

    torch.manual_seed(seed)
    cls = model_class(kind)
    model = cls(  # type: ignore[call-arg]
        n_day=spec.n_day,
        n_static=spec.n_static,
        hidden=hidden,
        aggregates=aggregates,
        summaries=summaries and aggregates,
        head_skip=summaries and aggregates,
    )
    if constant_risk is not None:
        p = min(max(constant_risk, 1e-6), 1 - 1e-6)
        out = model.get_submodule("heads.out")
        assert isinstance(out, torch.nn.Linear)
        with torch.no_grad():
            out.weight[0].zero_()
            out.bias[0] = math.log(p / (1 - p))
    model.eval()
    return Registry(registry_root).publish(
        model,
        spec,
        thresholds or Thresholds(),
        metrics={"note": "tiny untrained test model"},
        data_summary={"source": "models.testing.tiny_model", "n_train": 0},
        notes="test model",
    )

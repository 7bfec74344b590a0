"""EnsembleRisk: one step API over several members; the registry stores and reloads it."""

from __future__ import annotations

from pathlib import Path

import torch

from models.ensemble import EnsembleRisk
from models.features import DEFAULT_SPEC
from models.lstm import LstmRisk
from models.registry import Registry, Thresholds


def _members(n_day: int, n_static: int) -> list[LstmRisk]:
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append(
            LstmRisk(
                n_day=n_day,
                n_static=n_static,
                hidden=8,
                aggregates=True,
                summaries=True,
                head_skip=True,
                head_hidden=4,
            ).eval()
        )
    return out


def test_logits_are_the_members_mean_and_step_equals_forward() -> None:
    members = _members(5, 3)
    ens = EnsembleRisk.of(members).eval()
    x = torch.rand(4, 25, 5) * (torch.rand(4, 25, 5) < 0.3)
    static = torch.rand(4, 3)
    with torch.no_grad():
        want = (members[0].logits(x, static) + members[1].logits(x, static)) / 2
        torch.testing.assert_close(ens.logits(x, static), want)
        full = ens(x, static)
        state = ens.init_state(static)
        assert {k.split("_", 1)[0] for k in state} == {"e0", "e1"}
        for t in range(x.shape[1]):
            state, out = ens.step(state, x[:, t])
            torch.testing.assert_close(out.risk, full.risk[:, t], atol=1e-5, rtol=0)
    assert all(v.shape[0] == 4 for v in state.values())  # batch first, as the stream stores it


def test_registry_round_trip(tmp_path: Path) -> None:
    ens = EnsembleRisk.of(_members(DEFAULT_SPEC.n_day, DEFAULT_SPEC.n_static)).eval()
    reg = Registry(tmp_path)
    version = reg.publish(ens, DEFAULT_SPEC, Thresholds(), {}, {})
    loaded = reg.load(version)
    assert loaded.kind == "ensemble" and isinstance(loaded.model, EnsembleRisk)
    x = torch.rand(2, 10, DEFAULT_SPEC.n_day)
    s = torch.rand(2, DEFAULT_SPEC.n_static)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, s).risk, ens(x, s).risk)

"""Registry: versioned publish, current pointer, reload, refusal of a spec mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.features import DEFAULT_SPEC
from models.registry import Registry, RegistryError, SpecMismatchError, Thresholds
from models.testing import tiny_model


def test_publish_load_roundtrip(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    assert reg.current_version() is None
    with pytest.raises(RegistryError, match="riskstream train"):
        reg.load()
    v1 = tiny_model(tmp_path, seed=1)
    v2 = tiny_model(tmp_path, kind="cnn_lstm", seed=2)
    assert (v1, v2) == ("v0001", "v0002")
    assert reg.current_version() == "v0002"
    loaded = reg.load()
    assert loaded.version == "v0002" and loaded.kind == "cnn_lstm"
    assert loaded.spec.hash() == DEFAULT_SPEC.hash()
    assert not loaded.model.training
    reg.set_current(v1)
    first = reg.load()
    assert first.version == "v0001" and first.thresholds == Thresholds()
    # weights survive the round trip exactly
    again = reg.load("v0001")
    for a, b in zip(
        first.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    listed = reg.versions()
    assert [d["version"] for d in listed] == ["v0001", "v0002"]
    assert [d["current"] for d in listed] == [True, False]
    with pytest.raises(RegistryError, match="not in"):
        reg.set_current("v0009")


def test_constant_risk_model(tmp_path: Path) -> None:
    v = tiny_model(tmp_path, constant_risk=0.9)
    m = Registry(tmp_path).load(v)
    static = torch.zeros(3, DEFAULT_SPEC.n_static)
    state = m.model.init_state(static)  # type: ignore[operator]
    _, out = m.model.step(state, torch.rand(3, DEFAULT_SPEC.n_day))  # type: ignore[operator]
    torch.testing.assert_close(out.risk, torch.full((3,), 0.9), atol=1e-5, rtol=0)
    assert m.thresholds.level(0.9).value == "high"


def test_load_refuses_spec_mismatch(tmp_path: Path) -> None:
    v = tiny_model(tmp_path)
    spec_path = tmp_path / v / "spec.json"
    doc = json.loads(spec_path.read_text())
    doc["hash"] = "0" * 64  # trained by a featurizer that computed something else
    spec_path.write_text(json.dumps(doc))
    with pytest.raises(SpecMismatchError, match="retrain"):
        Registry(tmp_path).load(v)
    v2 = tiny_model(tmp_path)
    with pytest.raises(SpecMismatchError, match="configured"):
        Registry(tmp_path).load(v2, expected_spec=DEFAULT_SPEC.with_protected())


def test_thresholds_validate() -> None:
    with pytest.raises(ValueError, match="rearm <= medium"):
        Thresholds(medium=0.8, high=0.5)


def test_shipped_model_imports_loads_and_ranks_students(tmp_path: Path) -> None:
    """The model the demo uses when the registry is empty: it loads under this featurizer, and
    a student who stops working scores higher than one who keeps working."""
    import numpy as np

    from models.pretrained import SHIPPED

    reg = Registry(tmp_path)
    version = reg.import_version(SHIPPED)
    assert reg.current_version() == version == "v0001"
    loaded = reg.load(version)
    meta = json.loads((tmp_path / version / "meta.json").read_text())
    assert meta["version"] == version and meta["imported_from"] == str(SHIPPED)
    names = list(loaded.spec.day_features)
    days = 60
    busy = np.zeros((days, len(names)), np.float32)
    busy[:, names.index("active")] = 1.0
    busy[:, names.index("clicks_total")] = np.log1p(40.0)
    busy[:, names.index("clicks_content")] = np.log1p(30.0)
    busy[:, names.index("day_index")] = np.arange(days) / 270
    quit_ = busy.copy()
    quit_[20:, [names.index(n) for n in names if n.startswith("clicks") or n == "active"]] = 0.0
    x = torch.from_numpy(np.stack([busy, quit_]))
    static = torch.zeros((2, loaded.spec.n_static))
    with torch.inference_mode():
        risk = loaded.model(x, static).risk[:, -1]
    assert risk[1] > risk[0] + 0.1
    with pytest.raises(RegistryError, match="missing"):
        reg.import_version(tmp_path / "nothing-here")

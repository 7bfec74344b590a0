"""Extra JSON files of a registry version (monitoring references, promotion evidence)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import Registry, RegistryError
from models.testing import tiny_model


def test_attach_and_read_extra_files(tmp_path: Path) -> None:
    v = tiny_model(tmp_path)
    reg = Registry(tmp_path)
    assert reg.read_extra(v, "drift_reference.json") is None
    reg.attach(v, "drift_reference.json", {"weeks": {}})
    assert reg.read_extra(v, "drift_reference.json") == {"weeks": {}}
    reg.attach(v, "drift_reference.json", {"weeks": {"0": 1}})  # replaced atomically
    assert reg.read_extra(v, "drift_reference.json") == {"weeks": {"0": 1}}
    assert not list((tmp_path / v).glob(".*tmp"))
    with pytest.raises(RegistryError, match="part of the model"):
        reg.attach(v, "thresholds.json", {})
    with pytest.raises(RegistryError, match="lower_snake"):
        reg.attach(v, "../escape.json", {})
    with pytest.raises(RegistryError, match="not found"):
        reg.attach("v0099", "x.json", {})


def test_publish_writes_extras_in_the_same_step(tmp_path: Path) -> None:
    v1 = tiny_model(tmp_path)
    loaded = Registry(tmp_path).load(v1)
    v2 = Registry(tmp_path).publish(
        loaded.model, loaded.spec, loaded.thresholds, {}, {}, extras={"segments.json": {"k": 2}}
    )
    assert Registry(tmp_path).read_extra(v2, "segments.json") == {"k": 2}

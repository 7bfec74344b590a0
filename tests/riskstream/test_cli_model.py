"""``riskstream model import|list|use`` manage the registry without Python (issue 14, item 9)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from models.registry import Registry
from riskstream.cli import app

runner = CliRunner()


def test_import_shipped_list_and_use(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    out = runner.invoke(app, ["model", "list", "--registry", str(reg)])
    assert out.exit_code == 1 and "riskstream model import" in out.output

    out = runner.invoke(app, ["model", "import", "--registry", str(reg)])
    assert out.exit_code == 0, out.output
    assert Registry(reg).current_version() == "v0001"
    Registry(reg).load()  # the shipped model loads with this featurizer

    out = runner.invoke(app, ["model", "import", "--no-use", "--registry", str(reg)])
    assert out.exit_code == 0, out.output
    assert Registry(reg).current_version() == "v0001"

    out = runner.invoke(app, ["model", "list", "--registry", str(reg)])
    assert out.exit_code == 0 and "v0001" in out.output and "v0002" in out.output

    out = runner.invoke(app, ["model", "use", "v0002", "--registry", str(reg)])
    assert out.exit_code == 0, out.output
    assert Registry(reg).current_version() == "v0002"


def test_use_unknown_version_and_import_non_model_fail_clearly(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    runner.invoke(app, ["model", "import", "--registry", str(reg)])
    out = runner.invoke(app, ["model", "use", "v0042", "--registry", str(reg)])
    assert out.exit_code == 1 and "not found" in out.output
    assert Registry(reg).current_version() == "v0001"
    empty = tmp_path / "empty"
    empty.mkdir()
    out = runner.invoke(app, ["model", "import", str(empty), "--registry", str(reg)])
    assert out.exit_code == 1 and "model.pt is missing" in out.output

"""`riskstream train` publishes a loadable model and reports per-cut-off AUCs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.registry import Registry
from riskstream.cli import app
from tests.conftest import OULAD_DIR


@pytest.mark.skipif(not (OULAD_DIR / "studentVle.parquet").is_file(), reason="OULAD not present")
def test_train_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKSTREAM_MODEL_REGISTRY", str(tmp_path / "reg"))
    monkeypatch.setenv("RISKSTREAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RISKSTREAM_DATA_DIR", str(OULAD_DIR))
    monkeypatch.setenv("RISKSTREAM_DEVICE", "cpu")
    args = [
        "train", "--module", "AAA", "--train-presentations", "2013J",
        "--valid-presentations", "2013J", "--max-students", "120", "--epochs", "1",
        "--hidden", "8", "--batch-size", "32",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "published v0001" in result.output and "ROC-AUC" in result.output
    assert Registry(tmp_path / "reg").load().version == "v0001"
    bad = CliRunner().invoke(app, ["train", "--model", "transformer"])
    assert bad.exit_code == 1 and "lstm, cnn_lstm or cnn" in bad.output
    missing = CliRunner().invoke(app, [*args, "--finetune-from", "v0042"])
    assert missing.exit_code == 1 and "v0042 not found" in missing.output

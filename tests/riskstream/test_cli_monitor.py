"""`riskstream monitor status` and `riskstream retrain --check` over real Redis data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from riskstream.cli import app
from riskstream.stack import Stack
from tests.riskstream.api.conftest import SITE
from tests.riskstream.api.test_monitoring import _course_data


def test_status_and_check_read_the_live_signals(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _course_data(redis_client, tmp_path / "reg")
    monkeypatch.setenv("RISKSTREAM_MODEL_REGISTRY", str(tmp_path / "reg"))
    monkeypatch.setenv("RISKSTREAM_REDIS_URL", stack.redis_url)
    monkeypatch.setenv("RISKSTREAM_SITE", SITE)
    monkeypatch.setenv("RISKSTREAM_DATA_DIR", str(tmp_path / "no-data"))
    res = CliRunner().invoke(app, ["monitor", "status", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    rows = {r["course"]: r for r in doc["courses"]}
    assert rows[6]["drift_alarm"] and not rows[5]["drift_alarm"]
    assert doc["retrain"]["due"]
    table = CliRunner().invoke(app, ["monitor", "status"])
    assert "ALARM" in table.output and "retrain due: True" in table.output
    # no OULAD folder here: the check says so instead of guessing
    check = CliRunner().invoke(app, ["retrain", "--check"])
    assert check.exit_code == 1 and "cannot gather the retraining signals" in check.output

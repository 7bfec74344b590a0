"""The PHP plugin agrees with the connector: syntax, service functions, parameter and row names."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts import RiskAlert, RiskLevel
from moodle_connector.run import NEEDED
from moodle_connector.sink import alert_params
from tests.conftest import MOODLE_RECORDED, REPO
from tests.moodle_connector.fake_moodle import recorded_log

PLUGIN = REPO / "moodle_plugin" / "local_riskstream"


def php_files() -> list[Path]:
    return sorted(PLUGIN.rglob("*.php"))


@pytest.mark.skipif(shutil.which("php") is None, reason="php-cli not installed")
def test_every_php_file_is_syntax_clean() -> None:
    assert len(php_files()) >= 12
    for path in php_files():
        out = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, f"{path}: {out.stdout}{out.stderr}"


def test_predefined_service_has_every_function_the_connector_needs() -> None:
    services = (PLUGIN / "db" / "services.php").read_text()
    listed = set(re.findall(r"'([a-z]+_[a-z0-9_]+)'", services))
    for purpose, names, _required in NEEDED:
        assert any(n in listed for n in names), f"{purpose}: none of {names} in the service"
    assert "'shortname' => 'local_riskstream'" in services


def test_push_alerts_parameters_match_what_the_sink_sends() -> None:
    php = (PLUGIN / "classes" / "external" / "push_alerts.php").read_text()
    params_block = php.split("execute_parameters")[1].split("function execute(")[0]
    declared = set(re.findall(r"'(\w+)' => new external_value", params_block))
    now = datetime.now(UTC)
    alert = RiskAlert(
        alert_id="a" * 32,
        site="s",
        user_id=1,
        course_id=2,
        risk=0.5,
        level=RiskLevel.HIGH,
        threshold=0.4,
        model_version="v1",
        day=3,
        trigger_event_id=9,
        event_time=now,
        created_at=now,
    )
    assert set(alert_params(alert)) == declared


@pytest.mark.skipif(not MOODLE_RECORDED.is_dir(), reason="no recorded Moodle data")
def test_get_events_returns_the_recorded_row_shape() -> None:
    php = (PLUGIN / "classes" / "external" / "get_events.php").read_text()
    row_block = php.split("protected static function row(")[1].split("execute_returns")[0]
    produced = set(re.findall(r"^\s+'(\w+)' =>", row_block, re.M))
    assert produced == set(recorded_log()[0])

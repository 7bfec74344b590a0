"""Defect 4 on a real Moodle: a missing capability is named by `check` and fatal in `run`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from riskstream.stack import Stack
from tests.moodle_real.conftest import PHP, SETUP, cli, connector_env
from tests.moodle_real.site import MoodleSite


@pytest.fixture
def without(moodle: MoodleSite, service: dict[str, Any]) -> Iterator[Any]:
    """Take capabilities from the connector's role; setup.php puts them back afterwards."""

    def take(cap: str) -> None:
        moodle.php(PHP / "admin.php", f"--unassign={cap}")

    try:
        yield take
    finally:
        moodle.php(moodle.www / SETUP)


def test_check_names_a_capability_moodle_does_not_report(
    moodle: MoodleSite, service: dict[str, Any], course: dict[str, Any], stack: Stack, without: Any
) -> None:
    """Without mod/quiz:view Moodle answers an empty quiz list, no error: check still says it."""
    without("mod/quiz:view")
    env = connector_env(moodle, service["token"], stack, "perm")
    out = cli(env, "connector", "check", "--course", str(course["course"]))
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "mod/quiz:view" in text and "setup.php" in text
    assert "ready" not in text.replace("already", "")
    assert service["token"] not in text


def test_run_stops_at_once_naming_the_capability(
    moodle: MoodleSite, service: dict[str, Any], stack: Stack, without: Any
) -> None:
    """Without report/log:view the log cannot be read: run exits 1 with the capability's name
    (it used to retry forever, publishing nothing)."""
    without("report/log:view")
    env = connector_env(moodle, service["token"], stack, "perm-run")
    t0 = time.monotonic()
    out = cli(env, "connector", "run", "--no-sink", timeout=90)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "report/log:view" in text
    assert time.monotonic() - t0 < 60
    assert service["token"] not in text


def test_a_capability_taken_while_running_stops_run_naming_it(
    moodle: MoodleSite, service: dict[str, Any], stack: Stack, without: Any
) -> None:
    """The same when the capability goes away while the connector runs: the permission error
    of the next poll is fatal (exit 1, capability named), not an outage retried forever."""
    env = connector_env(
        moodle,
        service["token"],
        stack,
        "perm-live",
        RISKSTREAM_CONNECTOR_WAIT_S="1",
        RISKSTREAM_CONNECTOR_IDLE_S="0.2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskstream", "connector", "run", "--no-sink"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(4)
        assert proc.poll() is None, proc.communicate()[0]
        without("report/log:view")
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, out
    assert "report/log:view" in out and "setup.php" in out
    assert service["token"] not in out

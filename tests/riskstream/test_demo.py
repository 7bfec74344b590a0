"""The demo: scoring against outcomes, process hygiene, and the shortened end-to-end run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis

from contracts import LmsEvent, RiskAlert, RiskLevel
from riskstream.demo import Children, Expected, clear_old_demo_sites, score_alerts
from tests.conftest import OULAD_DIR, REPO, subprocess_env

DEMO = (sys.executable, "-m", "riskstream", "demo")


def alert(
    user: int, day: int, course: int = 1, trigger: int = 1, level: RiskLevel = RiskLevel.HIGH
) -> RiskAlert:
    now = datetime(2014, 3, 1, tzinfo=UTC)
    return RiskAlert(
        alert_id=f"a{user:07d}{day:03d}",
        site="demo-x",
        user_id=user,
        course_id=course,
        risk=0.8,
        level=level,
        threshold=0.7,
        model_version="v0001",
        day=day,
        trigger_event_id=trigger,
        event_time=now,
        created_at=now,
    )


def test_score_alerts_uses_first_alert_and_real_outcomes() -> None:
    outcomes = pd.DataFrame(
        {
            "course_id": [1, 1, 1, 1, 1],
            "user_id": [10, 11, 12, 13, 14],
            "label": [1, 1, 0, 1, 0],
            "withdraw_day": [50.0, math.nan, math.nan, 20.0, math.nan],
        }
    )
    med = RiskLevel.MEDIUM
    alerts = [alert(10, 30), alert(10, 5, level=med), alert(11, 100), alert(12, 40, level=med)]
    alerts.append(alert(13, 25, level=med))
    users = {(1, u) for u in (10, 11, 12, 13, 14)}
    got = score_alerts(alerts, outcomes, {1: 200}, users)
    assert got["alerted_students"] == 4 and got["true_alerts"] == 3
    assert got["precision"] == pytest.approx(0.75)
    assert got["recall"] == pytest.approx(1.0)
    assert got["base_rate"] == pytest.approx(0.6)
    # first alerts: 10 at day 5 (withdrew day 50) -> 45; 11 at 100 (failed, end 200) -> 100;
    # 13 at 25 (withdrew day 20) -> -5
    assert got["median_days_early"] == 45
    assert got["alerted_before_outcome"] == 2
    assert got["high_alerted_students"] == 2  # 10 escalated to high, 11 high
    assert got["high_precision"] == pytest.approx(1.0)
    empty = score_alerts([], outcomes, {1: 200}, users)
    assert empty["precision"] is None and empty["median_days_early"] is None


def test_expected_counts_what_the_worker_applied() -> None:
    exp = Expected()
    t = datetime(2014, 2, 1, tzinfo=UTC)
    for i, user in enumerate([1, 2, 1, 1, 2]):
        exp.add(
            LmsEvent(
                site="s",
                event_id=i + 1,
                user_id=user,
                course_id=9,
                time=t,
                eventname="x",
                component="core",
                action="viewed",
            )
        )
    assert exp.total == 5
    assert exp.applied({}) == 0
    assert exp.applied({(9, 1): 3, (9, 2): 5}) == 4  # user 1 ids 1,3,4 -> 2 applied
    assert exp.applied({(9, 1): 4, (9, 2): 5}) == 5


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def test_children_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    kids = Children(tmp_path / "children.json")
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 60 & echo $! > {pidfile}; trap '' TERM; wait"
    kids.spawn("w", ["sh", "-c", script], dict(os.environ), tmp_path / "w.log")
    leader = kids.procs["w"].pid
    deadline = time.monotonic() + 5
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    assert json.loads((tmp_path / "children.json").read_text()) == {"w": leader}
    kids.stop("w", timeout=1.0)  # the leader ignores SIGTERM: SIGKILL after the timeout
    time.sleep(0.1)
    assert not _alive(leader) and not _alive(grandchild)
    kids.stop_all()
    assert not (tmp_path / "children.json").exists()


def test_clear_old_demo_sites_only_touches_demo_keys(redis_client: redis.Redis) -> None:
    redis_client.set("rs:cal:demo-1:5", "x")
    redis_client.hset("rs:st:demo-1:5:7", "last_id", 3)
    redis_client.sadd("rs:courses:demo-1", "5")
    redis_client.set("rs:cal:oulad:5", "keep")
    assert clear_old_demo_sites(redis_client) == 3
    assert redis_client.keys("*") == [b"rs:cal:oulad:5"]


# --- end to end (real stack, real worker, OULAD) ---------------------------------------------


def _need_demo_parts() -> None:
    if not (OULAD_DIR / "studentVle.parquet").is_file():
        pytest.skip(f"OULAD not found at {OULAD_DIR}")
    out = subprocess.run(
        [sys.executable, "-m", "riskstream", "worker", "--help"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        timeout=60,
    )
    if out.returncode != 0:
        pytest.skip("`riskstream worker` is not on this branch yet")


def _demo_env(tmp_path: Path, registry: Path) -> dict[str, str]:
    from riskstream.stack import free_port

    return subprocess_env(
        RISKSTREAM_STATE_DIR=str(tmp_path / "state"),
        RISKSTREAM_KAFKA_PORT=str(free_port()),
        RISKSTREAM_REDIS_PORT=str(free_port()),
        RISKSTREAM_MODEL_REGISTRY=str(registry),
        RISKSTREAM_DATA_DIR=str(OULAD_DIR),
        RISKSTREAM_DEVICE="cpu",
        RISKSTREAM_STREAM_SESSION_TIMEOUT_MS="6000",
        COLUMNS="160",
    )


def _servers_answer(env: dict[str, str]) -> bool:
    """redis-server rewrites its environ (process title), so check the ports as well."""
    from riskstream.stack import kafka_answers, redis_answers

    host = "127.0.0.1"
    return kafka_answers(host, int(env["RISKSTREAM_KAFKA_PORT"])) or redis_answers(
        host, int(env["RISKSTREAM_REDIS_PORT"])
    )


def _leftovers(marker: str) -> list[int]:
    """Processes (of any parentage) whose environment carries this test's state dir."""
    needle = f"RISKSTREAM_STATE_DIR={marker}".encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in env and _alive(int(d)):
            found.append(int(d))
    return found


@pytest.mark.slow
def test_demo_short_run_end_to_end(tmp_path: Path) -> None:
    _need_demo_parts()
    from models.oulad import Oulad
    from models.testing import tiny_model

    tiny_model(tmp_path / "registry", constant_risk=0.9)  # alerts must fire
    env = _demo_env(tmp_path, tmp_path / "registry")
    report = tmp_path / "report"
    out = subprocess.run(
        [*DEMO, "--max-students", "60", "--report-dir", str(report), "--timeout", "90"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((report / "summary.json").read_text())
    assert "precision" in (report / "summary.txt").read_text()
    assert summary["events_sent"] > 1000
    assert summary["events_processed"] == summary["events_sent"]
    assert summary["alerts"] > 0 and "full report" in out.stdout
    assert "final results for live calibration" in out.stdout  # rs:outcome:{site}:{course}
    # precision recomputed independently from the alerts file and OULAD outcomes
    alerts = [json.loads(x) for x in (report / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == summary["alerts"]
    alerted = {(a["course_id"], a["user_id"]) for a in alerts}
    oc = Oulad(OULAD_DIR).outcomes()
    bad = {
        (int(r.course_id), int(r.user_id))
        for r in oc.itertuples(index=False)
        if r.final_result in ("Fail", "Withdrawn")
    }
    assert summary["alerted_students"] == len(alerted)
    assert summary["precision"] == pytest.approx(len(alerted & bad) / len(alerted))
    assert _leftovers(str(tmp_path / "state")) == []
    assert not _servers_answer(env)


@pytest.mark.slow
def test_demo_sigint_leaves_no_process_behind(tmp_path: Path) -> None:
    _need_demo_parts()
    from models.testing import tiny_model

    tiny_model(tmp_path / "registry", constant_risk=0.9)
    env = _demo_env(tmp_path, tmp_path / "registry")
    proc = subprocess.Popen(
        [*DEMO, "--max-students", "60", "--rate", "300", "--report-dir", str(tmp_path / "r")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "worker started" in line:
                break
        time.sleep(3.0)  # worker, tail and replay all running
        assert _leftovers(str(tmp_path / "state")), "demo children should be running now"
        assert _servers_answer(env)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines) + rest
    assert proc.returncode == 130, text[-3000:]
    time.sleep(0.5)
    assert _leftovers(str(tmp_path / "state")) == [], text[-3000:]
    assert not _servers_answer(env)

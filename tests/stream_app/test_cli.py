"""`riskstream alerts tail` against the real broker: filters by person, drops repeats by id."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from contracts import TOPICS, RiskAlert, RiskLevel, alert_id, encode
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack
from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def _alert(site: str, user: int, trigger: int) -> RiskAlert:
    now = datetime(2024, 3, 1, tzinfo=UTC)
    return RiskAlert(
        alert_id=alert_id(site, 7, user, "v0001", trigger, "high"),
        site=site,
        user_id=user,
        course_id=7,
        risk=0.9,
        level=RiskLevel.HIGH,
        threshold=0.7,
        model_version="v0001",
        day=9,
        trigger_event_id=trigger,
        event_time=now,
        created_at=now,
    )


def test_alerts_tail_filters_by_user_and_dedupes(stack: Stack) -> None:
    site = f"tail{uuid.uuid4().hex[:6]}"
    alerts = [_alert(site, 5, 1), _alert(site, 5, 1), _alert(site, 6, 2), _alert(site, 5, 3)]

    async def produce() -> None:
        await ensure_topics(stack.bootstrap, TOPICS.all())
        p = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        await p.start()
        for a in alerts:
            await p.send_and_wait(TOPICS.alerts, encode(a), key=f"{site}:{a.user_id}".encode())
        await p.stop()

    asyncio.run(produce())
    env = subprocess_env(RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap)
    cmd = [sys.executable, "-m", "riskstream", "alerts", "tail", "--site", site, "--user", "5"]
    got = subprocess.run(
        [*cmd, "--from-beginning", "--max", "2", "--timeout", "30", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert got.returncode == 0, got.stderr
    rows = [json.loads(line) for line in got.stdout.splitlines() if line.startswith("{")]
    assert [r["trigger_event_id"] for r in rows] == [1, 3]  # repeat of id 1 dropped, user 6 not

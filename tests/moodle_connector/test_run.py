"""`riskstream connector run|check` as processes: kill -9 and resume, SIGTERM, no token leak."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from contracts import TOPICS, decode_event, is_enrolment
from moodle_connector.normalize import should_drop
from riskstream.stack import Stack
from tests.conftest import MOODLE_RECORDED, subprocess_env
from tests.moodle_connector.conftest import read_topic
from tests.moodle_connector.fake_moodle import FakeMoodle

TOKEN = "tok-SECRET-5f1c2e9a7b3d4c6e8f0a1b2c3d4e5f60"
PAGE = 100


@pytest.fixture
def site_fake() -> Iterator[FakeMoodle]:
    if not MOODLE_RECORDED.is_dir():
        pytest.skip("no recorded Moodle data")
    with FakeMoodle(TOKEN) as m:
        yield m


def connector(stack: Stack, fake: FakeMoodle, site: str, *args: str) -> subprocess.Popen[str]:
    env = subprocess_env(
        RISKSTREAM_MOODLE_URL=fake.url,
        RISKSTREAM_MOODLE_TOKEN=TOKEN,
        RISKSTREAM_SITE=site,
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_CONNECTOR_PAGE_SIZE=str(PAGE),
        RISKSTREAM_CONNECTOR_IDLE_S="0.2",
        RISKSTREAM_LOG_LEVEL="DEBUG",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "riskstream", "connector", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_cursor(r: redis.Redis, site: str, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = r.get(f"rs:cursor:{site}")
        if raw is not None and int(raw) >= at_least:
            return int(raw)
        time.sleep(0.01)
    raise AssertionError(f"cursor did not reach {at_least}")


def test_kill9_then_resume_no_gap_and_sigterm_is_clean(
    stack: Stack, site_fake: FakeMoodle, redis_client: redis.Redis
) -> None:
    site = f"site-{uuid.uuid4().hex[:6]}"
    rows = site_fake.add_synthetic(20_000)
    want = {r["id"] for r in rows if not should_drop(r)}
    first = connector(stack, site_fake, site, "run", "--no-sink")
    try:
        killed_at = wait_cursor(redis_client, site, 2_000)
    finally:
        first.kill()
        out1, _ = first.communicate(timeout=10)
    assert killed_at < rows[-1]["id"], "too fast to kill mid-run; raise the row count"
    second = connector(stack, site_fake, site, "run")
    try:
        wait_cursor(redis_client, site, rows[-1]["id"])
        time.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        out2, _ = second.communicate(timeout=20)
    assert second.returncode == 0, out2[-2000:]
    assert "connector stopped" in out2
    mine = [
        ev
        for _, v in asyncio.run(read_topic(stack.bootstrap, TOPICS.events, len(want)))
        if v and (ev := decode_event(v)).site == site
    ]
    got = [ev.event_id for ev in mine if not is_enrolment(ev)]
    # every student of the roster got an enrolment record (id 0) when the course was synced
    assert {ev.user_id for ev in mine if is_enrolment(ev)} == set(range(4, 34))
    assert all(ev.event_id == 0 for ev in mine if is_enrolment(ev))
    assert set(got) == want  # nothing lost across the kill
    assert len(got) - len(want) <= PAGE  # at most the page in flight was sent twice
    for out in (out1, out2):
        assert TOKEN not in out and TOKEN[4:20] not in out


def test_check_reports_functions_and_never_prints_the_token(
    stack: Stack, site_fake: FakeMoodle
) -> None:
    site_fake.service.discard("local_riskstream_push_alerts")
    site_fake.service.discard("core_message_send_instant_messages")
    proc = connector(stack, site_fake, "s", "check")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Moodle Lab" in out and "5.0.2" in out and "missing" in out
    assert "local_riskstream_get_events" in out
    site_fake.token = "another-token"  # now ours is wrong: invalidtoken
    proc = connector(stack, site_fake, "s", "check")
    out2, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "invalidtoken" in out2
    assert TOKEN not in out and TOKEN not in out2


async def test_stop_during_a_hung_moodle_call_exits_within_the_grace(
    stack: Stack, site_fake: FakeMoodle
) -> None:
    from moodle_connector.run import ConnectorConfig, run_connector

    site_fake.add_synthetic(10)
    cfg = ConnectorConfig(
        site_fake.url,
        TOKEN,
        f"hang-{uuid.uuid4().hex[:6]}",
        stack.bootstrap,
        stack.redis_url,
        timeout_s=20,
        sink=False,
        shutdown_grace_s=1.0,
        enrich=False,
    )
    site_fake.timeout_sleep_s = 8
    site_fake.hang.add("local_riskstream_get_events")  # the site check passes, polling hangs
    stop = asyncio.Event()
    task = asyncio.create_task(run_connector(cfg, stop))
    for _ in range(200):
        if site_fake.calls("local_riskstream_get_events"):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    stop.set()
    stats = await asyncio.wait_for(task, 6)
    assert 0.9 < time.monotonic() - t0 < 4  # waited the grace for the hung call, then cancelled
    assert stats["poller"]["pages"] == 0


async def test_site_down_at_start_is_waited_out_not_fatal(
    stack: Stack, site_fake: FakeMoodle
) -> None:
    """A Moodle outage at start-up backs off and then polls, like an outage later on."""
    from moodle_connector.run import ConnectorConfig, run_connector

    site_fake.add_synthetic(5)
    target = site_fake.last_id  # the site logs its own web-service calls after this
    site = f"down-{uuid.uuid4().hex[:6]}"
    cfg = ConnectorConfig(
        site_fake.url,
        TOKEN,
        site,
        stack.bootstrap,
        stack.redis_url,
        retries=1,
        sink=False,
        enrich=False,
        idle_s=0.1,
        startup_retry_max_s=0.5,
    )
    site_fake.faults.extend(["503"] * 4)  # four failed site checks before Moodle answers
    stop = asyncio.Event()
    task = asyncio.create_task(run_connector(cfg, stop))
    r = redis.Redis.from_url(stack.redis_url)
    try:
        cursor = await asyncio.to_thread(wait_cursor, r, site, target, 30)
    finally:
        stop.set()
        stats = await asyncio.wait_for(task, 15)
        r.close()
    assert cursor >= target
    assert len(site_fake.calls("core_webservice_get_site_info")) >= 5
    assert stats["poller"]["pages"] >= 1

"""Server-sent alerts from a real uvicorn server, and the /ui page in headless Chromium."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
import redis

from riskstream.api import ApiConfig
from riskstream.stack import Stack
from tests.conftest import REPO
from tests.riskstream.api.conftest import AUTH, KEY, SITE, LiveServer, add_alert, put_student

ARTIFACTS = REPO / "test-artifacts"


def read_events(lines: Iterator[str], n: int, timeout: float = 8.0) -> list[dict[str, str]]:
    """The next ``n`` SSE events (comments skipped) of a streaming response's lines."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for line in lines:
        if time.monotonic() > deadline:
            break
        if not line:
            if "data" in cur:
                out.append(cur)
                if len(out) == n:
                    break
            cur = {}
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(":")
        cur[k] = v.strip()
    return out


def test_sse_delivers_alerts_live_filtered_and_resumes(
    live: LiveServer, redis_client: redis.Redis
) -> None:
    import json

    def later() -> None:
        add_alert(redis_client, 2, 5)  # other course: filtered out
        add_alert(redis_client, 1, 6, level="medium", risk=0.55)
        add_alert(redis_client, 1, 7)

    with httpx.stream(
        "GET", f"{live.url}/v1/alerts/live", params={"course": 1}, headers=AUTH, timeout=10
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert ": connected" in [next(lines), next(lines)]  # subscribed: now raise the alerts
        threading.Thread(target=later, daemon=True).start()
        got = read_events(lines, 2)
    assert [e["event"] for e in got] == ["alert", "alert"]
    bodies = [json.loads(e["data"]) for e in got]
    assert [(b["course"], b["user"], b["level"]) for b in bodies] == [
        (1, "6", "medium"),
        (1, "7", "high"),
    ]
    assert got[0]["id"] == bodies[0]["id"]
    # a client that lost its connection resumes after the last id it saw
    headers = {**AUTH, "Last-Event-ID": got[0]["id"]}
    with httpx.stream("GET", f"{live.url}/v1/alerts/live", headers=headers, timeout=10) as r:
        again = read_events(r.iter_lines(), 1)
    assert json.loads(again[0]["data"])["user"] == "7"
    with httpx.stream("GET", f"{live.url}/v1/alerts/live", timeout=10) as r:
        assert r.status_code == 401


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_ui_shows_a_live_alert_and_draws_the_trajectory(
    cfg: ApiConfig, stack: Stack, redis_client: redis.Redis
) -> None:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    import asyncio
    import math

    from riskstream.kafka_admin import ensure_topics
    from tests.riskstream.api.test_probe import _consume_and_commit, _produce

    topic, group = f"uitest.{time.monotonic_ns()}", "ui-worker"
    asyncio.run(ensure_topics(stack.bootstrap, [topic], 4))
    asyncio.run(_produce(stack.bootstrap, topic, 400))
    ui_cfg = replace(
        cfg,
        kafka_bootstrap=stack.bootstrap,
        events_topic=topic,
        stream_group=group,
        lag_period_s=0.5,
    )

    for u in range(60):  # a course with a spread of risks
        r = 0.5 + 0.45 * math.sin(u * 1.7)
        put_student(redis_client, 7, 1000 + u, [round(min(max(r, 0.01), 0.99), 3)])
    traj = [0.18 + 0.6 / (1 + math.exp(-(d - 30) / 5)) + 0.03 * math.sin(d) for d in range(50)]
    put_student(redis_client, 7, 42, traj, level="high")
    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with LiveServer(ui_cfg) as live, sync_api.sync_playwright() as p:
        profile = ARTIFACTS / f".chromium-{live.port}"
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=exe,
            headless=True,
            viewport={"width": 1440, "height": 960},
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-quic",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{live.url}/ui#key={KEY}")
            page.wait_for_function("document.getElementById('chip-live').textContent === 'live'")
            page.wait_for_selector("#dist svg rect", state="attached", timeout=10_000)
            assert page.locator("#feed li").count() == 0
            page.wait_for_function("document.getElementById('lag').textContent === '400'")
            worker = threading.Thread(  # playwright's loop owns this thread: commit elsewhere
                target=lambda: asyncio.run(_consume_and_commit(stack.bootstrap, topic, group, 250))
            )
            worker.start()
            worker.join(30)
            page.wait_for_function(
                "Number(document.getElementById('eps').textContent) > 0", timeout=10_000
            )
            add_alert(redis_client, 7, 42, risk=round(traj[-1], 3), day=45)
            page.wait_for_selector("#feed li.high", timeout=10_000)
            assert "student 42" in page.inner_text("#feed li")
            page.wait_for_selector("#traj path.line", timeout=10_000)
            page.wait_for_selector("#why .c", timeout=10_000)
            assert "no quiz activity for 14 days" in page.inner_text("#why")
            points = page.get_attribute("#traj path.line", "d") or ""
            assert points.count("L") == len(traj) - 1  # one vertex per course day
            assert page.inner_text("#seen").startswith("1 alert")
            page.wait_for_function("Number(document.getElementById('apm').textContent) > 0")
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)
    assert errors == []
    assert (ARTIFACTS / "ui.png").stat().st_size > 10_000


async def test_hub_keeps_the_latest_alert_per_student_within_its_bound(
    stack: Stack, redis_client: redis.Redis
) -> None:
    import asyncio

    import redis.asyncio as aredis

    from riskstream.api.hub import AlertHub

    add_alert(redis_client, 1, 1, day=3)
    add_alert(redis_client, 1, 2, day=4)
    add_alert(redis_client, 1, 1, day=9)  # a newer alert for student 1
    r = aredis.Redis.from_url(stack.redis_url)
    hub = AlertHub(r, block_ms=100, max_students=2)
    sub = hub.subscribe(course=1)
    hub.start()
    try:
        await asyncio.wait_for(hub.ready.wait(), 5)
        assert hub.latest_for(SITE, 1, 1)["day"] == 9  # type: ignore[index]
        assert sub.queue.empty()  # the backlog is not replayed to live subscribers
        await asyncio.to_thread(add_alert, redis_client, 1, 3, day=5)
        _eid, alert = await asyncio.wait_for(sub.queue.get(), 5)
        assert alert["user_id"] == 3 and hub.seen == 1
        # student 2's was the oldest: dropped
        assert set(hub.latest) == {(SITE, 1, 1), (SITE, 1, 3)}
    finally:
        await hub.stop()
        await r.aclose()

"""Fixtures of the real-Moodle suite: the site, the service token, a seeded course, the pipeline.

One site per session (cached between runs in ``var/moodle``); one course per session with a
teacher, students and a no-show; the connector and the worker run as the README says
(``riskstream connector run``, ``riskstream worker``) against the session's broker + Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from contracts import TOPICS
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack
from tests.conftest import subprocess_env
from tests.moodle_real.site import MoodleSite, unavailable_reason

PHP = Path(__file__).resolve().parent / "php"
SETUP = "local/riskstream/cli/setup.php"
DAY_ENDS_IN = 35.0  # worker + connector start and the first round of activity fit in it
TOKEN_LINE = re.compile(r"^RISKSTREAM_MOODLE_TOKEN=([0-9a-f]{32})$", re.M)


def ws(site: MoodleSite, token: str, function: str, **params: Any) -> Any:
    """One REST call with a user's token (students and teachers act like the Moodle app)."""
    from moodle_connector.client import encode_params

    data = [("wstoken", token), ("wsfunction", function), ("moodlewsrestformat", "json")]
    data += encode_params(params)
    r = httpx.post(site.url + "/webservice/rest/server.php", data=dict(data), timeout=60)
    r.raise_for_status()
    body = r.json()
    if isinstance(body, dict) and "exception" in body:
        raise AssertionError(f"{function} failed: {body}")
    return body


def wait_for(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="session")
def moodle() -> Iterator[MoodleSite]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"real Moodle suite skipped: {reason}")
    site = MoodleSite()
    site.start()
    print(f"\nMoodle site up in {site.timings}", file=sys.stderr)
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="session")
def service(moodle: MoodleSite) -> dict[str, Any]:
    """README step 3: one command; --rotate-token because a reused site already has one."""
    out = moodle.php(moodle.www / SETUP, "--rotate-token")
    m = TOKEN_LINE.search(out)
    assert m, f"setup.php printed no token:\n{out}"
    uid = int(moodle.sql("SELECT id FROM mdl_user WHERE username = 'riskstream'")[0][0])
    return {"token": m.group(1), "userid": uid, "output": out}


@pytest.fixture(scope="session")
def course(moodle: MoodleSite, service: dict[str, Any]) -> dict[str, Any]:
    """A fresh course (teacher, 3 students, a no-show, quiz, assignment, page) per session."""
    log_start = int(moodle.sql("SELECT COALESCE(MAX(id), 0) FROM mdl_logstore_standard_log")[0][0])
    tag = uuid.uuid4().hex[:8]
    data: dict[str, Any] = moodle.php_json(PHP / "seed.php", f"--tag={tag}", "--students=3")
    data["tokens"] = {int(k): v for k, v in data["tokens"].items()}
    data["log_start"] = log_start
    data["tag"] = tag
    return data


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model imported by the CLI (issue item 9), then a constant-risk model in
    service. The course started 10 days ago, so a student's first event commits days 0-8,
    day 8 makes them a candidate and the sweep (lag 0) admits them once the partition is on
    day 9 (no minimum, one day of persistence, no capacity limit)."""
    from models.registry import Registry, Thresholds
    from models.testing import tiny_model

    root = tmp_path_factory.mktemp("registry")
    out = subprocess.run(
        [sys.executable, "-m", "riskstream", "model", "import", "--registry", str(root)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert Registry(root).current_version() == "v0001"
    th = Thresholds(min_days=0, cooldown_days=7, persist_days=1, day_cap=1.0, week_cap=1.0)
    tiny_model(root, constant_risk=0.9, thresholds=th)
    return root


@dataclass
class Pipeline:
    site: str
    env: dict[str, str]
    redis: redis.Redis
    bootstrap: str
    day_ends: float = 0.0  # unix time at which the course's current day ends
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def topic(self, topic: str, idle_s: float = 1.0) -> list[bytes]:
        from tests.moodle_connector.conftest import read_topic

        return [v for _, v in asyncio.run(read_topic(self.bootstrap, topic, idle_s=idle_s)) if v]


def connector_env(
    moodle: MoodleSite, token: str, stack: Stack, site: str, **extra: str
) -> dict[str, str]:
    return subprocess_env(
        RISKSTREAM_MOODLE_URL=moodle.url,
        RISKSTREAM_MOODLE_TOKEN=token,
        RISKSTREAM_SITE=site,
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_LOG_LEVEL="INFO",
        COLUMNS="240",  # rich tables unwrapped
        **extra,
    )


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "riskstream", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def pipeline(
    moodle: MoodleSite,
    service: dict[str, Any],
    course: dict[str, Any],
    registry: Path,
    stack: Stack,
) -> Iterator[Pipeline]:
    """Worker + connector (poller, sink, feedback) running; the cursor starts just before the
    session's course was made, so a reused site's older courses are not replayed.

    Alerts are admitted when a course day is over for a partition, so the course's start is
    moved (before the connector reads it) to end a course day DAY_ENDS_IN seconds from now."""
    site = f"moodle-{course['tag']}"
    day_ends = time.time() + DAY_ENDS_IN
    moodle.sql(
        f"UPDATE mdl_course SET startdate = {int(day_ends) - 10 * 86400} "
        f"WHERE id = {course['course']}"
    )
    asyncio.run(ensure_topics(stack.bootstrap, TOPICS.all()))
    client = redis.Redis.from_url(stack.redis_url)
    client.set(f"rs:cursor:{site}", course["log_start"])
    env = connector_env(
        moodle,
        service["token"],
        stack,
        site,
        RISKSTREAM_MODEL_REGISTRY=str(registry),
        RISKSTREAM_CONNECTOR_IDLE_S="0.5",
        RISKSTREAM_CONNECTOR_WAIT_S="3",
        RISKSTREAM_CONNECTOR_FEEDBACK_EVERY_S="1",
        RISKSTREAM_STREAM_GROUP=f"worker-{course['tag']}",
        RISKSTREAM_CONNECTOR_SINK_GROUP=f"sink-{course['tag']}",
        RISKSTREAM_DEVICE="cpu",
        # Alerts are admitted at the course-clock sweep once a day is over for the partition,
        # SWEEP_LAG_DAYS behind its clock: with the default lag (1) a candidate of day d is
        # admitted only once the partition has seen an event of day d + 2, i.e. a real day
        # later (measured: no alert in 150 s). Lag 0 admits day d at the first event of day
        # d + 1, which the suite makes happen by moving the course start (README, "Connecting
        # a Moodle site"). Everything else is the default (the sweep and teachers' feedback
        # are on by default).
        RISKSTREAM_STREAM_SWEEP_LAG_DAYS="0",
    )
    p = Pipeline(site=site, env=env, redis=client, bootstrap=stack.bootstrap, day_ends=day_ends)
    for name, args in (("worker", ["worker"]), ("connector", ["connector", "run"])):
        p.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "riskstream", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield p
    finally:
        for name, proc in p.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate(timeout=10)
            p.outputs[name] = out
        client.close()


@contextlib.contextmanager
def teacher_session(moodle: MoodleSite, course: dict[str, Any]) -> Iterator[httpx.Client]:
    """A browser-like session of the course's teacher (login form, cookies)."""
    with httpx.Client(base_url=moodle.url, follow_redirects=True, timeout=60) as c:
        login = c.get("/login/index.php").text
        token = re.search(r'name="logintoken" value="([^"]+)"', login)
        assert token, "no login token on the login page"
        c.post(
            "/login/index.php",
            data={
                "username": f"teacher-{course['tag']}",
                "password": "Pass-word-1",
                "logintoken": token.group(1),
            },
        )
        yield c


def teacher_page(moodle: MoodleSite, course: dict[str, Any], path: str) -> str:
    with teacher_session(moodle, course) as c:
        r = c.get(path)
        assert r.status_code == 200, r.text[:500]
        return r.text


def parse_json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.startswith(("{", "["))]

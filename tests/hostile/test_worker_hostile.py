"""The hostile cases of issue 15 against a real ``riskstream worker`` (real broker and Redis):
it survives every one, its Redis counters give applied + duplicate + dead-lettered = sent,
the refused records sit on the dead-letter topic, a genuine student after the bogus ones is
still applied, its log keeps the right levels, and it leaves no temporary folder."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from aiokafka import AIOKafkaProducer

from contracts import TOPICS, DeadLetter, LmsEvent, decode, encode
from riskstream.stack import Stack
from tests.conftest import REPO, subprocess_env
from tests.faults.conftest import _fresh
from tests.faults.harness import (
    COURSES,
    SITE,
    START,
    Worker,
    malformed,
    publish_model,
    put_calendars,
    read_topic,
)

pytestmark = pytest.mark.slow


def ev(eid: int, user: int, day: float, site: str = SITE, **kw: object) -> LmsEvent:
    return LmsEvent(
        site=site,
        event_id=eid,
        user_id=user,
        course_id=COURSES[0],
        time=START + timedelta(days=day),
        eventname="\\mod_quiz\\event\\attempt_submitted",
        component="mod_quiz",
        action="submitted",
        **kw,  # type: ignore[arg-type]
    )


def hostile(next_id: int) -> tuple[list[tuple[bytes, bytes]], int, int]:
    """(records, how many must be dead-lettered, how many applied)."""
    recs: list[tuple[bytes, bytes]] = []
    good = json.loads(encode(ev(next_id, 1, 0.5)))
    key = f"{SITE}:1".encode()

    def raw(**over: object) -> bytes:
        return json.dumps(good | over).encode().replace(b'"INF"', b"Infinity")

    dead = [
        raw(grade="INF", max_grade="INF", event_id=next_id + 1),  # issue 15 item 1
        raw(grade="NaN".replace("NaN", "INF"), max_grade=10.0),
        raw(event_id=2**63),  # would hide the student's later events
        raw(event_id=2**53),
        raw(time="1970-01-01T00:00:00Z"),
        raw(time="2999-01-01T00:00:00Z"),
        raw(site="intruder", event_id=next_id + 2),  # not a configured site
        raw(eventname="x" * 2_000_000),  # oversized: dead letter keeps hash + first bytes
    ]
    recs += [(key, d) for d in dead]
    recs.append((b"fault:999", encode(ev(next_id + 3, 1, 0.6))))  # key disagrees with value
    junk = malformed(53, np.random.default_rng(0))  # the kinds the fuzz matrix already has
    recs += [(f"{SITE}:junk{i}".encode(), j) for i, j in enumerate(junk)]
    n_dead = len(dead) + 1 + len(junk)
    # genuine events of the same student after the bogus ones: every one is applied
    genuine = [ev(next_id + 10 + i, 1, 1.0 + i) for i in range(4)]
    recs += [(e.key, encode(e)) for e in genuine]
    return recs, n_dead, len(genuine)


async def _send(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    prod = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=8 << 20, linger_ms=2
    )
    await prod.start()
    try:
        for k, v in records:
            await prod.send_and_wait(TOPICS.events, v, key=k)
    finally:
        await prod.stop()


@pytest.fixture(scope="module")
def fresh_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    gen = _fresh(tmp_path_factory.mktemp("hostile-worker"), durable=False)
    stack = next(gen)
    try:
        yield stack
    finally:
        next(gen, None)


def test_worker_survives_hostile_input_and_accounts_for_every_record(
    fresh_stack: Stack, tmp_path: Path
) -> None:
    stack = fresh_stack
    client = redis.Redis.from_url(stack.redis_url)
    put_calendars(client)
    publish_model(tmp_path / "registry")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    worker = Worker(
        stack, tmp_path / "registry", tmp_path / "logs", RISKSTREAM_SITES=SITE, TMPDIR=str(tmpdir)
    )
    worker.start()
    try:
        records, n_dead, n_genuine = hostile(100)
        asyncio.run(_send(stack.bootstrap, records))
        deadline = time.monotonic() + 90
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            assert worker.alive, "worker died:\n" + worker.logs()[-3000:]
            counts = {k.decode(): int(v) for k, v in client.hgetall("rs:counts").items()}
            if counts.get("sent", 0) >= len(records):
                break
            time.sleep(0.3)
        assert counts.get("sent") == len(records), (counts, worker.logs()[-3000:])
        assert counts["applied"] + counts.get("duplicate", 0) + counts["dead_letter"] == len(
            records
        )
        assert counts["dead_letter"] == n_dead and counts["applied"] == n_genuine
        assert client.hget(f"rs:st:{SITE}:{COURSES[0]}:1", "last_id") == b"113"
        dls = [
            decode(DeadLetter, v)
            for v in asyncio.run(read_topic(stack.bootstrap, TOPICS.dead_letter, 1.0))
        ]
        assert len(dls) == n_dead
        stages = {d.stage for d in dls}
        assert {"stream.decode", "stream.plausibility", "stream.site", "stream.key"} <= stages
        (big,) = [d for d in dls if d.payload_truncated]
        assert big.payload_bytes and big.payload_bytes > 2_000_000 and big.payload_sha256
        assert worker.alive
    finally:
        code = worker.stop()
    logs = worker.logs()
    assert code is not None
    started = [ln for ln in logs.splitlines() if "worker.started" in ln]
    assert started and not any("WARNING" in ln for ln in started), started
    assert "Traceback" not in logs
    assert not list(tmpdir.glob("riskstream-faust-*")), list(tmpdir.iterdir())


@pytest.mark.parametrize("command", [["worker"], ["smoke"], ["alerts", "tail", "--timeout", "2"]])
def test_commands_with_the_stack_down_print_one_line(command: list[str], tmp_path: Path) -> None:
    from models.testing import tiny_model

    tiny_model(tmp_path / "registry")
    env = subprocess_env(
        RISKSTREAM_KAFKA_BOOTSTRAP="127.0.0.1:9",
        RISKSTREAM_REDIS_URL="redis://127.0.0.1:9/0",
        RISKSTREAM_MODEL_REGISTRY=str(tmp_path / "registry"),
        COLUMNS="60",
    )
    out = subprocess.run(
        [sys.executable, "-m", "riskstream", *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    text = (out.stdout + out.stderr).strip()
    assert out.returncode == 1, text
    assert len(text.splitlines()) == 1, text
    assert "127.0.0.1:9" in text and "riskstream stack up" in text and "Traceback" not in text


def test_worker_with_redis_down_names_redis(stack: Stack, tmp_path: Path) -> None:
    from models.testing import tiny_model

    tiny_model(tmp_path / "registry")
    env = subprocess_env(
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL="redis://127.0.0.1:9/0",
        RISKSTREAM_MODEL_REGISTRY=str(tmp_path / "registry"),
    )
    out = subprocess.run(
        [sys.executable, "-m", "riskstream", "worker"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    text = (out.stdout + out.stderr).strip()
    assert out.returncode == 1 and len(text.splitlines()) == 1, text
    assert "Redis at 127.0.0.1:9" in text and "RISKSTREAM_REDIS_URL" in text
    assert os.path.isdir(REPO)


def test_connector_check_with_moodle_down_prints_one_line() -> None:
    env = subprocess_env(
        RISKSTREAM_MOODLE_URL="http://127.0.0.1:9",
        RISKSTREAM_MOODLE_TOKEN="f00dfeedc0ffee-not-real",
        RISKSTREAM_CONNECTOR_RETRIES="1",
        COLUMNS="60",
    )
    out = subprocess.run(
        [sys.executable, "-m", "riskstream", "connector", "check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    text = (out.stdout + out.stderr).strip()
    assert out.returncode == 1 and len(text.splitlines()) == 1, text
    assert "http://127.0.0.1:9" in text and "Traceback" not in text
    assert "f00dfeedc0ffee-not-real" not in text

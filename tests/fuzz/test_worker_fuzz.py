"""Hypothesis against the running worker: random and malformed payloads on the events topic
never stop it, and every record is accounted for: applied + duplicate + dead-lettered = sent
(the worker's own counters), and each payload the contract refuses sits on the dead-letter
topic byte for byte. Real broker, Redis and ``riskstream worker``; a few large examples
rather than many small ones, since each is a round trip through the whole pipeline."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import TOPICS, ContractError, DeadLetter, decode, decode_event
from riskstream.stack import Stack, free_port
from tests.faults.conftest import _fresh
from tests.faults.harness import (
    COURSES,
    SITE,
    START,
    Worker,
    publish,
    publish_model,
    put_calendars,
    read_topic,
)
from tests.fuzz.test_contract_fuzz import json_values, mutated_events

pytestmark = pytest.mark.slow


class Rig:
    """One stack and one worker for every example; ids keep growing across examples."""

    def __init__(self, stack: Stack, worker: Worker, metrics_port: int) -> None:
        self.stack, self.worker, self.port = stack, worker, metrics_port
        self.next_id = 1
        self.dead_seen = 0

    def counters(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out = {}
        for m in re.finditer(
            r'^riskstream_events_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.M
        ):
            out[m.group(1)] = float(m.group(2))
        return out

    def accounted(self) -> float:
        c = self.counters()
        return c.get("applied", 0) + c.get("duplicate", 0) + c.get("dead_letter", 0)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("worker-fuzz")
    gen = _fresh(tmp, durable=False)
    stack = next(gen)
    try:
        put_calendars(redis.Redis.from_url(stack.redis_url))
        publish_model(tmp / "registry")
        port = free_port()
        worker = Worker(
            stack, tmp / "registry", tmp / "logs", RISKSTREAM_STREAM_METRICS_PORT=str(port)
        )
        worker.start()
        yield Rig(stack, worker, port)
        worker.stop(timeout=5)
    finally:
        next(gen, None)


valid_student_events = st.builds(
    lambda user, course, day, comp: {
        "site": SITE,
        "event_id": 0,  # replaced by a growing id when sent
        "user_id": user,
        "course_id": course,
        "time": (START + timedelta(days=day)).isoformat(),
        "eventname": "\\mod_page\\event\\course_module_viewed",
        "component": comp,
        "action": "viewed",
    },
    st.integers(min_value=1, max_value=40),
    st.sampled_from(COURSES),
    st.floats(min_value=0, max_value=200, allow_nan=False),  # > 60 + 60 days: stream.day DL
    st.sampled_from(["mod_quiz", "mod_forum", "mod_page", "core", "mod_whatever"]),
)
payloads = st.lists(
    st.one_of(
        valid_student_events.map(lambda d: ("event", d)),
        mutated_events().map(lambda d: ("json", d)),
        json_values.map(lambda v: ("json", v)),
        st.binary(max_size=200).map(lambda b: ("raw", b)),
    ),
    min_size=60,
    max_size=200,
)


def _encode(rig: Rig, kind: str, item: Any) -> bytes:
    if kind == "event":
        item = dict(item, event_id=rig.next_id)
        rig.next_id += 1
        return json.dumps(item).encode()
    if kind == "json":
        return json.dumps(item).encode()
    return bytes(item)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=payloads)
def test_worker_survives_any_payload_and_accounts_for_every_record(
    rig: Rig, batch: list[tuple[str, Any]]
) -> None:
    values = [_encode(rig, kind, item) for kind, item in batch]
    refused = []
    records = []
    for i, v in enumerate(values):
        try:  # valid events are keyed like producers key them (a disagreeing key is refused)
            records.append((decode_event(v).key, v))
        except ContractError:
            refused.append(v)
            records.append((f"{SITE}:fuzz{i % 7}".encode(), v))
    before = rig.accounted()
    asyncio.run(publish(rig.stack.bootstrap, records))
    deadline = time.monotonic() + 60
    while rig.accounted() - before < len(values):
        assert rig.worker.alive, "worker died:\n" + rig.worker.logs()[-3000:]
        assert time.monotonic() < deadline, (
            f"accounted {rig.accounted() - before} of {len(values)} sent: {rig.counters()}\n"
            + rig.worker.logs()[-2000:]
        )
        time.sleep(0.2)
    assert rig.accounted() - before == len(values)  # nothing counted twice either
    assert rig.worker.alive
    dead = [
        decode(DeadLetter, v)
        for v in asyncio.run(read_topic(rig.stack.bootstrap, TOPICS.dead_letter, 1.0))
    ]
    kept = {d.raw_bytes() for d in dead}
    assert all(d.reason and d.stage.startswith("stream.") for d in dead)
    assert set(refused) <= kept  # every refused payload is on the dead-letter topic, exactly


def test_fuzz_rig_counts(rig: Rig) -> None:
    """The counters the property relies on exist and move (guards against a vacuous pass)."""
    c = rig.counters()
    assert c.get("applied", 0) > 0 and c.get("dead_letter", 0) > 0

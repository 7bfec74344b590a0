"""Fixtures for the fault matrix: a fresh stack per test (faults break it on purpose), a
registry with a model that raises alerts, and a worker started the way an operator does."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from riskstream.stack import Stack, StackError, free_port, s3rver_binary
from tests.faults.harness import Replay, Worker, create_topics, make_replay, publish_model


def _fresh(tmp_path: Path, durable: bool) -> Iterator[Stack]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    if durable:
        try:
            s3rver_binary()
        except StackError as exc:
            pytest.skip(str(exc))
    st = Stack(
        state_dir=tmp_path / "stack",
        kafka_port=free_port(),
        redis_port=free_port(),
        s3_port=free_port(),
        s3_gate_port=free_port(),
        redis_appendonly=True,  # a Redis restart must keep what it acknowledged
        durable=durable,
    )
    st.up()
    try:
        asyncio.run(create_topics(st.bootstrap))
        yield st
    finally:
        st.down()


@pytest.fixture
def fresh_stack(tmp_path: Path) -> Iterator[Stack]:
    """Broker (memory engine) + Redis of its own: faults here must not hit other tests."""
    yield from _fresh(tmp_path, durable=False)


@pytest.fixture
def durable_stack(tmp_path: Path) -> Iterator[Stack]:
    """Durable broker (Tansu s3:// on s3rver) + Redis of its own."""
    yield from _fresh(tmp_path, durable=True)


@pytest.fixture(scope="session")
def fault_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fault-registry")
    # act on 0.55: the end-of-day risks of the Moodle fault replay peak near 0.6, and the
    # verdict needs alerts to prove none is lost or duplicated
    publish_model(root, high=0.55, medium=0.5, rearm=0.4)
    return root


@pytest.fixture(scope="session")
def replay() -> Replay:
    return make_replay()


@pytest.fixture
def worker_for(tmp_path: Path, fault_registry: Path) -> Iterator[object]:
    """``worker_for(stack)`` -> a Worker; every worker started here is stopped at the end."""
    made: list[Worker] = []

    def make(stack: Stack, **env: str) -> Worker:
        w = Worker(stack, fault_registry, tmp_path / f"worker{len(made)}", **env)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop(timeout=5)


def ref_url(stack: Stack) -> str:
    """Database 1 of the same Redis holds the uninterrupted reference run."""
    return stack.redis_url.rsplit("/", 1)[0] + "/1"

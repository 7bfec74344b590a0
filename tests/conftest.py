"""Shared fixtures: a real broker and a real Redis on free loopback ports, via riskstream.stack."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from riskstream.stack import Stack, free_port

REPO = Path(__file__).resolve().parent.parent
SHARED = next(
    (p / "shared" for p in REPO.parents if (p / "shared" / "datasets").is_dir()),
    REPO.parent / "shared",
)
OULAD_DIR = Path(os.environ.get("RISKSTREAM_DATA_DIR", SHARED / "datasets" / "oulad"))
MOODLE_RECORDED = SHARED / "moodle-recorded"


def _need_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One broker + Redis for the whole session (memory storage)."""
    _need_redis()
    st = Stack(
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_port=free_port(),
        redis_port=free_port(),
        redis_appendonly=False,
    )
    st.up()
    try:
        yield st
    finally:
        st.down()


@pytest.fixture
def redis_client(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes that import the project from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.update(extra)
    return env

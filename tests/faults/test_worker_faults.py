"""Fault matrix, worker side: Redis stopped and restarted mid-replay; the durable broker
killed (-9) and restarted mid-replay together with the worker.

Each test replays the same records (events for 30 students, malformed records mixed in)
through ``riskstream worker`` in a child process while the fault happens, and then holds
the result against an uninterrupted run (``harness.assert_exactly_once``): every event
applied exactly once (state equal to the reference), every malformed record on the
dead-letter topic with a reason, the same set of alert ids, no duplicate in ``rs:alerts``.

The plain kill -9 of the worker on the memory broker is the stream engineer's test
(tests/stream_app); a broker restart on the memory engine loses its topics by design
(tests/riskstream/test_stack_durable.py), which is why the broker fault runs durable.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest
import redis

from riskstream.stack import Stack
from tests.faults.conftest import ref_url
from tests.faults.harness import (
    Replay,
    Worker,
    assert_exactly_once,
    finish,
    publish,
    put_calendars,
    reference,
    wait_until,
)

pytestmark = pytest.mark.slow

RATE = 400.0  # records/s offered: the replay takes a few seconds, so faults land mid-way


def test_redis_stop_and_restart_mid_replay(
    fresh_stack: Stack,
    worker_for: Callable[..., Worker],
    replay: Replay,
    fault_registry: object,
) -> None:
    st = fresh_stack
    client = redis.Redis.from_url(st.redis_url)
    put_calendars(client)
    ref = asyncio.run(reference(ref_url(st), fault_registry, replay))  # type: ignore[arg-type]
    worker = worker_for(st)
    worker.start()
    cut = len(replay.records) // 3
    down_at: list[float] = []

    def stop_redis(n: int) -> None:
        if n >= cut and not down_at:
            # Only once the worker has applied something: the fault lands mid-replay.
            wait_until(lambda: bool(client.keys("rs:st:*")), 45, "first applied batch", worker)
            st.stop_service("redis")  # SIGTERM: Redis writes its AOF and exits
            down_at.append(time.monotonic())

    asyncio.run(publish(st.bootstrap, replay.records, rate=RATE, on_progress=stop_redis))
    assert down_at, "Redis was never stopped"
    time.sleep(max(0.0, 3.0 - (time.monotonic() - down_at[0])))  # down for >= 3 s
    assert worker.alive, "the worker must wait for Redis, not exit:\n" + worker.logs()[-2000:]
    st.start_service("redis")
    client = redis.Redis.from_url(st.redis_url)
    got = finish(st, replay, worker)
    assert_exactly_once(got, ref, replay)
    assert worker.alive
    assert "retrying" in worker.logs()  # it saw the outage and retried (structured log)


def test_durable_broker_kill9_and_worker_kill9_mid_replay(
    durable_stack: Stack,
    worker_for: Callable[..., Worker],
    replay: Replay,
    fault_registry: object,
) -> None:
    """Durable broker: kill -9 worker and broker together, restart both; later kill -9 the
    broker alone under a running worker. Topics, records and the group's offsets survive."""
    st = durable_stack
    put_calendars(redis.Redis.from_url(st.redis_url))
    ref = asyncio.run(reference(ref_url(st), fault_registry, replay))  # type: ignore[arg-type]
    client = redis.Redis.from_url(st.redis_url)
    worker = worker_for(st)
    worker.start()
    thirds = [len(replay.records) * i // 3 for i in range(4)]

    asyncio.run(publish(st.bootstrap, replay.records[: thirds[1]], rate=RATE))
    wait_until(lambda: bool(client.keys("rs:st:*")), 45, "first applied batch", worker)
    worker.kill9()
    st.stop_service("broker", sig=signal.SIGKILL)
    st.start_service("broker")
    asyncio.run(publish(st.bootstrap, replay.records[thirds[1] : thirds[2]], rate=RATE))
    worker.start()

    def kill_broker(n: int) -> None:
        if n == 100:
            st.stop_service("broker", sig=signal.SIGKILL)
            st.start_service("broker")

    # The producer of this test rides through the broker restart too (acks=all, retries).
    asyncio.run(
        publish(st.bootstrap, replay.records[thirds[2] :], rate=RATE, on_progress=kill_broker)
    )
    if not worker.alive:  # a supervisor restarts a worker that gave up on the broker
        worker.start()
    got = finish(st, replay, worker, timeout=90)
    assert_exactly_once(got, ref, replay)

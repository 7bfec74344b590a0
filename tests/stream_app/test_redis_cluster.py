"""The worker's state on a Redis Cluster (3 local masters of Debian's redis-server): every
course's keys share one hash slot, each batch writes one atomic script per course, and the
result equals the single-node result; the alert stream never holds an alert twice."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka.partitioner import murmur2
from redis.cluster import RedisCluster as SyncCluster

from contracts import CourseCalendar, RiskAlert, decode, encode, keys
from riskstream.stack import Stack, free_port, port_is_free
from stream_app.processor import Processor
from stream_app.state import BatchWrite, connect, decode_state, write_batch
from tests.stream_app.helpers import START, ListPublisher, event, handle_for, record

pytestmark = pytest.mark.slow
COURSES, USERS, DAYS = (3, 7, 11, 19, 23), 12, 12


def _ports(n: int) -> list[int]:
    out: list[int] = []
    while len(out) < n:
        p = free_port()
        if p + 10000 < 65536 and port_is_free(p + 10000) and p not in out:
            out.append(p)
    return out


def _cluster_ok(port: int) -> bool:
    info = redis.Redis(port=port).execute_command("CLUSTER INFO")
    state = info.get("cluster_state") if isinstance(info, dict) else info
    return "ok" in str(state)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three masters on loopback, slots spread by ``redis-cli --cluster create``."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.skip("redis-server / redis-cli not installed (scripts/install.sh installs them)")
    root = tmp_path_factory.mktemp("rcluster")
    ports = _ports(3)
    procs = []
    try:
        for p in ports:
            d = root / str(p)
            d.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        *("redis-server", "--port", str(p), "--bind", "127.0.0.1"),
                        *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                        *("--dir", str(d), "--save", "", "--appendonly", "no"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for p in ports:
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis(port=p).ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, f"redis-server on {p} did not start"
                    time.sleep(0.05)
        subprocess.run(
            [
                *("redis-cli", "--cluster", "create"),
                *(f"127.0.0.1:{p}" for p in ports),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while not _cluster_ok(ports[0]):
            assert time.monotonic() < deadline, "cluster did not become ok"
            time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _events() -> list:  # type: ignore[type-arg]
    evs = [
        event(0, user, day + (user + c) / 100, course=c)
        for day in range(DAYS)
        for c in COURSES
        for user in range(USERS)
        if (user + day + c) % 3
    ]
    evs.sort(key=lambda e: e.time)
    return [e.model_copy(update={"event_id": i + 1}) for i, e in enumerate(evs)]


async def _apply(url: str, handle, recs, cals) -> None:  # type: ignore[no-untyped-def]
    r = connect(url)
    for c in cals:
        await r.set(keys.calendar_key(c.site, c.course_id), encode(c))
    proc = Processor(r, ListPublisher(), handle, sweep_partitions=4)  # sweeps close days
    for i in range(0, len(recs), 113):
        await proc.process(recs[i : i + 113])
    await r.aclose()


def test_course_keys_share_a_slot() -> None:
    from redis.crc import key_slot

    site, course = "s1", 7
    slot = key_slot(keys.rank_key(site, course).encode())
    for k in (
        keys.state_key(site, course, 1),
        keys.state_key(site, course, 99),
        keys.profile_key(site, course, 5),
        keys.calendar_key(site, course),
        keys.roster_key(site, course),
    ):
        assert key_slot(k.encode()) == slot
    assert key_slot(keys.ALERT_IDS.encode()) == key_slot(keys.ALERTS_STREAM.encode())
    assert len({key_slot(keys.rank_key(site, c).encode()) for c in range(40)}) > 30


def test_cluster_state_equals_single_node(cluster_url: str, stack: Stack, tmp_path: Path) -> None:
    handle = handle_for(tmp_path, constant_risk=0.9)  # every student alerts once armed
    evs = _events()
    recs = [record(e, i, (murmur2(e.key) & 0x7FFFFFFF) % 4) for i, e in enumerate(evs)]
    cals = [CourseCalendar(site="s1", course_id=c, start=START, length_days=60) for c in COURSES]
    single_url = stack.redis_url[:-1] + "4"
    single = redis.Redis.from_url(single_url)
    single.flushdb()
    asyncio.run(_apply(single_url, handle, recs, cals))
    asyncio.run(_apply(cluster_url, handle, recs, cals))

    port = int(cluster_url.rsplit(":", 1)[1])
    cl = SyncCluster(host="127.0.0.1", port=port)
    nodes = {
        cl.get_node_from_key(keys.rank_key("s1", c)).name
        for c in COURSES  # type: ignore[union-attr]
    }
    assert len(nodes) >= 2  # the courses really live on different masters
    n = 0
    for c in COURSES:
        for u in range(USERS):
            want = single.hgetall(keys.state_key("s1", c, u))
            got = cl.hgetall(keys.state_key("s1", c, u))
            assert bool(want) == bool(got)
            if not want:
                continue
            n += 1
            a, b = decode_state(want, handle.n_day), decode_state(got, handle.n_day)
            assert (a.day, a.last_id, a.level, a.alert, a.risk) == (
                b.day,
                b.last_id,
                b.level,
                b.alert,
                b.risk,
            )
            assert a.traj.tolist() == b.traj.tolist()
        assert single.zrange(keys.rank_key("s1", c), 0, -1, withscores=True) == cl.zrange(
            keys.rank_key("s1", c), 0, -1, withscores=True
        )
    assert n > 0
    assert {int(x) for x in cl.smembers(keys.courses_key("s1"))} == set(COURSES)

    def ids(r: object) -> list[str]:
        rows = r.xrange(keys.ALERTS_STREAM)  # type: ignore[attr-defined]
        return [decode(RiskAlert, f[b"alert"]).alert_id for _, f in rows]

    want_ids, got_ids = ids(single), ids(cl)
    assert want_ids and sorted(got_ids) == sorted(want_ids) and len(set(got_ids)) == len(got_ids)

    # a replayed write (crash after the alerts, before the states) appends no alert twice
    payloads = [f[b"alert"] for _, f in cl.xrange(keys.ALERTS_STREAM)][:3]

    async def rewrite() -> None:
        r = connect(cluster_url)
        await write_batch(r, BatchWrite(alerts=payloads))
        await r.aclose()

    asyncio.run(rewrite())
    assert sorted(ids(cl)) == sorted(want_ids)
    cl.close()

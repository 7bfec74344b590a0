"""Backfill (N processes, large batches, no broker) ends in the same state as live processing
(the processor over the same events in small batches, which the crash test shows the real
worker matches): per-student state, and the set of alert ids in rs:alerts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from aiokafka.partitioner import murmur2

from contracts import CourseCalendar, RiskAlert, decode, encode, keys
from models.testing import tiny_model
from riskstream.replay import load_oulad, resolve_data_dir, write_context
from riskstream.stack import Stack
from stream_app.backfill import run_backfill
from stream_app.processor import Processor
from stream_app.reload import find_explainer, load_handle
from stream_app.runtime import WorkerConfig
from stream_app.state import connect, decode_state
from tests.conftest import REPO, subprocess_env
from tests.stream_app.helpers import START, ListPublisher, record
from tests.stream_app.test_crash_replay import N_USERS, _events, _snapshot, _thresholds

pytestmark = pytest.mark.slow


async def _live(url: str, handle, recs, batch: int = 97) -> None:  # type: ignore[no-untyped-def]
    r = connect(url)
    proc = Processor(
        r,
        ListPublisher(),
        handle,
        explainer=find_explainer(),
        explain_levels=frozenset({"high"}),
        sweep_partitions=4,  # as the worker on a 4-partition topic (and the backfill)
    )
    for i in range(0, len(recs), batch):
        await proc.process(recs[i : i + batch])
    await r.aclose()


def _alert_ids(r: redis.Redis, site: str) -> list[str]:
    out = [decode(RiskAlert, f[b"alert"]) for _, f in r.xrange("rs:alerts")]
    return [a.alert_id for a in out if a.site == site]


def test_backfill_matches_live_processing(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    site = f"bf{uuid.uuid4().hex[:8]}"
    evs = _events(site)
    cal = CourseCalendar(site=site, course_id=7, start=START, length_days=60)
    th = _thresholds(tmp_path / "pilot", evs, cal)
    reg = tmp_path / "reg"
    tiny_model(reg, seed=11, hidden=8, thresholds=th)
    handle = load_handle(reg, "cpu")

    live_url = stack.redis_url[:-1] + "2"
    live = redis.Redis.from_url(live_url)
    live.flushdb()
    live.set(keys.calendar_key(site, 7), encode(cal))
    recs = [record(e, i, (murmur2(e.key) & 0x7FFFFFFF) % 4) for i, e in enumerate(evs)]
    asyncio.run(_live(live_url, handle, recs))
    want = _snapshot(live, site, handle.n_day)
    want_alerts = set(_alert_ids(live, site))
    assert len(want) == N_USERS and want_alerts

    redis_client.set(keys.calendar_key(site, 7), encode(cal))
    cfg = WorkerConfig(
        bootstrap=stack.bootstrap, redis_url=stack.redis_url, registry=reg, sweep=True
    )
    seen: list[int] = []
    rep = run_backfill(
        cfg,
        [(e.key, encode(e), e.time.toordinal()) for e in evs],
        shards=2,
        batch=400,
        on_progress=lambda r: seen.append(r.events),
    )
    assert not rep.errors
    assert rep.events == rep.applied == len(evs)
    assert seen == sorted(seen) and seen[-1] == len(evs) and len(seen) > 2  # progress
    got = _snapshot(redis_client, site, handle.n_day)
    assert set(got) == set(want)
    for user, st in want.items():
        assert got[user]["ints"] == st["ints"], user
        assert got[user]["floats"] == pytest.approx(st["floats"], abs=1e-5)
    ids = _alert_ids(redis_client, site)
    assert len(ids) == len(set(ids)) and set(ids) == want_alerts
    # a second backfill of the same events changes nothing (ids already applied)
    again = run_backfill(cfg, [(e.key, encode(e)) for e in evs], shards=2, batch=1000)
    assert again.duplicates == len(evs) and again.applied == 0
    assert _snapshot(redis_client, site, handle.n_day).keys() == got.keys()


def test_backfill_cli_on_an_oulad_sample(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    data = resolve_data_dir(Path("../shared/datasets/oulad"))
    if not (data / "studentVle.parquet").is_file():
        pytest.skip("OULAD Parquet files not found (../shared/datasets/oulad)")
    site = f"bo{uuid.uuid4().hex[:8]}"
    reg = tmp_path / "reg"
    tiny_model(reg, seed=5, hidden=8)
    handle = load_handle(reg, "cpu")
    src = load_oulad(data, "AAA/2013J", site, max_students=6)
    evs = list(src.events)
    env = subprocess_env(
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_MODEL_REGISTRY=str(reg),
        RISKSTREAM_DATA_DIR=str(data),
        RISKSTREAM_SITE=site,
    )
    out = subprocess.run(
        [
            *(sys.executable, "-m", "riskstream", "backfill", "--oulad", "AAA/2013J"),
            *("--max-students", "6", "--workers", "2", "--batch", "500"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"{len(evs):,}" in out.stdout and "backfill" in out.stdout

    live_url = stack.redis_url[:-1] + "3"
    live = redis.Redis.from_url(live_url)
    live.flushdb()
    write_context(live, calendars=src.calendars, profiles=src.profiles)
    recs = [record(e, i, (murmur2(e.key) & 0x7FFFFFFF) % 4) for i, e in enumerate(evs)]
    asyncio.run(_live(live_url, handle, recs, batch=50))
    users = sorted({e.user_id for e in evs})
    course = evs[0].course_id
    for u in users:
        want = decode_state(live.hgetall(keys.state_key(site, course, u)), handle.n_day)
        got = decode_state(redis_client.hgetall(keys.state_key(site, course, u)), handle.n_day)
        assert (got.day, got.last_id, got.level, got.alert) == (
            want.day,
            want.last_id,
            want.level,
            want.alert,
        )
        assert got.risk == pytest.approx(want.risk, abs=1e-5)
        assert got.traj.tolist() == pytest.approx(want.traj.tolist(), abs=1e-3)

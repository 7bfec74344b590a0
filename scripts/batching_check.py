"""Does the batching change the outcome? One in-process Processor (sweeps on, 4 partitions)
applies an OULAD selection with the shipped model to a private Redis, in batches of N events
cut at UTC days ("day", as `riskstream backfill`) or not ("nocut", as a worker draining a
backlog); it prints the time, the alerts and a digest of the states, and dumps alert ids and
per-student states as JSON to diff two runs. Used for BENCHMARKS.md (issue 16, batch
growth); run it under py-spy to profile the backfill's processor.

    PYTHONPATH=. python scripts/batching_check.py BBB/2013J 300 nocut 50 /tmp/a.json
    PYTHONPATH=. python scripts/batching_check.py BBB/2013J 300 day 8000 /tmp/b.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench._data import oulad_dir
from contracts import RiskAlert, decode, encode
from models.pretrained import SHIPPED
from models.registry import Registry
from riskstream.replay import load_oulad, write_context
from riskstream.stack import Stack, free_port
from stream_app.backfill import BACKFILL_TOPIC, _Discard, shard_of
from stream_app.records import InRecord


async def apply(url: str, reg: Path, evs: list[tuple[bytes, bytes, int]], cut: bool, n: int) -> int:
    from stream_app.inference import InferenceEngine
    from stream_app.processor import Processor
    from stream_app.reload import find_explainer, load_handle
    from stream_app.state import connect

    eng = InferenceEngine(threads=1)
    handle = await eng.call(load_handle, reg, "cpu")
    rc = connect(url, socket_timeout=30)
    proc = Processor(
        rc,
        _Discard(),
        handle,
        engine=eng,
        explainer=find_explainer(),
        explain_levels=frozenset({"high"}),
        sweep_partitions=4,
        sweep_lag_days=1,
    )
    alerts = 0
    chunk: list[InRecord] = []
    day = None
    for off, (key, val, d) in enumerate(evs):
        if chunk and ((cut and d != day) or len(chunk) >= n):
            alerts += len((await proc.process(chunk)).alerts)
            chunk = []
        day = d
        chunk.append(InRecord(BACKFILL_TOPIC, shard_of(key, 4), off, key, val, None))
    if chunk:
        alerts += len((await proc.process(chunk)).alerts)
    await rc.aclose()
    eng.close()
    return alerts


def dump(r: Any, path: Path) -> str:
    h = hashlib.sha256()
    states: dict[str, Any] = {}
    for k in sorted(r.scan_iter("rs:st:*", count=10_000)):
        d = r.hgetall(k)
        for f in sorted(d):
            if f != b"upd":  # the wall clock of the write
                h.update(k + f + d[f])
        traj = np.frombuffer(d.get(b"traj", b""), np.float16).astype(float).tolist()
        states[k.decode()] = [d.get(f, b"").decode() for f in (b"day", b"last_id", b"alert")]
        states[k.decode()].append(traj)
    alerts = [decode(RiskAlert, f[b"alert"]) for _, f in r.xrange("rs:alerts")]
    rows = [(a.alert_id, a.user_id, a.course_id, a.day, a.risk) for a in alerts]
    path.write_text(json.dumps({"alerts": rows, "states": states}))
    return h.hexdigest()[:16]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("selection")
    p.add_argument("max_students", type=int)
    p.add_argument("cut", choices=["day", "nocut"])
    p.add_argument("batch", type=int)
    p.add_argument("out", type=Path)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rs-batching-"))
    reg = tmp / "registry"
    Registry(reg).import_version(SHIPPED)
    stack = Stack(state_dir=tmp / "stack", kafka_port=free_port(), redis_port=free_port())
    stack.up()
    try:
        src = load_oulad(oulad_dir(), a.selection, "oulad", a.max_students)
        evs = [(e.key, encode(e), e.time.toordinal()) for e in src.events]
        r = redis.Redis.from_url(stack.redis_url)
        r.flushdb()
        write_context(r, calendars=src.calendars, profiles=src.profiles)
        t0 = time.perf_counter()
        alerts = asyncio.run(apply(stack.redis_url, reg, evs, a.cut == "day", a.batch))
        dt = time.perf_counter() - t0
        print(f"apply {len(evs)} events {dt:.1f}s {len(evs) / dt:.0f} ev/s alerts {alerts}")
        print("state digest", dump(r, a.out), "alerts", r.xlen("rs:alerts"))
    finally:
        stack.down()


if __name__ == "__main__":
    main()

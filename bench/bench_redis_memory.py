"""Redis memory per enrolment, with the stream's own state code (``stream_app.state``).

Fills a private redis-server (started on a free port, no persistence) with N enrolments as
the worker writes them: the state hash from ``encode_state(full=True)`` (model state from
the model's own ``init_state``, open-day accumulator, rolling window, trajectory, alert
state), the ranking sorted-set entry, the course set, and a StudentProfile JSON. The figure
is Redis's own ``used_memory`` after minus before, divided by N, at a few course days
(the window fills up to W days, the trajectory grows by one float16 per day).

    python3 -m bench.bench_redis_memory                    # 100,000 enrolments
    python3 -m bench.bench_redis_memory --n 10000 --days 30 270
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import redis
import redis.asyncio as aredis
import torch

from bench._report import console, table, write
from contracts import StudentProfile, encode
from riskstream.stack import Stack, free_port
from stream_app.alerting import AlertState
from stream_app.state import BatchWrite, StudentKey, StudentState, encode_state, write_batch

LIMIT_BYTES = 6 * 1024  # issue 5: at most 6 KB per enrolment


def model_state_row(hidden: int, n_static: int) -> dict[str, np.ndarray]:
    """One student's model state as the worker stores it: the trainer's model (running
    aggregates and summaries included), so keys and shapes are what a worker writes."""
    from dataclasses import replace

    from models.features import DEFAULT_SPEC
    from models.train import TrainConfig, new_model

    spec = DEFAULT_SPEC
    if n_static != spec.n_static:
        spec = replace(spec, static_features=spec.static_features[:n_static])
    model = new_model(TrainConfig(hidden=hidden, spec=spec)).eval()
    with torch.inference_mode():
        st = model.init_state(torch.rand(1, n_static))
    return {k: v[0].numpy() for k, v in st.items()}


def student_state(
    rng: np.random.Generator, day: int, window: int, dims: tuple[int, int, int], base: dict
) -> StudentState:
    n_day, n_acc, _ = dims
    return StudentState(
        model_state={k: rng.standard_normal(v.shape).astype(np.float32) for k, v in base.items()},
        acc=rng.random(n_acc, dtype=np.float32),
        day=day,
        d0=0,
        win=rng.random((min(day, window), n_day), dtype=np.float32),
        last_id=int(rng.integers(1, 10**9)),
        ver="v0001",
        spec="0123456789ab",
        risk=float(rng.random()),
        level="medium",
        upd=1.7e9 + float(rng.random()),
        alert=AlertState(armed=False, last_day=max(0, day - 3), level="medium"),
        traj=rng.random(day).astype(np.float16),
    )


async def fill(
    url: str, n: int, day: int, window: int, dims: tuple[int, int, int], courses: int, batch: int
) -> None:
    """Write N enrolments through ``write_batch`` in worker-sized batches."""
    rng = np.random.default_rng(day)
    base = model_state_row(dims[2], 8)
    r = aredis.Redis.from_url(url)
    try:
        for start in range(0, n, batch):
            w = BatchWrite()
            profiles = {}
            for i in range(start, min(n, start + batch)):
                key = StudentKey("moodle.example.edu", 1000 + i % courses, 100_000 + i)
                st = student_state(rng, day, window, dims, base)
                w.states[key] = encode_state(st, full=True)
                w.ranks[key] = st.risk
                profiles[key.profile_key] = encode(
                    StudentProfile(
                        site=key.site,
                        user_id=key.user,
                        course_id=key.course,
                        num_prev_attempts=0,
                        studied_credits=60,
                        highest_education="A Level or Equivalent",
                        registration_day=-30,
                    )
                )
            await write_batch(r, w)
            await r.mset(profiles)
    finally:
        await r.aclose()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def sample_breakdown(client: redis.Redis) -> dict[str, int]:
    """MEMORY USAGE of one enrolment's keys (the rest is per-key overhead in the keyspace)."""
    key = next(iter(client.scan_iter("rs:st:*", count=100)))
    prof = next(iter(client.scan_iter("rs:prof:*", count=100)))
    fields = client.hgetall(key)
    return {
        "state_hash": int(client.memory_usage(key, samples=0) or 0),
        "profile": int(client.memory_usage(prof, samples=0) or 0),
        "state_fields": len(fields),
        "state_payload": sum(len(k) + len(v) for k, v in fields.items()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="enrolments")
    p.add_argument("--days", type=int, nargs="+", default=[30, 135, 270], help="course days")
    p.add_argument("--window", type=int, default=28, help="day vectors kept (stream_window_days)")
    p.add_argument("--hidden", type=int, default=128, help="LSTM hidden size")
    p.add_argument("--courses", type=int, default=50)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)

    from models.features import DEFAULT_SPEC, Featurizer

    dims = (DEFAULT_SPEC.n_day, Featurizer(DEFAULT_SPEC).n_acc, a.hidden)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rs-bench-redis-") as tmp:
        st = Stack(state_dir=Path(tmp), kafka_port=free_port(), redis_port=free_port())
        st.redis_appendonly = False
        st.start_service("redis")
        client = redis.Redis.from_url(st.redis_url)
        try:
            for day in a.days:
                client.flushall()
                before = used_memory(client)
                asyncio.run(fill(st.redis_url, a.n, day, a.window, dims, a.courses, a.batch))
                after = used_memory(client)
                per = (after - before) / a.n
                rows.append(
                    {
                        "course_day": day,
                        "enrolments": a.n,
                        "keys": client.dbsize(),
                        "total_bytes": after - before,
                        "bytes_per_enrolment": per,
                        "within_6kb": per <= LIMIT_BYTES,
                        **sample_breakdown(client),
                    }
                )
        finally:
            client.close()
            st.stop_service("redis")
    table(
        f"Redis memory for {a.n:,} enrolments (used_memory delta; hidden={a.hidden}, "
        f"window={a.window} days, n_day={dims[0]}, n_acc={dims[1]})",
        ["course day", "total MB", "bytes/enrolment", "<= 6 KB", "state hash B", "profile B"],
        [
            [
                r["course_day"],
                r["total_bytes"] / 1e6,
                r["bytes_per_enrolment"],
                "yes" if r["within_6kb"] else "NO",
                r["state_hash"],
                r["profile"],
            ]
            for r in rows
        ],
    )
    console.print(
        "[dim]per enrolment: state hash + profile JSON + ranking entry + keyspace overhead[/]"
    )
    write("bench_redis_memory", a.out, vars(a), rows)
    return {"rows": rows}


if __name__ == "__main__":
    main()

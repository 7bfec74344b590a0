"""Backfill benchmark: one OULAD presentation-year applied to Redis by `riskstream backfill`
(stream_app.backfill: N processes split by student, large batches, no broker).

Prints, per worker count, the time to load the OULAD selection and format its records (as
`riskstream backfill` does; batches not cut at days), the apply time, the total and
events/s, and writes JSON (machine, load average, commit). The model is the shipped OULAD
model (models/pretrained, hidden 64); Redis runs as the stack runs it (AOF, fsync always).

    python3 -m bench.bench_backfill               # 2014B (every module), 1 and 2 processes
    python3 -m bench.bench_backfill --oulad AAA/2014J --workers 2 --max-students 200
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench._data import oulad_dir
from bench._report import console, table, write
from contracts import encode


def _ticker(n: int, total: int) -> Any:
    last = [0.0]

    def tick(rep: Any) -> None:
        if time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            console.print(
                f"  {n} process(es): {rep.events:,}/{total:,} {rep.events_per_s:,.0f} ev/s"
            )

    return tick


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--oulad", default="2014B", help="selection: 2014B, GGG/2014B, ...")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=8000)
    p.add_argument("--max-students", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)

    from models.pretrained import SHIPPED
    from models.registry import Registry
    from riskstream.replay import load_oulad, write_context
    from riskstream.stack import Stack, free_port
    from stream_app.backfill import run_backfill
    from stream_app.runtime import WorkerConfig

    rows = []
    with tempfile.TemporaryDirectory(prefix="rs-bench-backfill-") as tmpd:
        tmp = Path(tmpd)
        reg = tmp / "registry"
        Registry(reg).import_version(SHIPPED)
        stack = Stack(
            state_dir=tmp / "stack", kafka_port=free_port(), redis_port=free_port()
        )  # Redis with AOF appendfsync always, as the stack runs it
        stack.up()
        try:
            for n in a.workers:
                t0 = time.perf_counter()
                src = load_oulad(oulad_dir(), a.oulad, "oulad", a.max_students)
                # as `riskstream backfill`: (key, JSON, UTC day) records (no cut at days)
                if src.records is not None:
                    events = list(src.records())
                else:
                    events = [(e.key, encode(e), e.time.toordinal()) for e in src.events]
                load_s = time.perf_counter() - t0
                r = redis.Redis.from_url(stack.redis_url)
                r.flushdb()
                write_context(r, calendars=src.calendars, profiles=src.profiles)
                cfg = WorkerConfig(
                    bootstrap=stack.bootstrap, redis_url=stack.redis_url, registry=reg
                )
                load1 = os.getloadavg()[0]
                tick = _ticker(n, len(events))

                rep = run_backfill(cfg, events, shards=n, batch=a.batch, on_progress=tick)
                states = sum(1 for _ in r.scan_iter("rs:st:*", count=10_000))
                r.close()
                rows.append(
                    {
                        "workers": n,
                        "events": rep.events,
                        "students": states,
                        "load_s": round(load_s, 1),
                        "apply_s": round(rep.seconds, 1),
                        "total_s": round(load_s + rep.seconds, 1),
                        "events_per_s": round(rep.events_per_s),
                        "alerts": rep.alerts,
                        "errors": rep.errors,
                        "load_avg_start": round(load1, 2),
                        "load_avg_end": round(os.getloadavg()[0], 2),
                    }
                )
                del events, src
        finally:
            stack.down()
    table(
        f"Backfill: OULAD {a.oulad} -> Redis (riskstream backfill)",
        [
            "processes",
            "events",
            "enrolments",
            "load s",
            "apply s",
            "total s",
            "events/s",
            "alerts",
            "load avg",
        ],
        [
            [
                r["workers"],
                r["events"],
                r["students"],
                r["load_s"],
                r["apply_s"],
                r["total_s"],
                r["events_per_s"],
                r["alerts"],
                f"{r['load_avg_start']}-{r['load_avg_end']}",
            ]
            for r in rows
        ],
    )
    write("bench_backfill", a.out, {k: str(v) for k, v in vars(a).items()}, rows)
    return {"rows": rows}


if __name__ == "__main__":
    main()

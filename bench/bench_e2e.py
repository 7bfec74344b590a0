"""End to end on the embedded stack: OULAD events -> broker -> `riskstream worker` -> Redis ->
alerts, at fixed offered loads, plus the sustained maximum.

For each offered load (default 500, 2,000 and 10,000 events/s) a child process sends OULAD
events (studentVle rows in time order, keyed by student) at that rate for ``--seconds``; the
worker is the real one (`python3 -m riskstream worker`, Faust, one process). A consumer in
this process reads the alerts and risk.latest topics as they arrive. Latency is measured
from the event's producer timestamp (CreateTime) to the moment its alert (or its student's
risk score) is read back here: the whole path, broker and Redis included. "sustained" is
events applied per second while the load was offered; the "max" row sends the events first
and times how fast one worker drains them.

    python3 -m bench.bench_e2e                               # 500, 2000, 10000 ev/s + max
    python3 -m bench.bench_e2e --loads 2000 --seconds 20 --registry var/registry
    python3 -m bench.bench_e2e --durable                     # broker on s3:// (s3rver)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench._data import oulad_dir
from bench._load import paced_send, send_all
from bench._report import console, table, write
from bench.bench_stream import spy
from contracts import TOPICS, CourseCalendar, LmsEvent, RiskAlert, RiskScore, decode, encode, keys
from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack, free_port

REPO = Path(__file__).resolve().parent.parent


def load_events(
    n: int, module: str, presentation: str
) -> tuple[list[LmsEvent], list[CourseCalendar]]:
    from models.oulad import Oulad

    o = Oulad(oulad_dir())
    cals = o.calendars()
    evs: list[LmsEvent] = []
    for ev in o.iter_events(module, presentation):
        evs.append(ev)
        if len(evs) >= n:
            break
    return evs, [cals[c] for c in sorted({e.course_id for e in evs})]


def bench_registry(root: Path, given: Path | None) -> Path:
    """The given registry, else a production-size LSTM (hidden 128) with a widened risk head
    so that OULAD traffic raises alerts (an untrained model's risks sit near 0.5)."""
    if given is not None:
        return given
    import torch

    from models.features import DEFAULT_SPEC
    from models.lstm import LstmRisk
    from models.registry import Registry, Thresholds

    torch.manual_seed(0)
    model = LstmRisk(DEFAULT_SPEC.n_day, DEFAULT_SPEC.n_static, hidden=128).eval()
    with torch.no_grad():
        model.heads.out.weight[0] *= 10.0
        model.heads.out.bias[0] = 0.0
    Registry(root).publish(
        model,
        DEFAULT_SPEC,
        Thresholds(medium=0.4, high=0.5, rearm=0.35, min_days=2, cooldown_days=1),
        metrics={},
        data_summary={"source": "bench_e2e (random init, widened head)"},
    )
    return root


class Watch:
    """Reads alerts and risk scores as they arrive; records the wall time of each."""

    def __init__(self, bootstrap: str, fetch_wait_ms: int = 10) -> None:
        self.bootstrap = bootstrap
        self.fetch_wait_ms = fetch_wait_ms
        self.alerts: list[tuple[float, RiskAlert]] = []
        self.scores: list[tuple[float, RiskScore]] = []
        self.stop = False

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        c = AIOKafkaConsumer(
            TOPICS.alerts,
            TOPICS.risk_latest,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",  # fresh stack, so empty; "latest" misread durable
            enable_auto_commit=False,
            # Tansu answers a fetch only after this wait when nothing new is there (it does not
            # wake fetches on produce), so a low-latency reader keeps it short; durable
            # fetches (S3 listings) need >= 500 ms to see anything (ARCHITECTURE.md)
            fetch_max_wait_ms=self.fetch_wait_ms,
        )
        await c.start()
        try:
            while not self.stop:
                got = await c.getmany(timeout_ms=50, max_records=20_000)
                now = time.time()
                for tp, msgs in got.items():
                    for m in msgs:
                        if tp.topic == TOPICS.alerts:
                            self.alerts.append((now, decode(RiskAlert, m.value or b"")))
                        else:
                            self.scores.append((now, decode(RiskScore, m.value or b"")))
        finally:
            await c.stop()


async def event_times(
    bootstrap: str, topic: str
) -> tuple[dict[int, float], dict[tuple[int, int], list[float]]]:
    """event_id -> producer timestamp (s), and (course, user) -> sorted send timestamps."""
    import json

    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    out: dict[int, float] = {}
    per: dict[tuple[int, int], list[float]] = {}
    try:
        await c.topics()
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        idle = 0
        while idle < 4:
            got = await c.getmany(timeout_ms=250, max_records=50_000)
            n = 0
            for msgs in got.values():
                for m in msgs:
                    ev = json.loads(m.value or b"{}")
                    out[int(ev["event_id"])] = m.timestamp / 1000
                    per.setdefault((ev["course_id"], ev["user_id"]), []).append(m.timestamp / 1000)
                    n += 1
            idle = 0 if n else idle + 1
    finally:
        await c.stop()
    for ts in per.values():
        ts.sort()
    return out, per


def cause_time(per: dict[tuple[int, int], list[float]], a: RiskAlert, seen: float) -> float | None:
    """Send time of the student's latest event sent before the alert was read: the event whose
    batch raised it. (An alert on a committed day names the day's last event as its trigger,
    which was sent earlier; the event that rolled the day over is the one that caused it.)"""
    import bisect

    ts = per.get((a.course_id, a.user_id))
    if not ts:
        return None
    i = bisect.bisect_right(ts, seen)
    return ts[i - 1] if i else None


def release_clock(
    events: list[LmsEvent], cals: list[CourseCalendar], partitions: int = 4
) -> dict[tuple[int, int], tuple[list[int], list[int]]]:
    """(course, partition) -> (course days, event ids) in send order: the course clock the
    worker keeps per partition (events of one partition arrive in time order)."""
    from aiokafka.partitioner import murmur2

    from models.features import _day_index

    by_course = {c.course_id: c for c in cals}
    out: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for e in events:
        part = (murmur2(e.key) & 0x7FFFFFFF) % partitions
        days, ids = out.setdefault((e.course_id, part), ([], []))
        day = _day_index(e.time, by_course[e.course_id])
        days.append(max(day, days[-1]) if days else day)  # the clock never goes back
        ids.append(e.event_id)
    return out


def release_event(
    clock: dict[tuple[int, int], tuple[list[int], list[int]]],
    a: RiskAlert,
    lag_days: int = 1,
    partitions: int = 4,
) -> int | None:
    """The event whose batch admitted the alert: alerts of course day d are admitted at the
    course-clock sweep (stream_app.processor ``_sweep_due``/``_release``), in the batch whose
    events first take the student's partition's clock to d + 1 + SWEEP_LAG_DAYS; the engine
    latency of an alert runs from that event's send time."""
    import bisect

    from aiokafka.partitioner import murmur2

    part = (murmur2(f"{a.site}:{a.user_id}".encode()) & 0x7FFFFFFF) % partitions
    got = clock.get((a.course_id, part))
    if got is None:
        return None
    days, ids = got
    i = bisect.bisect_left(days, a.day + 1 + lag_days)
    return ids[i] if i < len(ids) else None


def start_worker(
    stack: Stack, registry: Path, topic: str, group: str, log: Path, engine: str = "faust"
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_MODEL_REGISTRY=str(registry),
        RISKSTREAM_STREAM_GROUP=group,
        RISKSTREAM_STREAM_EVENTS_TOPIC=topic,
        RISKSTREAM_STREAM_SESSION_TIMEOUT_MS="6000",
        RISKSTREAM_DEVICE="cpu",
        RISKSTREAM_LOG_LEVEL=os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "riskstream", "worker", "--device", "cpu", "--engine", engine],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
    )


def applied(r: redis.Redis, last: dict[str, int]) -> int:
    """How many students have their last event applied."""
    pipe = r.pipeline(transaction=False)
    for key in last:
        pipe.hget(key, "last_id")
    return sum(int(v or -1) >= last[k] for v, k in zip(pipe.execute(), last, strict=True))


def pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) * 1000 if xs else None


def last_ids(events: list[LmsEvent], partitions: int = 4) -> dict[str, int]:
    """The state key and id of the last event of each partition: one partition is applied in
    order, so once these are applied, all are. (Polling every student's key cost the bench
    process enough CPU, under its reader thread, to show up in the measured latency.)"""
    from aiokafka.partitioner import murmur2

    last: dict[int, tuple[str, int]] = {}
    for e in events:
        p = (murmur2(e.key) & 0x7FFFFFFF) % partitions
        last[p] = (keys.state_key(e.site, e.course_id, e.user_id), e.event_id)
    return dict(last.values())


def wait_applied(r: redis.Redis, last: dict[str, int], worker: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while applied(r, last) < len(last):
        if time.monotonic() > deadline or worker.poll() is not None:
            return False
        time.sleep(0.05)
    return True


def session(
    stack: Stack,
    registry: Path,
    warm: list[LmsEvent],
    phases: list[tuple[float | None, list[LmsEvent]]],
    cals: list[CourseCalendar],
    tmp: Path,
    engine: str = "faust",
    profile: Path | None = None,
    keep_log: Path | None = None,
) -> list[dict[str, Any]]:
    """One worker, one topic: a warm-up (students get history, so alerts can fire), then each
    phase's events at its offered rate (None = all at once, drained as fast as possible)."""
    tag = uuid.uuid4().hex[:6]
    topic = f"bench.events.{tag}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic, *TOPICS.all()), 4))
    r = redis.Redis.from_url(stack.redis_url)
    r.flushdb()
    for cal in cals:
        r.set(keys.calendar_key(cal.site, cal.course_id), encode(cal))
    worker = start_worker(stack, registry, topic, f"bench-{tag}", tmp / f"worker-{tag}.log", engine)
    watch = Watch(stack.bootstrap, 500 if stack.durable else 10)
    loop = asyncio.new_event_loop()
    import threading

    th = threading.Thread(target=loop.run_until_complete, args=(watch.run(),), daemon=True)
    th.start()
    windows = []
    try:
        t = time.time()
        asyncio.run(send_all(stack.bootstrap, topic, [(e.key, encode(e)) for e in warm]))
        if not wait_applied(r, last_ids(warm), worker, 600):
            raise RuntimeError(f"warm-up did not finish; see the worker log in {tmp}")
        console.print(f"warm-up: {len(warm):,} events applied in {time.time() - t:.1f}s")
        time.sleep(1.0)
        for rate, evs in phases:
            payloads = [(e.key, encode(e)) for e in evs]
            t0 = time.time()
            if rate is None:
                asyncio.run(send_all(stack.bootstrap, topic, payloads))
                proc = None
            else:
                proc = mp.get_context("spawn").Process(
                    target=paced_send, args=(stack.bootstrap, topic, payloads, rate)
                )
                proc.start()
            timeout = 300 if rate is None else len(evs) / rate * 4 + 60
            with spy(worker.pid, profile, f"worker-{engine}-{rate or 'max'}"):
                complete = wait_applied(r, last_ids(evs), worker, timeout)
            t_done = time.time()
            if proc is not None:
                proc.join(timeout)
            if not complete:  # the worker fell behind: drain (uncounted) before the next phase
                wait_applied(r, last_ids(evs), worker, 900)
            windows.append((rate, evs, t0, t_done, complete))
            console.print(
                f"  offered {rate or 'max'}: {len(evs):,} events in {t_done - t0:.1f}s"
                f"{'' if complete else ' (NOT complete)'}"
            )
            time.sleep(1.5)  # the watcher reads the last outputs; the worker idles
    finally:
        watch.stop = True
        th.join(10)
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
    if keep_log is not None:  # the temporary folder goes away with the run
        keep_log.parent.mkdir(parents=True, exist_ok=True)
        keep_log.write_bytes((tmp / f"worker-{tag}.log").read_bytes())
    sent_at, per_student = asyncio.run(event_times(stack.bootstrap, topic))
    console.print(
        f"[dim]read back {len(watch.alerts):,} alerts, {len(watch.scores):,} risk scores in all; "
        f"worker log: {tmp / f'worker-{tag}.log'}[/]"
    )
    mem = int(r.info("memory")["used_memory"])
    enrol = r.dbsize()
    r.close()
    rows = []
    all_ids = {e.event_id for _, evs, *_ in windows for e in evs}
    clock = release_clock([*warm, *(e for _, evs, *_ in windows for e in evs)], cals)
    for rate, evs, t0, t_done, complete in windows:
        ids = {e.event_id for e in evs}
        a_lat = []
        for t, a in watch.alerts:
            cause = cause_time(per_student, a, t)
            # an alert belongs to the load whose event caused it (an alert on a day without
            # events names an earlier event as its trigger, maybe one of the load before)
            if cause is not None and t0 <= cause <= t_done and a.trigger_event_id in all_ids:
                a_lat.append(t - cause)
        # engine latency: from the event that took the partition's course clock past the
        # alert's day (whose batch admitted it) to the alert read back here
        r_lat = []
        for t, a in watch.alerts:
            rel = release_event(clock, a)
            if rel is not None and rel in ids and rel in sent_at:
                r_lat.append(t - sent_at[rel])
        s_lat = [
            t - sent_at[sc.last_event_id]
            for t, sc in watch.scores
            if sc.last_event_id in ids and sc.last_event_id in sent_at
        ]
        elapsed = t_done - t0
        rows.append(
            {
                "offered_per_s": rate if rate is not None else "max",
                "events": len(evs),
                "complete": complete,
                "seconds": elapsed,
                "sustained_per_s": len(evs) / elapsed if elapsed > 0 else None,
                "alerts": len(a_lat),
                "alert_p50_ms": pct(a_lat, 50),
                "alert_p99_ms": pct(a_lat, 99),
                "released_alerts": len(r_lat),
                "release_p50_ms": pct(r_lat, 50),
                "release_p99_ms": pct(r_lat, 99),
                "scores": len(s_lat),
                "score_p50_ms": pct(s_lat, 50),
                "score_p99_ms": pct(s_lat, 99),
                "redis_used_bytes_end": mem,
                "redis_keys_end": enrol,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--loads", type=float, nargs="+", default=[500, 2000, 10000])
    p.add_argument("--seconds", type=float, default=15.0, help="offered-load duration")
    p.add_argument("--max-events", type=int, default=100_000, help="events for the max row")
    p.add_argument(
        "--warm-events",
        type=int,
        default=60_000,
        help="events applied before measuring (students need days of history to alert)",
    )
    p.add_argument("--no-max", action="store_true", help="skip the drain-as-fast-as-possible row")
    p.add_argument("--module", default="BBB")
    p.add_argument("--presentation", default="2013J")
    p.add_argument("--registry", type=Path, default=None)
    p.add_argument("--durable", action="store_true", help="broker on s3:// storage (s3rver)")
    p.add_argument(
        "--engine", choices=["faust", "aiokafka"], default="faust", help="worker's consumer loop"
    )
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--profile", type=Path, default=None, help="py-spy the worker during each load (FOLDER)"
    )
    p.add_argument("--keep-log", type=Path, default=None, help="copy the worker's log here")
    a = p.parse_args(argv)

    t = time.perf_counter()
    phase_sizes = [int(x * a.seconds) for x in a.loads] + ([] if a.no_max else [a.max_events])
    events, cals = load_events(a.warm_events + sum(phase_sizes), a.module, a.presentation)
    console.print(
        f"loaded {len(events):,} OULAD events ({a.module} {a.presentation}) in "
        f"{time.perf_counter() - t:.1f}s; "
        f"{len({(e.course_id, e.user_id) for e in events}):,} enrolments"
    )
    warm = events[: a.warm_events]
    phases: list[tuple[float | None, list[LmsEvent]]] = []
    at = len(warm)
    rates: list[float | None] = [*a.loads, *([] if a.no_max else [None])]
    for rate, size in zip(rates, phase_sizes, strict=True):
        phases.append((rate, events[at : at + size]))
        at += size
    with tempfile.TemporaryDirectory(prefix="rs-bench-e2e-") as tmpd:
        tmp = Path(tmpd)
        registry = bench_registry(tmp / "registry", a.registry)
        stack = Stack(
            state_dir=tmp / "stack",
            kafka_port=free_port(),
            redis_port=free_port(),
            s3_port=free_port(),
            s3_gate_port=free_port(),
            redis_appendonly=True,
            durable=a.durable,
        )
        stack.up()
        try:
            rows = session(
                stack, registry, warm, phases, cals, tmp, a.engine, a.profile, a.keep_log
            )
        finally:
            stack.down()
    table(
        f"End to end: OULAD -> broker{' (durable)' if a.durable else ''} -> worker -> Redis",
        [
            "offered ev/s",
            "events",
            "done",
            "sustained ev/s",
            "alerts",
            "alert p50 ms",
            "alert p99 ms",
            "released",
            "release p50 ms",
            "release p99 ms",
            "score p50 ms",
            "score p99 ms",
        ],
        [
            [
                r["offered_per_s"],
                r["events"],
                "yes" if r["complete"] else "NO",
                r["sustained_per_s"],
                r["alerts"],
                r["alert_p50_ms"] if r["alert_p50_ms"] is not None else "-",
                r["alert_p99_ms"] if r["alert_p99_ms"] is not None else "-",
                r["released_alerts"],
                r["release_p50_ms"] if r["release_p50_ms"] is not None else "-",
                r["release_p99_ms"] if r["release_p99_ms"] is not None else "-",
                r["score_p50_ms"] if r["score_p50_ms"] is not None else "-",
                r["score_p99_ms"] if r["score_p99_ms"] is not None else "-",
            ]
            for r in rows
        ],
    )
    console.print(
        "[dim]latency: event CreateTime -> its alert / risk score read back by a consumer; "
        "alert: from the student's latest event; release: from the event that took the "
        "partition's course clock to the alert's day + 2 (whose batch admitted it)[/]"
    )
    write("bench_e2e", a.out, {k: str(v) for k, v in vars(a).items()}, rows)
    return {"rows": rows}


if __name__ == "__main__":
    main()

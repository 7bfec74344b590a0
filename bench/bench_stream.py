"""Stream worker benchmark: broker + Redis + one worker on this machine, replaying OULAD events.

Figures (printed as a table and written as JSON):
  1. events/s sustained, batched processor driven by plain aiokafka getmany (one process)
  2. events/s sustained, the real Faust worker (`riskstream worker`, a subprocess)
  3. events/s of a one-event-at-a-time implementation (same processor, batches of 1), and the
     ratio batched / one-at-a-time measured in the same run
  4. p50/p99 event -> output latency at 2,000 events/s offered (outputs = risk scores and
     alerts, published together once the batch is done), plus p99 over alert-triggering events
  5. Redis memory per enrolment: measured after the replay, and for 100,000 enrolments with a
     full state (28-day window, 270-day trajectory, hidden 128)
  6. --inference-only: model throughput of one batch plan at batch sizes 256..16384 (GPU via
     --device cuda on a machine that has one)

    python3 bench/bench_stream.py                  # OULAD when present, else synthetic events
    python3 bench/bench_stream.py --events 300000 --json out.json
    python3 bench/bench_stream.py --inference-only --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._data import oulad_dir  # noqa: E402
from bench._load import paced_send, send_all  # noqa: E402
from contracts import TOPICS, CourseCalendar, LmsEvent, encode, keys  # noqa: E402
from stream_app.records import InRecord, OutRecord  # noqa: E402

SITE = "oulad"


# -- data --------------------------------------------------------------------------------
def oulad_events(
    n: int, data_dir: Path, module: str, presentation: str
) -> tuple[list[LmsEvent], dict[int, CourseCalendar]]:
    from models.oulad import Oulad

    o = Oulad(data_dir)
    cals = o.calendars()
    evs: list[LmsEvent] = []
    for ev in o.iter_events(module, presentation):
        evs.append(ev)
        if len(evs) >= n:
            break
    used = {e.course_id for e in evs}
    return evs, {c: cals[c] for c in used}


def synthetic_events(
    n: int, students: int = 5000
) -> tuple[list[LmsEvent], dict[int, CourseCalendar]]:
    rng = np.random.default_rng(0)
    start = datetime(2024, 2, 5, tzinfo=UTC)
    per_day = max(1, students // 2)
    comps = ["mod_page", "mod_quiz", "mod_forum", "mod_resource", "core", "mod_url"]
    evs = []
    for i in range(n):
        day = i // per_day
        evs.append(
            LmsEvent(
                site=SITE,
                event_id=i + 1,
                user_id=int(rng.integers(students)),
                course_id=1,
                time=start + timedelta(days=day, seconds=(i % per_day) * 86400 // per_day),
                eventname="\\core\\event\\course_module_viewed",
                component=comps[i % len(comps)],
                action="viewed",
                count=int(rng.integers(1, 5)),
            )
        )
    cal = CourseCalendar(site=SITE, course_id=1, start=start, length_days=270)
    return evs, {1: cal}


# -- helpers -----------------------------------------------------------------------------
class NullPublisher:
    async def publish(self, records: list[OutRecord]) -> None:
        return None


async def seed_calendars(redis_url: str, cals: dict[int, CourseCalendar]) -> None:
    import redis.asyncio as aredis

    r = aredis.Redis.from_url(redis_url)
    await r.flushdb()
    for c, cal in cals.items():
        await r.set(keys.calendar_key(cal.site, c), encode(cal))
    await r.aclose()


def make_processor(
    redis_url: str, registry: Path, publisher: Any, sweep_partitions: int = 4
) -> tuple[Any, Any]:
    """A processor configured like the worker's (course-clock sweeps on, 4 partitions)."""
    import gc

    from stream_app.inference import InferenceEngine
    from stream_app.processor import Processor
    from stream_app.reload import find_explainer, load_handle
    from stream_app.state import connect

    gc.freeze()  # as the worker does (stream_app.runtime)
    gc.set_threshold(50_000, 20, 100)
    r = connect(redis_url)
    handle = load_handle(registry, "cpu")
    proc = Processor(
        r,
        publisher,
        handle,
        engine=InferenceEngine(threads=1),
        sweep_partitions=sweep_partitions,
        explainer=find_explainer(),  # as the worker (stream_app.runtime)
    )
    return proc, r


async def run_aiokafka(
    bootstrap: str,
    redis_url: str,
    registry: Path,
    topic: str,
    n: int,
    batch: int,
    one_at_a_time: bool = False,
    latency: bool = False,
    publish: bool = True,
    on_assigned: Any = None,
) -> dict[str, Any]:
    """Consume ``n`` events of ``topic`` with a fresh group; returns throughput / latencies."""
    from aiokafka import AIOKafkaConsumer

    from stream_app.kafka_io import KafkaPublisher

    pub: Any = KafkaPublisher(bootstrap) if publish else NullPublisher()
    if publish:
        await pub.start()
    proc, r = make_processor(redis_url, registry, pub)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        max_poll_records=batch,
        fetch_max_wait_ms=5 if latency else 100,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=32 << 20,
    )
    await consumer.start()
    if on_assigned is not None:  # e.g. start the paced producer once the group join is done
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        on_assigned()
    done = 0
    t_first = None
    lat: list[float] = []
    alert_lat: list[float] = []
    batches = 0
    try:
        while done < n:
            got = await consumer.getmany(timeout_ms=5 if latency else 100, max_records=batch)
            recs = [
                InRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                for ms in got.values()
                for m in ms
            ]
            if not recs:
                continue
            if t_first is None:
                t_first = time.perf_counter()
            groups = [[x] for x in recs] if one_at_a_time else [recs]
            for g in groups:
                rep = await proc.process(g)
                batches += 1
                now = time.time()
                if latency:
                    lat.extend(now - x.timestamp_ms / 1000 for x in g if x.timestamp_ms)
                    trig = {a.trigger_event_id for a in rep.alerts}
                    if trig:
                        for x, ev_id in _ids(g):
                            if ev_id in trig and x.timestamp_ms:
                                alert_lat.append(now - x.timestamp_ms / 1000)
            await consumer.commit()
            done += len(recs)
        elapsed = time.perf_counter() - (t_first or time.perf_counter())
    finally:
        await consumer.stop()
        if publish:
            await pub.stop()
        await r.aclose()
        proc.engine.close()
    out: dict[str, Any] = {
        "events": done,
        "seconds": elapsed,
        "events_per_s": done / elapsed,
        "batches": batches,
    }
    if latency:
        a = np.asarray(lat) * 1000
        out.update(
            p50_ms=float(np.percentile(a, 50)),
            p99_ms=float(np.percentile(a, 99)),
            max_ms=float(a.max()),
            n_latency=len(a),
        )
        if alert_lat:
            out.update(
                alert_p99_ms=float(np.percentile(np.asarray(alert_lat) * 1000, 99)),
                n_alerts=len(alert_lat),
            )
    return out


def _ids(recs: list[InRecord]) -> list[tuple[InRecord, int]]:
    out = []
    for x in recs:
        with contextlib.suppress(ValueError, KeyError):
            out.append((x, int(json.loads(x.value or b"{}")["event_id"])))
    return out


@contextlib.contextmanager
def spy(pid: int, out: Path | None, name: str) -> Any:
    """py-spy (sampling, 200 Hz, all threads) on ``pid`` while the block runs; writes
    ``out/name.txt`` (collapsed stacks) and prints the top frames by own and total time."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{name}.txt"
    cmd = ["py-spy", "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", str(raw)]
    proc = subprocess.Popen([*cmd, "--nonblocking"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        proc.send_signal(2)
        proc.wait(30)
        if raw.is_file():
            print(summarize_profile(raw, name))


#: where a sample's time goes: the first category whose marker is on its stack
PROFILE_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("inference thread: model steps", ("run_plan",)),
    ("inference thread: explanations", ("Processor._explain", "explain_many")),
    ("processor: decode events (pydantic)", ("decode_event",)),
    ("processor: Redis read/write", ("read_batch", "write_batch", "ensure_calendars")),
    ("processor: publish outputs", ("KafkaPublisher.publish",)),
    ("processor: plan, alerts, encode (Python)", ("Processor.process", "Processor._run")),
    ("fetch: aiokafka records -> Python", ("_fetch_records", "fetched_records", "getmany")),
    ("driver: records -> batch", ("BatchConsumer", "run_aiokafka", "AIOKafkaConsumer")),
    ("Faust per-message path", ("_drain_messages", "on_message", "Stream.", "Agent.")),
    ("aiokafka/Faust background (fetcher, heartbeat, commit)", ("aiokafka", "faust", "mode/")),
    ("event loop / other", ("",)),
]


def summarize_profile(raw: Path, name: str, top: int = 12) -> str:
    """Samples per category (``PROFILE_CATEGORIES``) and the functions with the most own
    time (leaf frame). Idle threads are not sampled (py-spy without ``--idle``)."""
    own: dict[str, int] = {}
    cats: dict[str, int] = {}
    n = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        n += c
        leaf = stack.rsplit(";", 1)[-1]
        fn, _, where = leaf.partition(" (")
        leaf = f"{fn} ({where.split(':')[0]})"
        own[leaf] = own.get(leaf, 0) + c
        for cat, marks in PROFILE_CATEGORIES:
            if any(m in stack for m in marks):
                cats[cat] = cats.get(cat, 0) + c
                break
    lines = [f"profile {name}: {n} samples (200 Hz, all threads, idle excluded)"]
    for cat, _ in PROFILE_CATEGORIES:
        lines.append(f"  {100 * cats.get(cat, 0) / max(n, 1):5.1f}%  {cat}")
    lines.append("  top functions by own time:")
    for f, c in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * c / max(n, 1):5.1f}%  {f}")
    text = "\n".join(lines)
    (raw.parent / f"{name}.summary.txt").write_text(text + "\n")
    return text


def run_faust(
    bootstrap: str,
    redis_url: str,
    registry: Path,
    topic: str,
    last_per_partition: dict[int, tuple[str, int]],
    batch: int,
    timeout: float,
    profile: Path | None = None,
    engine: str = "faust",
    workers: int = 1,
) -> dict[str, Any]:
    """The real worker (``riskstream worker --engine ENGINE --concurrency WORKERS``, fresh
    group) drains the topic; seconds from its first state write to the last event applied."""
    import redis

    r = redis.Redis.from_url(redis_url)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        RISKSTREAM_KAFKA_BOOTSTRAP=bootstrap,
        RISKSTREAM_REDIS_URL=redis_url,
        RISKSTREAM_MODEL_REGISTRY=str(registry),
        RISKSTREAM_STREAM_GROUP=f"bench-{engine}-{uuid.uuid4().hex[:6]}",
        RISKSTREAM_STREAM_EVENTS_TOPIC=topic,
        RISKSTREAM_STREAM_SESSION_TIMEOUT_MS="6000",
        RISKSTREAM_STREAM_BATCH_MAX=str(batch),
        RISKSTREAM_DEVICE="cpu",
        RISKSTREAM_LOG_LEVEL="WARNING",
    )
    w = subprocess.Popen(
        [
            *(sys.executable, "-m", "riskstream", "worker", "--device", "cpu"),
            *("--engine", engine, "--concurrency", str(workers)),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while profile is not None and not r.exists(keys.courses_key(SITE)):
            time.sleep(0.01)  # profile the drain, not the start
        with spy(w.pid, profile if workers == 1 else None, f"{engine}-worker"):
            res = _wait_drained(r, w, last_per_partition, deadline)
        return res
    finally:
        w.terminate()
        try:
            w.wait(20)
        except subprocess.TimeoutExpired:
            w.kill()
        r.close()


def _wait_drained(
    r: Any, w: Any, last_per_partition: dict[int, tuple[str, int]], deadline: float
) -> dict[str, Any]:
    """Until every partition's last event is applied (seconds from the first write)."""
    t_first = None
    while time.monotonic() < deadline:
        if t_first is None and r.exists(keys.courses_key(SITE)):
            t_first = time.perf_counter()
        if all(int(r.hget(k, "last_id") or -1) >= eid for k, eid in last_per_partition.values()):
            break
        time.sleep(0.05)
    else:
        return {"error": "timeout"}
    elapsed = time.perf_counter() - (t_first or time.perf_counter())
    return {"seconds": elapsed}


def memory(
    redis_url: str, registry: Path, n: int, window: int = 28, days: int = 270
) -> dict[str, Any]:
    """Bytes per enrolment for ``n`` full states (written like the worker writes them)."""
    import redis

    from stream_app.alerting import AlertState
    from stream_app.reload import load_handle
    from stream_app.state import StudentKey, StudentState, encode_state

    h = load_handle(registry, "cpu")
    rng = np.random.default_rng(0)
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    base = int(r.info("memory")["used_memory"])
    st = StudentState(
        model_state={k: rng.random(int(np.prod(s)), dtype=np.float32) for k, s in h.shapes.items()},
        acc=rng.random(h.featurizer.n_acc, dtype=np.float32),
        day=days,
        d0=0,
        win=rng.random((window, h.n_day), dtype=np.float32),
        last_id=123456789,
        ver=h.version,
        spec=h.spec_hash,
        risk=0.4321,
        level="medium",
        upd=time.time(),
        alert=AlertState(armed=False, last_day=200, level="medium"),
        traj=rng.random(days).astype(np.float16),
    )
    fields = encode_state(st, full=True)
    pipe = r.pipeline(transaction=False)
    for u in range(n):
        k = StudentKey(SITE, 1 + u % 20, u)
        pipe.hset(k.redis_key, mapping=fields)  # type: ignore[arg-type]
        pipe.zadd(k.rank_key, {str(u): float(rng.random())})
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    used = int(r.info("memory")["used_memory"]) - base
    one = int(r.memory_usage(StudentKey(SITE, 1, 0).redis_key) or 0)
    r.flushdb()
    r.close()
    return {
        "enrolments": n,
        "bytes_total": used,
        "bytes_per_enrolment": used / n,
        "hash_bytes_one_student": one,
        "field_bytes": sum(
            len(v) if isinstance(v, bytes) else len(str(v)) for v in fields.values()
        ),
    }


def inference_only(device: str, hidden: int, sizes: list[int], reps: int) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(1)  # as the worker's inference thread (WorkerConfig.torch_threads)

    from stream_app.inference import StepPlan, run_plan

    with tempfile.TemporaryDirectory() as tmp:
        from models.testing import tiny_model
        from stream_app.reload import load_handle

        tiny_model(Path(tmp), hidden=hidden)
        h = load_handle(Path(tmp), device)
    rows = []
    rng = np.random.default_rng(0)
    for b in sizes:
        plan = StepPlan(
            states={k: rng.random((b, *s), dtype=np.float32) for k, s in h.shapes.items()},
            init_rows=np.zeros(0, np.int64),
            init_static=np.zeros((0, h.n_static), np.float32),
            seqs=[rng.random((1, h.n_day), dtype=np.float32) for _ in range(b)],
            ev_student=np.arange(b, dtype=np.int64),
            ev_after=np.ones(b, np.int64),
            ev_x=rng.random((b, h.n_day), dtype=np.float32),
        )
        run_plan(h.loaded.model, h.loaded.device, plan)
        if h.loaded.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            run_plan(h.loaded.model, h.loaded.device, plan)
        if h.loaded.device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / reps
        rows.append(
            {
                "batch": b,
                "ms_per_batch": dt * 1000,
                "events_per_s": b / dt,
                "device": str(h.loaded.device),
            }
        )
        print(
            f"batch {b:6d}: {dt * 1000:8.2f} ms  {b / dt:12,.0f} events/s "
            f"(1 commit + 1 provisional step each) on {h.loaded.device}"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=150_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--one-at-a-time", type=int, default=3000, help="events for the per-event run")
    ap.add_argument("--latency-events", type=int, default=20_000, help="events at 2,000/s")
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--memory-enrolments", type=int, default=100_000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--registry", type=Path, default=None, help="use this registry's current model")
    ap.add_argument("--data-dir", type=Path, default=oulad_dir())
    ap.add_argument("--module", default="FFF")
    ap.add_argument("--presentation", default="2013J")
    ap.add_argument("--skip-faust", action="store_true")
    ap.add_argument(
        "--scale",
        type=int,
        nargs="*",
        default=[],
        help="also drain with N Faust worker processes in one group (e.g. --scale 2)",
    )
    ap.add_argument(
        "--throughput-only",
        action="store_true",
        help="only the aiokafka and Faust drain rates (no one-at-a-time, latency, memory)",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy the Faust worker while it drains; writes FOLDER/faust.{svg,txt}",
    )
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--inference-only", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=REPO / "reports" / "bench_stream.json")
    args = ap.parse_args()

    if args.inference_only:
        rows = inference_only(args.device, args.hidden, [256, 1024, 4096, 16384], reps=20)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"inference": rows}, indent=2))
        return

    from models.testing import tiny_model
    from riskstream.kafka_admin import ensure_topics
    from riskstream.stack import Stack, free_port

    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    registry = args.registry
    if registry is None:
        from models.registry import Thresholds

        registry = tmp / "registry"
        # random weights at production size; low thresholds so the alert path is exercised
        low = Thresholds(medium=0.2, high=0.5, rearm=0.1, min_days=1, cooldown_days=1)
        tiny_model(registry, hidden=args.hidden, thresholds=low)
    t0 = time.perf_counter()
    if (args.data_dir / "studentVle.parquet").is_file():
        evs, cals = oulad_events(args.events, args.data_dir, args.module, args.presentation)
        source = f"OULAD {args.module} {args.presentation}"
    else:
        evs, cals = synthetic_events(args.events)
        source = "synthetic"
    evs = [e.model_copy(update={"site": SITE}) for e in evs]
    cals = {c: cal.model_copy(update={"site": SITE}) for c, cal in cals.items()}
    payloads = [(e.key, encode(e)) for e in evs]
    n_students = len({(e.course_id, e.user_id) for e in evs})
    print(
        f"{len(evs):,} events of {n_students:,} enrolments ({source}), "
        f"loaded in {time.perf_counter() - t0:.1f}s"
    )

    st = Stack(
        state_dir=tmp / "stack",
        kafka_port=free_port(),
        redis_port=free_port(),
        redis_appendonly=False,
    )
    st.up()
    results: dict[str, Any] = {
        "source": source,
        "events": len(evs),
        "enrolments": n_students,
        "batch": args.batch,
        "hidden": args.hidden,
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(),
    }
    try:
        from bench._report import machine

        results["machine"] = machine()
    except ImportError:
        pass
    try:
        if not args.latency_only:
            topic = f"bench.events.{uuid.uuid4().hex[:6]}"
            asyncio.run(ensure_topics(st.bootstrap, (topic, *TOPICS.all()), 4))
            prod_s = asyncio.run(send_all(st.bootstrap, topic, payloads))
            print(f"produced in {prod_s:.1f}s")

            asyncio.run(seed_calendars(st.redis_url, cals))
            with spy(os.getpid(), args.profile, "aiokafka"):
                res = asyncio.run(
                    run_aiokafka(st.bootstrap, st.redis_url, registry, topic, len(evs), args.batch)
                )
            results["batched_aiokafka"] = res
            print(f"batched (aiokafka getmany): {res['events_per_s']:,.0f} events/s")
            r = __import__("redis").Redis.from_url(st.redis_url)
            n_keys = sum(1 for _ in r.scan_iter("rs:st:*", count=10_000))
            used = int(r.info("memory")["used_memory"])
            results["memory_after_replay"] = {
                "enrolments": n_keys,
                "used_memory": used,
                "bytes_per_enrolment": used / max(n_keys, 1),
            }
            r.close()

            if not args.throughput_only:
                sub = payloads[: args.one_at_a_time]
                topic1 = f"bench.one.{uuid.uuid4().hex[:6]}"
                asyncio.run(ensure_topics(st.bootstrap, (topic1,), 4))
                asyncio.run(send_all(st.bootstrap, topic1, sub))
                asyncio.run(seed_calendars(st.redis_url, cals))
                one = asyncio.run(
                    run_aiokafka(
                        st.bootstrap,
                        st.redis_url,
                        registry,
                        topic1,
                        len(sub),
                        args.batch,
                        one_at_a_time=True,
                    )
                )
                asyncio.run(seed_calendars(st.redis_url, cals))
                same = asyncio.run(
                    run_aiokafka(st.bootstrap, st.redis_url, registry, topic1, len(sub), args.batch)
                )
                results["one_at_a_time"] = one
                results["batched_same_events"] = same
                results["ratio_batched_vs_one"] = res["events_per_s"] / one["events_per_s"]
                print(
                    f"one-at-a-time: {one['events_per_s']:,.0f} events/s; "
                    f"ratio {results['ratio_batched_vs_one']:.1f}x"
                )

            if not args.skip_faust:
                asyncio.run(seed_calendars(st.redis_url, cals))
                last: dict[int, tuple[str, int]] = {}
                from aiokafka.partitioner import murmur2

                for e in evs:
                    p = (murmur2(e.key) & 0x7FFFFFFF) % 4
                    last[p] = (keys.state_key(e.site, e.course_id, e.user_id), e.event_id)
                runs = [("aiokafka", 1, "aiokafka_worker"), ("faust", 1, "faust_worker")]
                runs += [("faust", n, f"faust_worker_x{n}") for n in args.scale]
                for engine, n, name in runs:
                    asyncio.run(seed_calendars(st.redis_url, cals))
                    fr = run_faust(
                        st.bootstrap,
                        st.redis_url,
                        registry,
                        topic,
                        last,
                        1000,
                        timeout=600,
                        profile=args.profile,
                        engine=engine,
                        workers=n,
                    )
                    if "seconds" in fr:
                        fr["events_per_s"] = len(evs) / fr["seconds"]
                        print(f"{name}: {fr['events_per_s']:,.0f} events/s")
                    results[name] = fr
                results["ratio_faust_vs_aiokafka_worker"] = results["faust_worker"].get(
                    "events_per_s", 0
                ) / results["aiokafka_worker"].get("events_per_s", float("nan"))
                for n in args.scale:
                    results[f"ratio_faust_x{n}_vs_x1"] = results[f"faust_worker_x{n}"].get(
                        "events_per_s", 0
                    ) / results["faust_worker"].get("events_per_s", float("nan"))

        if not args.throughput_only:
            lat_payloads = payloads[: args.latency_events]
            topic2 = f"bench.lat.{uuid.uuid4().hex[:6]}"
            asyncio.run(ensure_topics(st.bootstrap, (topic2,), 4))
            asyncio.run(seed_calendars(st.redis_url, cals))
            prod = mp.get_context("fork").Process(
                target=paced_send, args=(st.bootstrap, topic2, lat_payloads, args.rate)
            )
            lat = asyncio.run(
                run_aiokafka(
                    st.bootstrap,
                    st.redis_url,
                    registry,
                    topic2,
                    len(lat_payloads),
                    args.batch,
                    latency=True,
                    on_assigned=prod.start,
                )
            )
            prod.join(60)
            results["latency_at_rate"] = {"rate": args.rate, **lat}
            print(
                f"latency at {args.rate:,.0f} ev/s: "
                f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
            )

        if not (args.latency_only or args.throughput_only):
            results["memory_full_state"] = memory(st.redis_url, registry, args.memory_enrolments)
    finally:
        st.down()

    nan = float("nan")

    def fig(*path: str) -> float:
        cur: Any = results
        for k in path:
            cur = cur.get(k, {}) if isinstance(cur, dict) else {}
        return float(cur) if isinstance(cur, int | float) else nan

    n_mem = f"{args.memory_enrolments:,}"
    rows = [
        (
            "events/s, batched, aiokafka getmany",
            f"{fig('batched_aiokafka', 'events_per_s'):,.0f}",
            ">= 20,000",
        ),
        (
            "events/s, worker --engine aiokafka (subprocess)",
            f"{fig('aiokafka_worker', 'events_per_s'):,.0f}",
            "",
        ),
        ("events/s, Faust worker (subprocess)", f"{fig('faust_worker', 'events_per_s'):,.0f}", ""),
        (
            "ratio Faust worker / aiokafka worker",
            f"{fig('ratio_faust_vs_aiokafka_worker'):.2f}x",
            ">= 0.8x",
        ),
        *[
            (
                f"events/s, {n} Faust workers (one group)",
                f"{fig(f'faust_worker_x{n}', 'events_per_s'):,.0f} "
                f"({fig(f'ratio_faust_x{n}_vs_x1'):.2f}x)",
                "",
            )
            for n in args.scale
        ],
        ("events/s, one event at a time", f"{fig('one_at_a_time', 'events_per_s'):,.0f}", ""),
        ("ratio batched / one-at-a-time", f"{fig('ratio_batched_vs_one'):.1f}x", ""),
        (
            f"p50 event->output ms at {args.rate:,.0f} ev/s",
            f"{fig('latency_at_rate', 'p50_ms'):.1f}",
            "",
        ),
        (
            f"p99 event->output ms at {args.rate:,.0f} ev/s",
            f"{fig('latency_at_rate', 'p99_ms'):.1f}",
            "<= 150",
        ),
        (
            "p99 event->alert ms (alert-triggering events)",
            f"{fig('latency_at_rate', 'alert_p99_ms'):.1f}",
            "<= 150",
        ),
        (
            "Redis bytes/enrolment after replay",
            f"{fig('memory_after_replay', 'bytes_per_enrolment'):,.0f}",
            "",
        ),
        (
            f"Redis bytes/enrolment, {n_mem} full states",
            f"{fig('memory_full_state', 'bytes_per_enrolment'):,.0f}",
            "<= 6,144",
        ),
        (
            f"Redis bytes total, {n_mem} full states",
            f"{fig('memory_full_state', 'bytes_total'):,.0f}",
            "",
        ),
    ]
    w = max(len(r[0]) for r in rows)
    print()
    print(f"{'figure'.ljust(w)}  {'value':>14}  target")
    for name, val, target in rows:
        print(f"{name.ljust(w)}  {val:>14}  {target}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

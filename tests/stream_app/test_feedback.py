"""Teachers' feedback on the worker side: each alert's latest answer kept in Redis
(idempotent), a student marked *contacted* not admitted within the cooldown, crash/replay of
the feedback topic and of events gives the same alerts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from contracts import (
    CourseCalendar,
    RiskAlert,
    TeacherFeedback,
    decode,
    encode,
    enrolment_event,
    keys,
)
from models.calibration import DayBandCalibrator
from models.registry import Thresholds
from models.testing import tiny_model
from riskstream.stack import Stack
from stream_app import processor as processor_mod
from stream_app.feedback import feedback_key, latest, parse, record, store, suppresses
from stream_app.processor import Processor
from stream_app.reload import load_handle
from stream_app.state import connect
from tests.stream_app.helpers import START, ListPublisher, event
from tests.stream_app.helpers import record as in_record

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
N = 6  # students who never click; ACTIVE drives the course clock
ACTIVE = 1000
COOLDOWN = 7


def fb(
    fid: int,
    action: str,
    user: int = 7,
    at: datetime = T0,
    alert: str | None = None,
    site: str = "s1",
    course: int = 3,
) -> TeacherFeedback:
    return TeacherFeedback(
        site=site,
        feedback_id=fid,
        alert_id=alert or f"a{fid:08d}",
        course_id=course,
        user_id=user,
        teacher_id=2,
        action=action,  # type: ignore[arg-type]
        time=at,
    )


# -- the pure rule ------------------------------------------------------------------------
def test_contacted_holds_back_the_days_closing_within_the_cooldown_only() -> None:
    contacted = record(fb(1, "contacted"))
    assert suppresses(contacted, T0 + timedelta(hours=1), cooldown_days=7)
    assert suppresses(contacted, T0 + timedelta(days=7), cooldown_days=7)  # closes at the end
    assert not suppresses(contacted, T0 + timedelta(days=7, seconds=1), cooldown_days=7)
    assert not suppresses(contacted, T0, cooldown_days=7)  # the day closed as they answered
    assert not suppresses(contacted, T0 - timedelta(hours=1), cooldown_days=7)  # before it
    for other in ("acknowledged", "notuseful"):
        assert not suppresses(record(fb(1, other)), T0 + timedelta(days=1), cooldown_days=7)
    assert not suppresses(None, T0, cooldown_days=7)
    assert not suppresses([], T0, cooldown_days=7)
    # any alert's latest answer may hold back: two answers, one contacted
    both = [record(fb(1, "acknowledged")), record(fb(2, "contacted", at=T0 + timedelta(days=5)))]
    assert suppresses(both, T0 + timedelta(days=11), cooldown_days=7)
    assert not suppresses(both, T0 + timedelta(days=13), cooldown_days=7)


def test_latest_answer_per_alert_wins_by_id_whatever_the_order() -> None:
    first, second = fb(1, "contacted", alert="x"), fb(2, "notuseful", alert="x")
    assert latest(latest(None, first), second)["action"] == "notuseful"
    assert latest(latest(None, second), first)["action"] == "notuseful"


def test_store_is_idempotent_and_order_independent(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    items = [
        fb(5, "contacted", alert="x"),
        fb(4, "acknowledged", alert="x"),  # older answer about the same alert: loses
        fb(6, "notuseful", alert="y"),
        fb(3, "contacted", user=8, alert="z"),
    ]
    key7, key8 = feedback_key("s1", 3, 7), feedback_key("s1", 3, 8)
    assert key7 == "rs:fb:{s1:3}:7"  # the course's hash tag: same Cluster slot as its state
    seen = []
    for order in (items, items[::-1], items + items):  # replayed, reordered, doubled
        client.delete(key7, key8)

        async def go(batch: list[TeacherFeedback] = order) -> None:
            import redis.asyncio as aredis

            r = aredis.Redis.from_url(stack.redis_url)
            try:
                await store(r, batch)
            finally:
                await r.aclose()

        asyncio.run(go())
        seen.append((client.hgetall(key7), client.hgetall(key8)))
    assert seen[0] == seen[1] == seen[2]
    answers = {a["alert_id"]: a["action"] for a in parse(seen[0][0])}
    assert answers == {"x": "contacted", "y": "notuseful"}
    assert [a["action"] for a in parse(seen[0][1])] == ["contacted"]
    client.close()


# -- admission in the processor -----------------------------------------------------------
def _handle(root: Path):  # type: ignore[no-untyped-def]
    """Constant risk 0.9, but calibrated to ~0 on course days 9 and 10: every student is
    alerted on day 7, re-armed on day 9, holds `high` again from day 13 and is alerted again
    as soon as the model's cooldown (7 days from day 7) allows."""
    th = Thresholds(min_days=7, persist_days=3, cooldown_days=COOLDOWN, day_cap=1.0, week_cap=1.0)
    tiny_model(root, constant_risk=0.9, thresholds=th)
    cal = DayBandCalibrator(bands=(0, 9, 11), a=(1.0, 1.0, 1.0), b=(0.0, -12.0, 0.0))
    (root / "v0001" / "calibration.json").write_text(json.dumps(cal.to_dict()))
    return load_handle(root, "cpu")


def _batches(days: int) -> list[list[Any]]:
    """Day-by-day batches: everyone enrolled on day 0, only ACTIVE ever clicks."""
    first = [enrolment_event("s1", 7, u, START, event_id=u) for u in (*range(1, N + 1), ACTIVE)]
    out = [[in_record(e, e.event_id) for e in first]]
    for day in range(days):
        out.append([in_record(event(ACTIVE + 1 + day, ACTIVE, day + 0.5), ACTIVE + 1 + day)])
    return out


def _feedback() -> list[TeacherFeedback]:
    """What teachers answer during course day 12 (the day's second half)."""
    at = START + timedelta(days=12, hours=12)

    def f(fid: int, user: int, action: str, alert: str, later: float = 0.0) -> TeacherFeedback:
        return fb(fid, action, user, at + timedelta(hours=later), alert, course=7)

    return [
        f(10, 1, "contacted", "u1-day7"),  # held back until the cooldown is over
        f(11, 2, "acknowledged", "u2-day7"),  # never holds back
        f(12, 3, "notuseful", "u3-day7"),
        f(13, 4, "contacted", "u4-day7"),
        f(14, 4, "notuseful", "u4-day7", later=1.0),  # the same alert, changed: not held
        f(15, 5, "contacted", "u5-day7"),
        f(16, 5, "acknowledged", "u5-other", later=1.0),  # another alert: still held
    ]


def _run(
    url: str,
    handle: Any,
    batches: list[list[Any]],
    feedback_after: int | None,
    feedback: list[TeacherFeedback],
    crash: Callable[[int, Any], bool] | None = None,
) -> tuple[ListPublisher, int]:
    """Process the batches in order (offsets committed after each ``process``).
    ``crash(n, w)`` true: the n-th state write of the run (``w``, a BatchWrite) fails (the
    worker dies after publishing), a new Processor restarts from the last committed batch
    and the feedback topic is stored again from the beginning (reversed, as a replay may
    interleave)."""
    pub = ListPublisher()
    writes = 0
    real_write = processor_mod.write_batch

    async def write(r: Any, w: Any) -> None:
        nonlocal writes
        writes += 1
        if crash is not None and crash(writes, w):
            raise SystemError("kill -9 (test)")
        await real_write(r, w)

    async def go() -> int:
        r = connect(url)
        crashes = 0
        proc = Processor(r, pub, handle, sweep_partitions=1)
        i = 0
        while i < len(batches):
            try:
                await proc.process(batches[i])
            except SystemError:
                crashes += 1
                assert crashes < 20, "crash loop: the crash predicate keeps firing"
                proc = Processor(r, pub, handle, sweep_partitions=1)  # restarted worker
                if feedback_after is not None and i > feedback_after:
                    await store(r, feedback[::-1])  # the feedback topic read again
                continue  # the same batch again: its offsets were never committed
            if i == feedback_after:
                await store(r, feedback)
            i += 1
        await r.aclose()
        return crashes

    processor_mod.write_batch = write  # type: ignore[assignment]
    try:
        crashes = asyncio.run(go())
    finally:
        processor_mod.write_batch = real_write
    return pub, crashes


def _days(pub: ListPublisher) -> dict[int, list[int]]:
    got: dict[int, list[int]] = {}
    for a in sorted({a.alert_id: a for a in pub.alerts()}.values(), key=lambda a: a.day):
        got.setdefault(a.user_id, []).append(a.day)
    return got


def _setup(client: redis.Redis) -> None:
    client.flushdb()
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=120)
    client.set(keys.calendar_key("s1", 7), encode(cal))


def test_contacted_student_is_not_alerted_again_within_the_cooldown_but_after_it(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = _handle(tmp_path / "reg")
    batches = _batches(26)
    _setup(redis_client)
    plain, _ = _run(stack.redis_url, handle, batches, None, [])
    without = _days(plain)
    assert all(without[u] == [7, 14] for u in range(1, N + 1)), without  # the model's cooldown

    _setup(redis_client)
    # the answers reach Redis after the batch of course day 12 (so day 7's alerts are out)
    pub, _ = _run(stack.redis_url, handle, batches, 13, _feedback())
    with_fb = _days(pub)
    contacted = START + timedelta(days=12, hours=12)
    # contacted at day 12.5: the days that close before day 19.5 are held back, day 19 is not
    assert with_fb[1] == [7, 19] and with_fb[5] == [7, 19], with_fb
    assert contacted + timedelta(days=COOLDOWN) < START + timedelta(days=19 + 1)
    for u in (2, 3, 4, 6):  # acknowledged, not useful, contacted then changed, no answer
        assert with_fb[u] == without[u], (u, with_fb)
    assert with_fb[ACTIVE] == without[ACTIVE]
    # a held-back student took no room and kept their alert memory: day 14's count is 5 - 2
    book = redis_client.hgetall(keys.caps_key("s1", 7, 0))
    assert int(book[b"a14"]) == int(book[b"a7"]) - 2 and int(book[b"a19"]) == 2


def _releases_once() -> Callable[[int, Any], bool]:
    """Fails every release that admits alerts, the first time it runs."""
    seen: set[str] = set()

    def crash(_n: int, w: Any) -> bool:
        if not (w.hsets and w.alerts):
            return False
        first = json.loads(w.alerts[0])["alert_id"]  # the payload's created_at differs
        if first in seen:
            return False
        seen.add(first)
        return True

    return crash


@pytest.mark.parametrize(
    "crash",
    [
        pytest.param(_releases_once, id="every-alerting-release"),
        pytest.param(lambda: lambda n, _w: n in (8, 30, 45, 60), id="batches-and-sweeps"),
    ],
)
def test_crash_and_replay_of_events_and_feedback_give_the_same_alerts(
    stack: Stack,
    redis_client: redis.Redis,
    tmp_path: Path,
    crash: Callable[[], Callable[[int, Any], bool]],
) -> None:
    """A state write fails after its outputs were published (a release's or a batch's), the
    worker restarts from the last committed batch and reads the feedback topic again: the
    alerts (by id, on the stream and on the topic) are those of the uninterrupted run."""
    handle = _handle(tmp_path / "reg")
    batches = _batches(26)
    _setup(redis_client)
    ref, _ = _run(stack.redis_url, handle, batches, 13, _feedback())
    want = {a.alert_id for a in ref.alerts()}
    want_stream = _stream_ids(redis_client)
    assert want == want_stream and _days(ref)[1] == [7, 19]  # the feedback held one back

    _setup(redis_client)
    pub, crashes = _run(stack.redis_url, handle, batches, 13, _feedback(), crash=crash())
    assert crashes >= 3
    assert {a.alert_id for a in pub.alerts()} == want  # duplicates possible, never losses
    ids = _stream_list(redis_client)
    assert len(ids) == len(set(ids)) and set(ids) == want_stream
    assert _days(pub) == _days(ref)


def _stream_list(client: redis.Redis) -> list[str]:
    rows: Any = client.xrange("rs:alerts")
    return [decode(RiskAlert, f[b"alert"]).alert_id for _, f in rows]


def _stream_ids(client: redis.Redis) -> set[str]:
    return set(_stream_list(client))


# -- the consumer on a real broker ----------------------------------------------------------
def test_consumer_catches_up_before_the_worker_starts_then_tails(
    stack: Stack, redis_client: redis.Redis
) -> None:
    """``catch_up`` stores everything already on the topic (read from the beginning, no
    group); a second worker reading it all again changes nothing; ``run`` tails new answers."""
    import uuid

    import redis.asyncio as aredis
    from aiokafka import AIOKafkaProducer

    from riskstream.kafka_admin import ensure_topics
    from stream_app.feedback import FeedbackConsumer

    site = f"fb{uuid.uuid4().hex[:8]}"
    topic = f"riskstream.feedback.{site}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic,), 3))
    first = [
        fb(i, "contacted" if i % 2 else "acknowledged", user=i % 4, site=site) for i in range(1, 30)
    ]
    late = fb(40, "contacted", user=9, site=site)

    async def produce(items: list[TeacherFeedback]) -> None:
        p = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        await p.start()
        try:
            for f in items:
                await p.send(topic, encode(f), key=f.key)
            await p.flush()
        finally:
            await p.stop()

    def stored() -> dict[str, Any]:
        return {
            k.decode(): redis_client.hgetall(k) for k in redis_client.scan_iter(f"rs:fb:{{{site}:*")
        }

    async def go() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        await produce(first)
        r = aredis.Redis.from_url(stack.redis_url)
        try:
            c1 = FeedbackConsumer(stack.bootstrap, r, topic)
            assert await c1.catch_up(timeout_s=30)
            await c1.close()
            after_first = stored()
            c2 = FeedbackConsumer(stack.bootstrap, r, topic)  # a restart reads it all again
            assert await c2.catch_up(timeout_s=30)
            again = stored()
            stop = asyncio.Event()
            task = asyncio.create_task(c2.run(stop))
            await produce([late])
            key = feedback_key(site, 3, 9)
            for _ in range(100):
                if await r.exists(key):
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(task, 10)
            return after_first, again, stored()
        finally:
            await r.aclose()

    after_first, again, tailed = asyncio.run(go())
    assert after_first == again and len(after_first) == 4  # users 0-3, one hash each
    assert sum(len(h) for h in after_first.values()) == len(first)  # one answer per alert
    assert feedback_key(site, 3, 9) in tailed


# -- a real worker, killed and restarted, with feedback on the topic ------------------------
@pytest.mark.slow
def test_real_worker_kill9_and_restart_with_feedback_matches_uninterrupted_run(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Teachers' answers are on ``riskstream.feedback`` before the worker starts; the worker
    is killed with SIGKILL mid-replay and restarted (it reads the feedback topic again): the
    alerts equal those of an uninterrupted in-process run that had the answers in Redis, and
    differ from the run without them."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from aiokafka.partitioner import murmur2

    from contracts import TOPICS
    from riskstream.kafka_admin import ensure_topics
    from tests.conftest import REPO, subprocess_env
    from tests.stream_app.test_crash_replay import (
        N_USERS,
        _alert_ids_on_topic,
        _events,
        _produce,
        _reference,
        _thresholds,
    )

    # a fixed site: students' partitions (murmur2 of "site:user") and so the capacity
    # shares, hence which students are alerted, depend on it (the session's stack is fresh)
    site = "fbkill9"
    topic = f"riskstream.events.{site}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic, *TOPICS.all()), 4))
    evs = _events(site)
    cal = CourseCalendar(site=site, course_id=7, start=START, length_days=60)
    th = _thresholds(tmp_path / "pilot", evs, cal)
    reg = tmp_path / "reg"
    tiny_model(reg, seed=11, hidden=8, thresholds=th)
    handle = load_handle(reg, "cpu")
    recs = [in_record(e, i, (murmur2(e.key) & 0x7FFFFFFF) % 4) for i, e in enumerate(evs)]
    ref_url = stack.redis_url[:-1] + "2"
    ref = redis.Redis.from_url(ref_url)

    def reference(answers: list[TeacherFeedback]) -> list[RiskAlert]:
        ref.flushdb()
        ref.set(keys.calendar_key(site, 7), encode(cal))

        async def put() -> None:
            r = connect(ref_url)
            await store(r, answers)
            await r.aclose()

        asyncio.run(put())
        asyncio.run(_reference(ref_url, handle, recs))
        rows: Any = ref.xrange("rs:alerts")
        return [decode(RiskAlert, f[b"alert"]) for _, f in rows]

    plain = reference([])
    first: dict[int, RiskAlert] = {}
    for a in sorted(plain, key=lambda a: a.day):
        first.setdefault(a.user_id, a)
    assert len(first) >= 4, first
    # contacted half a day before their first alert's day closed: that alert is held back
    answers = [
        fb(
            100 + n,
            "contacted",
            a.user_id,
            START + timedelta(days=a.day + 0.5),
            a.alert_id,
            site,
            7,
        )
        # not the earliest alerts: the kill below waits for the site's first alert
        for n, a in enumerate(list(first.values())[1:4])
    ]
    answers.append(fb(200, "notuseful", answers[0].user_id, answers[0].time, "other", site, 7))
    want = {a.alert_id for a in reference(answers)}
    assert want != {a.alert_id for a in plain}

    async def publish_feedback() -> None:
        from aiokafka import AIOKafkaProducer

        p = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        await p.start()
        try:
            for f in answers:
                await p.send(TOPICS.feedback, encode(f), key=f.key)
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(publish_feedback())
    redis_client.set(keys.calendar_key(site, 7), encode(cal))
    asyncio.run(_produce(stack.bootstrap, topic, evs))
    env = subprocess_env(
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_MODEL_REGISTRY=str(reg),
        RISKSTREAM_STREAM_GROUP=f"g-{site}",
        RISKSTREAM_STREAM_EVENTS_TOPIC=topic,
        RISKSTREAM_STREAM_SESSION_TIMEOUT_MS="6000",
        RISKSTREAM_STREAM_BATCH_MAX="16",
        RISKSTREAM_STREAM_BATCH_WITHIN="0.01",
        RISKSTREAM_DEVICE="cpu",
        RISKSTREAM_LOG_LEVEL="WARNING",
    )  # the sweep and the feedback are on by default
    last = {u: max(e.event_id for e in evs if e.user_id == u) for u in range(N_USERS)}

    def progress() -> int:
        vals = [redis_client.hget(keys.state_key(site, 7, u), "last_id") for u in range(N_USERS)]
        return sum(int(v) == last[u] for u, v in enumerate(vals) if v is not None)

    def mine() -> list[str]:
        rows: Any = redis_client.xrange("rs:alerts")
        return [
            a.alert_id for a in (decode(RiskAlert, f[b"alert"]) for _, f in rows) if a.site == site
        ]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "riskstream", "worker", "--device", "cpu"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "worker.log", "ab"),
        )

    w = start()
    try:
        deadline = time.monotonic() + 60
        while not mine() and time.monotonic() < deadline:
            assert w.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.02)
        os.kill(w.pid, signal.SIGKILL)
        w.wait(10)
        assert progress() < N_USERS, "worker finished before the kill; make the replay longer"
        w = start()
        deadline = time.monotonic() + 60
        while progress() < N_USERS and time.monotonic() < deadline:
            assert w.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.2)
        assert progress() == N_USERS
    finally:
        w.terminate()
        try:
            w.wait(15)
        except subprocess.TimeoutExpired:
            w.kill()
    ids = mine()
    assert len(ids) == len(set(ids))
    assert set(ids) == want, (set(ids) - want, want - set(ids))
    on_topic = set(asyncio.run(_alert_ids_on_topic(stack.bootstrap, site)))
    assert on_topic == want, (on_topic - want, want - on_topic)
    for f in answers[:3]:  # stored once per alert, whatever the replays
        stored = parse(redis_client.hgetall(keys.feedback_key(site, 7, f.user_id)))
        assert {a["alert_id"] for a in stored} >= {f.alert_id}
    ref.close()

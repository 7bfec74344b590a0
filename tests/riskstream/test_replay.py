"""The replayer: pace, order, Redis context, real broker round trip, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer

from contracts import (
    CourseCalendar,
    DeadLetter,
    LmsEvent,
    StudentProfile,
    decode,
    decode_event,
)
from riskstream.kafka_admin import ensure_topics
from riskstream.replay import (
    Pace,
    Pacer,
    calendar_key,
    courses_key,
    derive_calendars,
    load_jsonl,
    parse_selection,
    profile_key,
    replay,
    write_context,
)
from riskstream.stack import Stack
from tests.conftest import REPO, subprocess_env

CLI = (sys.executable, "-m", "riskstream")
T0 = datetime(2024, 2, 5, 9, 0, tzinfo=UTC)


def make_events(n: int, users: int = 5, site: str = "t", course: int = 7) -> list[LmsEvent]:
    return [
        LmsEvent(
            site=site,
            event_id=100 + i,
            user_id=1 + i % users,
            course_id=course,
            time=T0 + timedelta(minutes=10 * i),
            eventname="\\mod_page\\event\\course_module_viewed",
            component="mod_page",
            action="viewed",
            target="course_module",
        )
        for i in range(n)
    ]


def write_jsonl(path: Path, events: list[LmsEvent], extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [e.model_dump_json() for e in events] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


async def consume_all(bootstrap: str, topic: str, expect: int, timeout: float = 20.0):
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    got = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for tp, msgs in batch.items():
                got.extend((tp.partition, m) for m in msgs)
        # a short extra look, so a test also sees too many messages
        batch = await consumer.getmany(timeout_ms=300)
        for tp, msgs in batch.items():
            got.extend((tp.partition, m) for m in msgs)
    finally:
        await consumer.stop()
    return got


# --- pace ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_time_factor_pacing_targets_course_time() -> None:
    clock = FakeClock()
    pacer = Pacer(Pace.days_per_second(1.0), clock)
    assert pacer.delay(T0, 0) == 0.0
    # half a course day later -> half a wall second after the first event
    assert pacer.delay(T0 + timedelta(hours=12), 1) == pytest.approx(0.5)
    clock.now += 0.4
    assert pacer.delay(T0 + timedelta(hours=12), 1) == pytest.approx(0.1)
    clock.now += 5  # behind schedule: no waiting, no catching up by sleeping
    assert pacer.delay(T0 + timedelta(days=2), 2) == 0.0


def test_rate_pacing_and_max_speed() -> None:
    clock = FakeClock()
    pacer = Pacer(Pace(events_per_s=100.0), clock)
    pacer.delay(T0, 0)
    assert pacer.delay(T0, 50) == pytest.approx(0.5)
    fast = Pacer(Pace(), clock)
    fast.delay(T0, 0)
    assert fast.delay(T0 + timedelta(days=30), 10_000) == 0.0


def test_pace_refuses_two_paces_and_nonpositive() -> None:
    with pytest.raises(ValueError, match="not both"):
        Pace(time_factor=1.0, events_per_s=1.0)
    with pytest.raises(ValueError, match="> 0"):
        Pace(events_per_s=0)
    assert "day" in Pace.days_per_second(2).describe()


def test_parse_selection() -> None:
    assert parse_selection("ggg/2014b") == ("GGG", "2014B")
    assert parse_selection("2014B") == (None, "2014B")
    assert parse_selection("all") == (None, None)
    assert parse_selection("EEE") == ("EEE", None)


# --- sources -------------------------------------------------------------------------------


def test_load_jsonl_sorts_reproducibly_and_keeps_bad_lines(tmp_path: Path) -> None:
    events = make_events(30)
    shuffled = events[::3] + events[1::3] + events[2::3]
    # same time, two sites: order falls back to site, then event id
    twin = events[0].model_copy(update={"site": "a", "event_id": 5})
    (tmp_path / "archive").mkdir()
    write_jsonl(tmp_path / "archive" / "b.jsonl", shuffled[15:])
    write_jsonl(
        tmp_path / "archive" / "a.jsonl",
        [*shuffled[:15], twin],
        extra_lines=('{"site": "t", "event_id": -1}', "not json"),
    )
    first = load_jsonl([tmp_path / "archive"])
    again = load_jsonl([tmp_path / "archive" / "b.jsonl", tmp_path / "archive" / "a.jsonl"])
    assert [e.event_id for e in first.events] == [5, *[e.event_id for e in events]]
    assert first.events == again.events
    assert len(first.bad) == 2
    assert first.bad[0].where.endswith("a.jsonl:17")
    assert "event_id" in first.bad[0].reason
    dl = first.bad[1].dead_letter()
    assert isinstance(dl, DeadLetter) and dl.payload == "not json" and "a.jsonl:18" in dl.reason


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_jsonl([tmp_path / "nope.jsonl"])


def test_derive_calendars_starts_at_midnight_of_first_event() -> None:
    evs = make_events(10) + make_events(3, course=8)
    cals = {c.course_id: c for c in derive_calendars(evs)}
    assert cals[7].start == datetime(2024, 2, 5, tzinfo=UTC)
    assert cals[7].site == "t" and set(cals) == {7, 8}


# --- real Redis and broker -----------------------------------------------------------------


def test_write_context_keys_and_derived_never_overwrite(redis_client: redis.Redis) -> None:
    real = CourseCalendar(site="t", course_id=7, start=T0 - timedelta(days=3), length_days=100)
    prof = StudentProfile(site="t", course_id=7, user_id=3, studied_credits=60)
    rep = write_context(redis_client, calendars=[real], profiles=[prof], chunk=1)
    assert (rep.calendars, rep.profiles) == (1, 1)
    derived = derive_calendars(make_events(4) + make_events(2, course=9))
    write_context(redis_client, derived=derived)
    kept = decode(CourseCalendar, redis_client.get(calendar_key("t", 7)))
    assert kept.length_days == 100  # the real calendar wins over the derived one
    assert redis_client.get(calendar_key("t", 9)) is not None
    assert redis_client.smembers(courses_key("t")) == {b"7", b"9"}
    got = decode(StudentProfile, redis_client.get(profile_key("t", 7, 3)))
    assert got.studied_credits == 60


def test_replay_round_trip_keyed_in_order_with_dead_letters(stack: Stack, tmp_path: Path) -> None:
    topic = f"test.replay.{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}.dlq"
    asyncio.run(ensure_topics(stack.bootstrap, (topic, dlq), 4))
    path = write_jsonl(tmp_path / "e.jsonl", make_events(200)[::-1], ("{broken",))
    loaded = load_jsonl([path])
    rep = asyncio.run(
        replay(
            loaded.events,
            stack.bootstrap,
            topic=topic,
            dead_letters=[b.dead_letter() for b in loaded.bad],
            dead_letter_topic=dlq,
            window=64,
        )
    )
    assert (rep.sent, rep.acked, rep.failed, rep.dead_letters) == (200, 200, 0, 1)
    assert not rep.interrupted and len(rep.users) == 5
    got = asyncio.run(consume_all(stack.bootstrap, topic, 200))
    assert len(got) == 200
    parts: dict[bytes, set[int]] = {}
    ids: dict[bytes, list[int]] = {}
    for part, msg in got:
        ev = decode_event(msg.value)
        assert msg.key == ev.key
        parts.setdefault(msg.key, set()).add(part)
        ids.setdefault(msg.key, []).append(ev.event_id)
    assert all(len(p) == 1 for p in parts.values())
    assert all(v == sorted(v) for v in ids.values())  # time order kept per student
    dead = asyncio.run(consume_all(stack.bootstrap, dlq, 1))
    assert len(dead) == 1
    assert decode(DeadLetter, dead[0][1].value).payload == "{broken"


def test_stop_request_flushes_and_reports_what_was_sent(stack: Stack) -> None:
    topic = f"test.replay.stop.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic,), 4))

    async def run():
        stop = asyncio.Event()
        seen = []

        def on_progress(n: int, ev: LmsEvent) -> None:
            seen.append(n)
            if n >= 40:
                stop.set()

        return await replay(
            make_events(500),
            stack.bootstrap,
            topic=topic,
            pace=Pace(events_per_s=400),
            stop=stop,
            on_progress=on_progress,
            progress_every=10,
        )

    rep = asyncio.run(run())
    assert rep.interrupted
    assert 40 <= rep.sent < 500 and rep.acked == rep.sent
    assert len(asyncio.run(consume_all(stack.bootstrap, topic, rep.sent))) == rep.sent


def _cli_env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    return subprocess_env(
        RISKSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        RISKSTREAM_REDIS_URL=stack.redis_url,
        RISKSTREAM_STATE_DIR=str(tmp_path / "state"),
    )


def test_cli_replay_writes_context_and_counts(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    topic = f"test.replay.cli.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic,), 4))
    path = write_jsonl(tmp_path / "e.jsonl", make_events(60, site="cli"))
    prof = StudentProfile(site="cli", course_id=7, user_id=2, num_prev_attempts=1)
    (tmp_path / "p.jsonl").write_text(prof.model_dump_json() + "\n")
    out = subprocess.run(
        [*CLI, "replay", str(path), "--topic", topic, "--profiles", str(tmp_path / "p.jsonl")],
        cwd=REPO,
        env=_cli_env(stack, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "acked" in out.stdout and "60" in out.stdout
    assert redis_client.get(calendar_key("cli", 7)) is not None
    assert redis_client.get(profile_key("cli", 7, 2)) is not None
    assert len(asyncio.run(consume_all(stack.bootstrap, topic, 60))) == 60


def test_cli_replay_sigint_stops_cleanly(stack: Stack, tmp_path: Path) -> None:
    topic = f"test.replay.sigint.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(stack.bootstrap, (topic,), 4))
    path = write_jsonl(tmp_path / "e.jsonl", make_events(5000, site="sig"))
    proc = subprocess.Popen(
        [*CLI, "replay", str(path), "--topic", topic, "--rate", "300"],
        cwd=REPO,
        env=_cli_env(stack, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(4.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert "stopped early" in out
    table = {
        row.split("│")[1].strip(): row.split("│")[2].strip()
        for row in out.splitlines()
        if row.count("│") >= 3
    }
    acked = int(table["acked"])
    assert 0 < acked < 5000
    assert len(asyncio.run(consume_all(stack.bootstrap, topic, acked))) == acked


# --- OULAD source --------------------------------------------------------------------------


def test_oulad_source_is_ordered_limited_and_rewrites_site() -> None:
    from tests.conftest import OULAD_DIR

    if not (OULAD_DIR / "studentVle.parquet").is_file():
        pytest.skip(f"OULAD not found at {OULAD_DIR}")
    from riskstream.replay import OuladSourceError, load_oulad

    src = load_oulad(OULAD_DIR, "GGG/2014B", site="replay-test", max_students=15)
    events = list(src.events)
    assert len(events) == src.total > 0
    assert events == sorted(events, key=lambda e: (e.time, e.event_id))
    assert [e.event_id for e in events] == sorted({e.event_id for e in events})
    assert {e.site for e in events} == {"replay-test"}
    assert src.users is not None and len(src.users) == 15
    assert {e.user_id for e in events} <= src.users
    assert len(src.calendars) == 1 and src.calendars[0].site == "replay-test"
    assert {p.user_id for p in src.profiles} == src.users
    assert any(e.grade is not None for e in events)  # assessment submissions are events too
    # the backfill's records, formatted without building the models: byte for byte the same
    from contracts import encode

    assert src.records is not None
    want = [(e.key, encode(e), e.time.toordinal()) for e in events]
    assert list(src.records()) == want
    with pytest.raises(OuladSourceError, match="choose from"):
        load_oulad(OULAD_DIR, "ZZZ/2014B")
    with pytest.raises(OuladSourceError, match="RISKSTREAM_DATA_DIR"):
        load_oulad(OULAD_DIR / "nope", "GGG/2014B")


def test_oulad_backfill_records_equal_the_encoded_events_for_every_kind() -> None:
    """Every kind of OULAD row (enrolment, unenrolment, each click activity, quiz and
    assignment submissions, graded or not) formats to the bytes ``encode`` gives."""
    from tests.conftest import OULAD_DIR

    if not (OULAD_DIR / "studentVle.parquet").is_file():
        pytest.skip(f"OULAD not found at {OULAD_DIR}")
    from contracts import encode
    from models import oulad

    o = oulad.Oulad(OULAD_DIR)
    table = o.event_table("AAA", "2013J", enrolments=True)
    sub = table[table["submitted"]]
    # all submissions (graded and not), and 20,000 other rows with every kind and activity
    sample = (
        table.groupby(["kind", "activity"], group_keys=False)
        .head(2000)
        .pipe(lambda t: t.iloc[:20_000])
    )
    rows = sample.combine_first(sub).sort_values("event_id") if len(sub) else sample
    rows = rows[table.columns].astype(table.dtypes.to_dict())
    got = list(oulad.event_records(rows, site="bf-test"))
    want = []
    for r in rows.itertuples(index=False):
        ev = oulad.row_to_event(r).model_copy(update={"site": "bf-test"})
        want.append((ev.key, encode(ev), ev.time.toordinal()))
    assert got == want
    kinds = {(int(k), bool(s)) for k, s in zip(rows["kind"], rows["submitted"], strict=True)}
    assert {(0, False), (0, True), (1, False), (2, False)} <= kinds
    assert (rows["submitted"] & rows["grade"].isna()).any()  # ungraded: the model path

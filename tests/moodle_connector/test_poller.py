"""Poller on the real broker + Redis with the fake Moodle: paging, resume, outage, dead letter."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from redis.asyncio import Redis

from contracts import DeadLetter, LmsEvent, decode, decode_event, is_enrolment, keys
from moodle_connector.client import MoodleClient, RetryPolicy
from moodle_connector.courses import CourseSync
from moodle_connector.cursor import Cursor
from moodle_connector.enrich import ATTEMPTS_OLD, Enricher
from moodle_connector.errors import InvalidToken
from moodle_connector.normalize import should_drop
from moodle_connector.poller import Poller
from riskstream.stack import Stack
from tests.moodle_connector.conftest import FAST, Topics, read_topic
from tests.moodle_connector.fake_moodle import FakeMoodle

SITE = "lab"


def make_poller(
    client: MoodleClient, producer: Any, redis: Redis, topics: Topics, **kw: Any
) -> Poller:
    return Poller(
        client,
        producer,
        redis,
        SITE,
        events_topic=topics.events,
        dead_letter_topic=topics.dead,
        idle_s=0.05,
        outage_backoff=RetryPolicy(attempts=100, base_s=0.02, max_s=0.1),
        **kw,
    )


def expected_ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in rows if not should_drop(r)]


async def events_on(stack: Stack, topic: str, expect: int | None = None) -> list[LmsEvent]:
    return [decode_event(v) for _, v in await read_topic(stack.bootstrap, topic, expect) if v]


async def test_pages_whole_recorded_log_in_order_per_student(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    producer: AIOKafkaProducer,
    aredis: Redis,
    topics: Topics,
) -> None:
    rows = fake.load_recorded()
    poller = make_poller(client, producer, aredis, topics, page_size=250)
    pages = 0
    while True:
        page = await poller.poll_once()
        pages += 1
        if not page.has_more:
            break
    assert pages >= 7
    assert await Cursor(aredis, SITE).get() >= rows[-1]["id"]
    want = expected_ids(rows)
    got = await events_on(stack, topics.events, len(want))
    assert sorted(ev.event_id for ev in got) == want  # no gap, no duplicate
    by_user: dict[int, list[int]] = {}
    for ev in got:
        by_user.setdefault(ev.user_id, []).append(ev.event_id)
    assert all(ids == sorted(ids) for ids in by_user.values())  # keyed by student: ordered
    assert poller.stats.published == len(want) and poller.stats.dead == 0
    assert poller.stats.dropped >= len(rows) - len(want)  # + the fake's own ws-call rows


class Killed(Exception):
    """Stands for the process dying (not an outage the poller would ride out)."""


class CrashAfter:
    """A producer that dies while page ``n`` is in flight (sends done, acks not awaited)."""

    def __init__(self, inner: AIOKafkaProducer, pages: int, page_size: int) -> None:
        self.inner, self.left = inner, pages * page_size

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        fut = await self.inner.send(topic, value=value, key=key)
        self.left -= 1
        if self.left < 0:
            raise Killed("killed mid-page")
        return fut


async def test_kill_mid_page_resumes_without_gap(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    producer: AIOKafkaProducer,
    aredis: Redis,
    topics: Topics,
) -> None:
    fake.log_ws_calls = False
    rows = fake.add_synthetic(2000)
    page_size = 300
    crashing = make_poller(
        client, CrashAfter(producer, 3, page_size), aredis, topics, page_size=page_size
    )
    stop = asyncio.Event()
    with pytest.raises(Killed):
        await crashing.run(stop)
    await producer.flush()
    cursor = await Cursor(aredis, SITE).get()
    assert cursor == rows[3 * page_size - 1]["id"]  # the half-sent page 4 was not committed
    fresh = make_poller(client, producer, aredis, topics, page_size=page_size)
    while (await fresh.poll_once()).has_more:
        pass
    got = [ev.event_id for ev in await events_on(stack, topics.events, len(rows))]
    assert set(got) == {r["id"] for r in rows}  # nothing lost
    dupes = len(got) - len(set(got))
    assert 0 < dupes <= page_size  # at most the last page again (consumers dedupe by id)


async def test_outage_backs_off_and_resumes(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    producer: AIOKafkaProducer,
    aredis: Redis,
    topics: Topics,
) -> None:
    rows = fake.load_recorded()
    fake.faults.extend(["503"] * 9 + ["timeout"])  # > one call's retry budget (4)
    fake.timeout_sleep_s = 2.5
    poller = make_poller(client, producer, aredis, topics, page_size=500)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    want = expected_ids(rows)
    for _ in range(200):
        if await Cursor(aredis, SITE).get() >= rows[-1]["id"]:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert poller.stats.outages >= 2
    got = await events_on(stack, topics.events, len(want))
    assert sorted(ev.event_id for ev in got) == want


class FlakyBroker:
    """Sends fail with a broker timeout ``fail`` times after ``ok`` successful sends."""

    def __init__(self, inner: AIOKafkaProducer, ok: int, fail: int) -> None:
        self.inner, self.ok, self.fail = inner, ok, fail

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        if self.ok <= 0 and self.fail > 0:
            self.fail -= 1
            raise KafkaTimeoutError()
        self.ok -= 1
        return await self.inner.send(topic, value=value, key=key)


async def test_broker_errors_back_off_and_replay_the_page(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    producer: AIOKafkaProducer,
    aredis: Redis,
    topics: Topics,
) -> None:
    fake.log_ws_calls = False
    rows = fake.add_synthetic(1000)
    poller = make_poller(
        client, FlakyBroker(producer, ok=450, fail=3), aredis, topics, page_size=300
    )
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    for _ in range(300):
        if await Cursor(aredis, SITE).get() >= rows[-1]["id"]:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert poller.stats.outages == 3
    got = [ev.event_id for ev in await events_on(stack, topics.events, 1150)]
    assert set(got) == {r["id"] for r in rows}
    assert len(got) - len(rows) == 150  # the half-sent second page went out again


async def test_invalid_token_stops_the_poller(
    fake: FakeMoodle, producer: AIOKafkaProducer, aredis: Redis, topics: Topics
) -> None:
    fake.load_recorded()
    async with MoodleClient(fake.url, "wrong-token", retry=FAST) as bad:
        poller = make_poller(bad, producer, aredis, topics)
        with pytest.raises(InvalidToken):
            await asyncio.wait_for(poller.run(asyncio.Event()), 5)
    assert await Cursor(aredis, SITE).get() == 0


async def test_malformed_row_goes_to_dead_letter_and_cursor_moves_on(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    producer: AIOKafkaProducer,
    aredis: Redis,
    topics: Topics,
) -> None:
    fake.log_ws_calls = False
    good = fake.add_synthetic(3)
    bad = dict(good[0], id=fake.last_id + 1, timecreated="yesterday")
    fake.add_rows([bad, ["not", "an", "object"], dict(good[1], id="x")])
    tail = fake.add_synthetic(2)
    poller = make_poller(client, producer, aredis, topics, page_size=100, enricher=Enricher(client))
    page = await poller.poll_once()
    assert page.published == 5 and page.dead == 3
    assert await Cursor(aredis, SITE).get() == tail[-1]["id"]
    raw = await read_topic(stack.bootstrap, topics.dead, 3)
    dead = [decode(DeadLetter, v) for _, v in raw if v]
    assert len(dead) == 3 and all(d.stage == "connector.normalize" for d in dead)
    reasons = " | ".join(d.reason for d in dead)
    assert "timecreated" in reasons and "expected an object" in reasons and "'id'" in reasons
    payload_ids = [json.loads(d.payload).get("id") for d in dead if d.payload.startswith("{")]
    assert bad["id"] in payload_ids


async def test_quiz_submissions_get_the_attempt_grade_and_courses_sync(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    producer: AIOKafkaProducer,
    aredis: Redis,
    topics: Topics,
) -> None:
    rows = fake.load_recorded()
    poller = make_poller(
        client,
        producer,
        aredis,
        topics,
        page_size=2000,
        enricher=Enricher(client),
        courses=CourseSync(client, aredis, SITE),
    )
    await poller.poll_once()
    got = {ev.event_id: ev for ev in await events_on(stack, topics.events, len(expected_ids(rows)))}
    # student04 (user 7): attempt 17 sumgrades 4/4 -> 10/10, attempt 31 sumgrades 2/4 -> 5/10
    assert (got[1080].grade, got[1080].max_grade, got[1080].attempt_id) == (10.0, 10.0, 17)
    assert (got[1507].grade, got[1507].max_grade, got[1507].attempt_id) == (5.0, 10.0, 31)
    graded = [
        ev
        for ev in got.values()
        if ev.eventname == "\\core\\event\\user_graded" and ev.grade is not None
    ]
    assert graded and all(ev.max_grade == 10.0 and ev.cmid == 7 for ev in graded)
    cal = json.loads(await aredis.get(keys.calendar_key(SITE, 2)))
    assert cal["course_id"] == 2 and cal["start"] == "2026-11-01T16:43:04Z"  # startdate 1793551384
    assert [d["kind"] for d in cal["deadlines"]] == ["quiz"] and cal["deadlines"][0]["cmid"] == 7
    roster = json.loads(await aredis.get(keys.roster_key(SITE, 2)))
    assert roster["teachers"] == [3] and len(roster["students"]) == 30
    assert b"2" in await aredis.smembers(keys.courses_key(SITE))


async def test_quiz_enrichment_falls_back_to_older_function(
    fake: FakeMoodle, client: MoodleClient
) -> None:
    fake.service.discard("mod_quiz_get_user_quiz_attempts")  # e.g. a 4.x service definition
    rows = {r["id"]: r for r in fake.load_recorded()}
    from moodle_connector.normalize import normalize_row

    ev = normalize_row(rows[1507], SITE)
    out = await Enricher(client).enrich([ev], rows)
    assert out[0].grade == 5.0
    assert fake.calls(ATTEMPTS_OLD) and fake.calls("mod_quiz_get_user_quiz_attempts")


async def test_only_students_of_the_roster_are_published_with_enrolment_records(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    producer: AIOKafkaProducer,
    aredis: Redis,
    topics: Topics,
) -> None:
    """Issue 14, defect 5 and item 4: the teacher (3) and the admin (2) of the recorded course
    act in the log but are never published; each roster student gets one enrolment (id 0)."""
    rows = fake.load_recorded()
    assert {r["userid"] for r in rows} & {2, 3}  # the log does hold their activity
    poller = make_poller(
        client, producer, aredis, topics, page_size=5000, courses=CourseSync(client, aredis, SITE)
    )
    page = await poller.poll_once()
    events = await events_on(stack, topics.events)
    assert page.not_students > 0
    assert {ev.user_id for ev in events} <= set(range(4, 34))
    enrolments = [ev for ev in events if is_enrolment(ev) and ev.event_id == 0]
    assert sorted(ev.user_id for ev in enrolments) == list(range(4, 34))
    first = min(ev.time for ev in events if ev.event_id > 0)
    assert all(ev.time <= first for ev in enrolments)  # never after the student's history


async def test_own_rows_are_dropped(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    producer: AIOKafkaProducer,
    aredis: Redis,
    topics: Topics,
) -> None:
    """Rows of the token's own user (an older plugin returns them) never become events."""
    rows = fake.add_synthetic(40, users=[5, 6])
    poller = make_poller(client, producer, aredis, topics, own_user_id=5)
    await poller.poll_once()
    events = await events_on(stack, topics.events)
    assert {ev.user_id for ev in events} == {6}
    assert len(events) == sum(1 for r in rows if r["userid"] == 6 and not should_drop(r))

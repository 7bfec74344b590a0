"""The alert policy inside the processor: no-shows scored and alerted, no wave, unenrolment."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import redis

from contracts import CourseCalendar, encode, enrolment_event, keys
from models.registry import Thresholds
from riskstream.stack import Stack
from stream_app.processor import Processor
from stream_app.state import connect, decode_state
from tests.stream_app.helpers import START, ListPublisher, event, handle_for, record

N = 40
ACTIVE = 1000  # one student who clicks every day drives the course clock


def _records(days: int, unenrol: dict[int, int] | None = None) -> list[list]:  # type: ignore[type-arg]
    """Day-by-day batches: everyone enrolled on day 0, only ACTIVE ever clicks."""
    unenrol = unenrol or {}
    out = []
    eid = 0
    first = []
    for u in range(1, N + 1):
        eid += 1
        first.append(enrolment_event("s1", 7, u, START, event_id=eid))
    eid += 1
    first.append(enrolment_event("s1", 7, ACTIVE, START, event_id=eid))
    out.append([record(e, e.event_id) for e in first])
    for day in range(days):
        evs = []
        eid += 1
        evs.append(event(eid, ACTIVE, day + 0.5))
        for u, d in unenrol.items():
            if d == day:
                eid += 1
                when = START + timedelta(days=day, hours=23)
                evs.append(enrolment_event("s1", 7, u, when, eid, ended=True))
        out.append([record(e, e.event_id) for e in evs])
    return out


def _run(url: str, handle, batches) -> ListPublisher:  # type: ignore[no-untyped-def]
    pub = ListPublisher()

    async def go() -> None:
        r = connect(url)
        proc = Processor(r, pub, handle, sweep_partitions=1)
        for b in batches:
            await proc.process(b)
        await r.aclose()

    asyncio.run(go())
    return pub


def _setup(redis_client: redis.Redis) -> None:
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=120)
    redis_client.set(keys.calendar_key("s1", 7), encode(cal))


def test_students_who_never_click_are_scored_swept_and_alerted(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    _setup(redis_client)
    th = Thresholds(min_days=7, persist_days=3, day_cap=1.0, week_cap=1.0)
    handle = handle_for(tmp_path, constant_risk=0.9, thresholds=th)
    pub = _run(stack.redis_url, handle, _records(15))
    # every no-show has a state advanced by the sweep (lag 1 behind day 14's clock)
    for u in range(1, N + 1):
        st = decode_state(redis_client.hgetall(keys.state_key("s1", 7, u)), handle.n_day)
        assert st.day == 13 and len(st.traj) == 13 and st.d0 == 0
        assert st.acc is not None and not st.acc.any()  # the enrolment counted no click
    alerted = {a.user_id: a for a in pub.alerts()}
    assert set(range(1, N + 1)) <= set(alerted)
    assert {a.day for a in alerted.values()} == {7}  # first day allowed, risk held 3 days
    assert redis_client.zcard(keys.rank_key("s1", 7)) == N + 1


def test_no_wave_capacity_spreads_alerts_by_risk(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    _setup(redis_client)
    th = Thresholds(min_days=7, persist_days=3, day_cap=0.05, week_cap=0.10)
    handle = handle_for(tmp_path, constant_risk=0.9, thresholds=th)
    batches = _records(40)
    pub = _run(stack.redis_url, handle, batches)
    alerts = pub.alerts()
    per_day = Counter(a.day for a in alerts)
    enrolled = N + 1
    assert max(per_day.values()) <= max(1, int(0.05 * enrolled))  # 2 a day
    for d in per_day:
        week = sum(n for k, n in per_day.items() if d - 7 < k <= d)
        assert week <= max(1, int(0.10 * enrolled))  # 4 a week
    assert len({a.user_id for a in alerts}) == len(alerts)  # one alert per student
    assert min(per_day) == 7 and len(alerts) >= 4
    book = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.caps_key("s1", 7, 0)).items()}
    assert {int(k[1:]): v for k, v in book.items() if k[0] == "a"} == dict(per_day)
    assert book["n0"] == N + 1 and book["rel"] >= 30  # everyone enrolled on day 0
    # a replay in other batch sizes from scratch decides the same alerts
    redis_client.flushdb()
    _setup(redis_client)
    merged = [[r for b in batches[i : i + 3] for r in b] for i in range(0, len(batches), 3)]
    again = _run(stack.redis_url, handle, merged)
    assert sorted(a.alert_id for a in again.alerts()) == sorted(a.alert_id for a in alerts)


def test_unenrolled_students_leave_the_ranking_and_are_never_alerted(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    _setup(redis_client)
    th = Thresholds(min_days=7, persist_days=3, day_cap=1.0, week_cap=1.0)
    handle = handle_for(tmp_path, constant_risk=0.9, thresholds=th)
    pub = _run(stack.redis_url, handle, _records(15, unenrol={3: 2, 4: 5}))
    alerted = {a.user_id for a in pub.alerts()}
    assert 3 not in alerted and 4 not in alerted and 5 in alerted
    members = {int(m) for m in redis_client.zrange(keys.rank_key("s1", 7), 0, -1)}
    assert 3 not in members and 4 not in members and 5 in members
    st = decode_state(redis_client.hgetall(keys.state_key("s1", 7, 3)), handle.n_day)
    assert st.alert.left == 2 and st.level == "low"


def _book(redis_client: redis.Redis) -> dict[str, int]:
    raw = redis_client.hgetall(keys.caps_key("s1", 7, 0))
    return {k.decode(): int(v) for k, v in raw.items() if k.decode()[0] in "nu"}


def test_an_unenrolment_on_the_open_day_is_kept_when_it_comes_in_a_later_batch(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The day is open and nothing is committed: the alert state (left) must still be
    written, or the student goes on being scored and alerted after leaving."""
    _setup(redis_client)
    handle = handle_for(tmp_path, constant_risk=0.9)
    joined = enrolment_event("s1", 7, 5, START, event_id=1)
    click = event(2, 5, 3.2)
    gone = enrolment_event("s1", 7, 5, START + timedelta(days=3, hours=20), 3, ended=True)
    _run(stack.redis_url, handle, [[record(joined, 1)], [record(click, 2)], [record(gone, 3)]])
    st = decode_state(redis_client.hgetall(keys.state_key("s1", 7, 5)), handle.n_day)
    assert st.alert.left == 3
    assert redis_client.zscore(keys.rank_key("s1", 7), "5") is None  # off the ranking


def test_leaving_and_rejoining_count_the_same_in_one_batch_or_several(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path, constant_risk=0.9)
    evs = [
        enrolment_event("s1", 7, 5, START, event_id=1),
        enrolment_event("s1", 7, 5, START + timedelta(days=1, hours=2), 2, ended=True),
        enrolment_event("s1", 7, 5, START + timedelta(days=1, hours=5), 3),
        event(4, 5, 2.5),
    ]
    recs = [record(e, e.event_id) for e in evs]
    books, lefts = [], []
    for batches in ([recs], [[r] for r in recs]):
        redis_client.flushdb()
        _setup(redis_client)
        _run(stack.redis_url, handle, batches)
        books.append(_book(redis_client))
        st = decode_state(redis_client.hgetall(keys.state_key("s1", 7, 5)), handle.n_day)
        lefts.append(st.alert.left)
    assert books[0] == books[1] == {"n0": 1, "u1": 1, "n1": 1}
    assert lefts == [None, None]  # enrolled again


def test_a_later_unenrolment_in_the_same_batch_leaves_earlier_days_alone(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Day-by-day batches or one batch holding everything: the same alerts. A student who
    leaves on day 20 was enrolled on days 14-19, whichever batch the unenrolment is in."""
    th = Thresholds(min_days=14, persist_days=3, day_cap=0.05, week_cap=0.10)
    handle = handle_for(tmp_path, constant_risk=0.9, thresholds=th)
    batches = _records(30, unenrol={u: 20 for u in range(1, 11)})
    got = []
    for run in (batches, [[r for b in batches for r in b]]):
        redis_client.flushdb()
        _setup(redis_client)
        pub = _run(stack.redis_url, handle, run)
        got.append(sorted((a.user_id, a.day) for a in pub.alerts()))
    assert got[0] == got[1]
    assert any(u <= 10 and 14 <= d < 20 for u, d in got[0])  # leavers alerted before leaving

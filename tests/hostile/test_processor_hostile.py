"""Hostile input against the batch logic on a real Redis (issue 15): one bad event never stops
the worker, never poisons a student, and every record is accounted for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import redis.exceptions
from aiokafka.errors import MessageSizeTooLargeError, TopicAuthorizationFailedError
from structlog.testing import capture_logs

from contracts import TOPICS, CourseCalendar, DeadLetter, RiskScore, decode, encode
from riskstream.stack import Stack
from stream_app.inference import InferenceEngine, StepPlan, StepResult
from stream_app.processor import MAX_EVENT_ID, FatalError
from stream_app.records import InRecord, OutRecord
from stream_app.state import BatchWrite, StudentKey, check_write, connect, write_batch
from tests.hostile.helpers import accounted, assert_published_valid, process, tmp_handle
from tests.stream_app.helpers import START, ListPublisher, event, record


def _raw_event(**over: Any) -> bytes:
    d = json.loads(encode(event(1, 1, 0.5)))
    d.update(over)
    return json.dumps(d).encode().replace(b'"__INF__"', b"Infinity")


def _stages(pub: ListPublisher) -> list[str]:
    return [decode(DeadLetter, r.value).stage for r in pub.on(TOPICS.dead_letter)]


def test_infinite_grade_is_dead_lettered_and_the_student_goes_on(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = tmp_handle(tmp_path)
    inf = _raw_event(event_id=2, component="mod_quiz", grade="__INF__", max_grade="__INF__")
    batch = [
        record(event(1, 1, 0.5), 0),
        InRecord(TOPICS.events, 0, 1, b"s1:1", inf, None),
        record(event(3, 1, 0.7), 2),
    ]
    reps, pub = process(stack.redis_url, handle, [batch, [record(event(4, 1, 1.5), 3)]])
    assert (reps[0].applied, reps[0].dead, reps[1].applied) == (2, 1, 1)
    (dl,) = [decode(DeadLetter, r.value) for r in pub.on(TOPICS.dead_letter)]
    assert dl.stage == "stream.decode" and "finite" in dl.reason
    assert dl.raw_bytes() == inf
    raw = redis_client.hgetall("rs:st:s1:7:1")
    assert raw[b"last_id"] == b"4"
    for name in (b"h", b"c"):
        assert np.isfinite(np.frombuffer(raw[name], dtype=np.float32)).all()
    assert redis_client.zscore("rs:rank:s1:7", "1") is not None
    assert assert_published_valid(pub) == 3  # 1 dead letter + 1 risk score per batch


class PoisonEngine(InferenceEngine):
    """Makes row 0's model output non-finite (the first student of the batch)."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    async def run(self, model: Any, device: Any, plan: StepPlan) -> StepResult:
        res = await super().run(model, device, plan)
        if self.what == "state":
            res.states["h"][0] = np.nan
        else:
            res.ev_risk[plan.ev_student == 0] = np.inf
        return res


@pytest.mark.parametrize("what", ["state", "risk"])
def test_non_finite_model_output_dead_letters_and_keeps_prior_state(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path, what: str
) -> None:
    handle = tmp_handle(tmp_path)
    process(stack.redis_url, handle, [[record(event(1, 2, 0.5)), record(event(2, 1, 0.5))]])
    before = redis_client.hgetall("rs:st:s1:7:2")
    rank_before = redis_client.zscore("rs:rank:s1:7", "2")
    batch = [record(event(3, 2, 1.5), 3), record(event(4, 1, 1.5), 4)]
    reps, pub = process(stack.redis_url, handle, [batch], engine=PoisonEngine(what))
    assert (reps[0].applied, reps[0].dead) == (1, 1)
    (dl,) = [decode(DeadLetter, r.value) for r in pub.on(TOPICS.dead_letter)]
    assert dl.stage == "stream.model" and dl.source_offset == 3
    assert redis_client.hgetall("rs:st:s1:7:2") == before  # prior state kept, byte for byte
    assert redis_client.zscore("rs:rank:s1:7", "2") == rank_before
    scores = [decode(RiskScore, r.value) for r in pub.on(TOPICS.risk_latest)]
    assert [s.user_id for s in scores] == [1]
    assert redis_client.hget("rs:st:s1:7:1", "last_id") == b"4"
    assert_published_valid(pub)
    # the refused event was not applied: the student's next genuine event is
    reps, _ = process(stack.redis_url, handle, [[record(event(5, 2, 2.5), 5)]])
    assert reps[0].applied == 1
    assert redis_client.hget("rs:st:s1:7:2", "last_id") == b"5"


def test_non_finite_calibrated_risk_dead_letters_and_keeps_prior_state(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The risk teachers see goes through the version's calibration: a calibration that
    yields NaN for a student is caught like a NaN from the model."""
    handle = tmp_handle(tmp_path)
    process(stack.redis_url, handle, [[record(event(1, 2, 0.5)), record(event(2, 1, 0.5))]])
    before = redis_client.hgetall("rs:st:s1:7:2")
    real = handle.loaded.calibrate
    poisoned = {"row": True}

    def calibrate(risk: Any, day: Any) -> Any:
        out = np.asarray(real(risk, day), dtype=np.float64)
        if poisoned["row"] and out.ndim and len(out):
            out = out.copy()
            out[0] = np.nan  # the first event of the batch: user 2's
        return out

    monkeypatch.setattr(handle.loaded, "calibrate", calibrate)
    batch = [record(event(3, 2, 0.7), 3), record(event(4, 1, 0.7), 4)]
    reps, pub = process(stack.redis_url, handle, [batch])
    assert (reps[0].applied, reps[0].dead) == (1, 1)
    assert _stages(pub) == ["stream.model"]
    assert redis_client.hgetall("rs:st:s1:7:2") == before
    assert_published_valid(pub)


def test_failing_write_leaves_no_partial_state(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Injected failure: the ranking key of the batch's second course has the wrong type, so
    its ZADD would fail after the first course's HSETs; the script refuses before writing."""
    handle = tmp_handle(tmp_path)
    redis_client.set("rs:rank:s1:8", "not a zset")
    batch = [record(event(1, 1, 0.5, course=7), 0), record(event(2, 1, 0.5, course=8), 1)]
    with pytest.raises(redis.exceptions.ResponseError, match="nothing written"):
        process(stack.redis_url, handle, [batch])
    assert redis_client.keys("rs:st:*") == []
    assert redis_client.exists("rs:rank:s1:7", "rs:counts", "rs:site:s1:id_hi") == 0
    redis_client.delete("rs:rank:s1:8")  # fixed: the replayed batch applies both
    reps, _ = process(stack.redis_url, handle, [batch])
    assert reps[0].applied == 2 and len(redis_client.keys("rs:st:*")) == 2


def test_non_finite_write_refused_before_the_first_write(
    stack: Stack, redis_client: redis.Redis
) -> None:
    good, bad = StudentKey("s1", 7, 1), StudentKey("s1", 7, 2)
    w = BatchWrite(
        states={good: {"last_id": 1, "risk": "0.5"}, bad: {"last_id": 2, "risk": "nan"}},
        ranks={good: 0.5, bad: float("nan")},
    )
    with pytest.raises(ValueError, match="not finite"):
        check_write(w)

    async def raw_write() -> None:  # the script's own check, if Python's were bypassed
        r = connect(stack.redis_url)
        try:
            await write_batch(r, w)
        finally:
            await r.aclose()

    with pytest.raises(redis.exceptions.ResponseError, match="not finite"):
        asyncio.run(raw_write())
    assert redis_client.keys("rs:*") == []


def test_bogus_ids_are_refused_and_do_not_hide_later_events(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = tmp_handle(tmp_path)
    first = [record(event(i, 1, 0.1 * i), i) for i in range(1, 4)]
    bogus = [
        record(event(2**63, 1, 0.5), 10),
        record(event(MAX_EVENT_ID + 1, 1, 0.5), 11),
        record(event(3 + 1000 + 1, 1, 0.5), 12),  # above the site's range + max_id_jump
    ]
    genuine = [record(event(i, 1, 0.5), 20 + i) for i in range(4, 8)]
    with capture_logs() as logs:
        reps, pub = process(
            stack.redis_url, handle, [first, bogus + genuine, genuine[:2]], max_id_jump=1000
        )
    assert [r.applied for r in reps] == [3, 4, 0]
    assert reps[1].dead == 3 and reps[2].duplicates == 2
    dls = [decode(DeadLetter, r.value) for r in pub.on(TOPICS.dead_letter)]
    assert [d.stage for d in dls] == ["stream.plausibility"] * 3
    assert "2^53" in dls[0].reason and "known range" in dls[2].reason
    assert redis_client.hget("rs:st:s1:7:1", "last_id") == b"7"
    assert redis_client.get("rs:site:s1:id_hi") == b"7"
    dup = [e for e in logs if e["event"] == "duplicates.skipped"]
    assert dup and dup[0]["count"] == 2 and "id 4 <= last 7" in dup[0]["examples"][0]


def test_a_new_site_takes_its_range_from_the_batch_median(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A big real site (ids ~3e8) with roster records (id 0) and one bogus id in its first
    batch: the bogus id is refused, the real ones applied."""
    handle = tmp_handle(tmp_path)
    base = 300_000_000
    recs = [record(event(0, 9, 0.1), 0)]
    recs += [record(event(base + i, 1 + i % 3, 0.2 + 0.1 * i), 1 + i) for i in range(5)]
    recs.append(record(event(2**52, 1, 0.9), 9))
    reps, pub = process(stack.redis_url, handle, [recs], max_id_jump=1000)
    assert (reps[0].applied, reps[0].dead) == (6, 1)
    assert _stages(pub) == ["stream.plausibility"]
    assert redis_client.get("rs:site:s1:id_hi") == str(base + 4).encode()


def test_key_that_disagrees_with_its_value_is_refused(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = tmp_handle(tmp_path)
    ev = event(1, 1, 0.5)
    lying = InRecord(TOPICS.events, 0, 0, b"s1:99", encode(ev), None)
    reps, pub = process(stack.redis_url, handle, [[lying, record(event(2, 99, 0.5), 1)]])
    assert (reps[0].applied, reps[0].dead) == (1, 1)
    assert _stages(pub) == ["stream.key"]
    assert not redis_client.exists("rs:st:s1:7:1")


def test_implausible_times_are_refused_and_cannot_fix_a_derived_calendar(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = tmp_handle(tmp_path)
    d = json.loads(encode(event(1, 1, 0.5)))
    epoch = InRecord(
        TOPICS.events,
        0,
        0,
        b"s1:1",
        json.dumps(d | {"time": "1970-01-01T00:00:00Z"}).encode(),
        None,
    )
    future = InRecord(
        TOPICS.events,
        0,
        1,
        b"s1:1",
        json.dumps(d | {"event_id": 2, "time": "2999-01-01T00:00:00Z"}).encode(),
        None,
    )
    old = record(event(3, 2, -3000), 2)  # 2015: plausible alone, far before this course
    real = [record(event(10 + i, 3 + i % 3, 1.0 + i), 10 + i) for i in range(9)]
    reps, pub = process(stack.redis_url, handle, [[epoch, future, old, *real]])
    assert reps[0].applied == 9 and reps[0].dead == 3
    assert _stages(pub) == ["stream.plausibility", "stream.plausibility", "stream.day"]
    cal = decode(CourseCalendar, redis_client.get("rs:cal:s1:7"))
    assert cal.start == START + __import__("datetime").timedelta(days=1)  # from the real ones


def test_connector_calendar_replaces_a_derived_one(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = tmp_handle(tmp_path)
    process(stack.redis_url, handle, [[record(event(1, 1, 10.5))]])
    derived = decode(CourseCalendar, redis_client.get("rs:cal:s1:7"))
    assert derived.name == "(default calendar)"
    # the connector (moodle_connector.courses) SETs the Moodle calendar over it
    real = CourseCalendar(site="s1", course_id=7, start=START, length_days=60, name="Moodle")
    redis_client.set("rs:cal:s1:7", real.model_dump_json())
    _, pub = process(stack.redis_url, handle, [[record(event(2, 2, 12.5))]])
    (score,) = [decode(RiskScore, r.value) for r in pub.on(TOPICS.risk_latest)]
    assert score.day == 12  # counted from the Moodle start, not the derived one (day 2)
    assert decode(CourseCalendar, redis_client.get("rs:cal:s1:7")).name == "Moodle"


def test_only_configured_sites_and_sites_sharing_ids_stay_apart(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = tmp_handle(tmp_path)
    a = event(1, 1, 0.5)
    b = a.model_copy(update={"site": "s2", "event_id": 1})
    c = a.model_copy(update={"site": "intruder", "event_id": 5})
    batch = [record(a, 0), record(b, 1), record(c, 2)]
    reps, pub = process(stack.redis_url, handle, [batch], sites=frozenset({"s1", "s2"}))
    assert (reps[0].applied, reps[0].dead) == (2, 1)
    (dl,) = [decode(DeadLetter, r.value) for r in pub.on(TOPICS.dead_letter)]
    assert dl.stage == "stream.site" and "RISKSTREAM_SITES" in dl.reason
    assert redis_client.exists("rs:st:s1:7:1", "rs:st:s2:7:1") == 2
    assert not redis_client.keys("rs:*intruder*")
    assert {
        (s.site, s.user_id)
        for s in (decode(RiskScore, r.value) for r in pub.on(TOPICS.risk_latest))
    } == {("s1", 1), ("s2", 1)}


def test_counts_persist_in_redis_and_add_up(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = tmp_handle(tmp_path)
    good = [record(event(i, 1, 0.2 * i), i) for i in range(1, 6)]
    bad = [record(b"{not json", 10), InRecord(TOPICS.events, 0, 11, b"k", None, None)]
    reps, _ = process(stack.redis_url, handle, [good + bad, good[:3], bad])
    c = {k.decode(): int(v) for k, v in redis_client.hgetall("rs:counts").items()}
    assert c == {"sent": 12, "applied": 5, "duplicate": 3, "dead_letter": 4}
    assert c["applied"] + c["duplicate"] + c["dead_letter"] == c["sent"] == accounted(reps)


def test_oversized_payload_dead_letter_fits_one_megabyte(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = tmp_handle(tmp_path)
    huge = _raw_event(eventname="x" * 5_000_000)
    _, pub = process(
        stack.redis_url, handle, [[InRecord(TOPICS.events, 0, 0, b"s1:1", huge, None)]]
    )
    (out,) = pub.on(TOPICS.dead_letter)
    assert len(out.value) < 1_000_000
    dl = decode(DeadLetter, out.value)
    assert dl.payload_truncated and dl.payload_bytes == len(huge)
    assert huge.startswith(dl.raw_bytes())


class FailingPublisher(ListPublisher):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc, self.calls = exc, 0

    async def publish(self, records: list[OutRecord]) -> None:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("exc", [MessageSizeTooLargeError(), TopicAuthorizationFailedError()])
def test_errors_that_cannot_succeed_are_fatal_not_retried(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path, exc: BaseException
) -> None:
    handle = tmp_handle(tmp_path)
    pub = FailingPublisher(exc)
    with pytest.raises(FatalError, match="retrying cannot fix"):
        process(stack.redis_url, handle, [[record(event(1, 1, 0.5))]], pub=pub)
    assert pub.calls == 1
    assert redis_client.keys("rs:st:*") == []  # nothing applied behind an unsent output

"""The batch logic against a real Redis with a tiny registry model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import redis
import torch

from contracts import TOPICS, CourseCalendar, DeadLetter, RiskScore, decode, encode
from riskstream.stack import Stack
from stream_app.processor import Processor
from stream_app.reload import find_explainer
from stream_app.state import connect, decode_state
from tests.stream_app.helpers import START, ListPublisher, event, handle_for, record


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _process(url: str, handle, pub, batches, **kw):  # type: ignore[no-untyped-def]
    r = connect(url)
    try:
        proc = Processor(r, pub, handle, **kw)
        reps = [await proc.process(b) for b in batches]
        reps[-1].metrics = proc.metrics  # type: ignore[attr-defined]
        return reps
    finally:
        await r.aclose()


def test_end_of_day_risk_equals_offline_forward(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path, hidden=16, seed=3)
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=60)
    redis_client.set("rs:cal:s1:7", encode(cal))
    rng = np.random.default_rng(0)
    evs = []
    eid = 0
    for user in (1, 2, 3):
        for day in sorted(rng.choice(np.arange(0, 20), size=8, replace=False)):
            for _ in range(int(rng.integers(1, 4))):
                eid += 1
                comp = ["mod_quiz", "mod_forum", "mod_page"][eid % 3]
                evs.append(event(eid, user, float(day) + rng.random() * 0.9, component=comp))
    evs.sort(key=lambda e: e.time)
    evs = [e.model_copy(update={"event_id": i + 1}) for i, e in enumerate(evs)]
    recs = [record(e, i) for i, e in enumerate(evs)]
    fz = handle.featurizer
    model = handle.loaded.model
    # pass 1: one batch per course day, so every published RiskScore is an end-of-day risk
    days = [fz.day_of(e.time, cal) for e in evs]
    by_day = [[r for r, d in zip(recs, days, strict=True) if d == day] for day in sorted(set(days))]
    pub1 = ListPublisher()
    run(_process(stack.redis_url, handle, pub1, by_day))
    end_of_day = {
        (s.user_id, s.day): s.risk
        for s in (decode(RiskScore, r.value) for r in pub1.on(TOPICS.risk_latest))
    }
    # pass 2 (fresh state): batches cut across days; final state is compared below
    redis_client.flushdb()
    redis_client.set("rs:cal:s1:7", encode(cal))
    batches = [recs[i : i + 7] for i in range(0, len(recs), 7)]
    pub = ListPublisher()
    run(_process(stack.redis_url, handle, pub, batches))

    checked = 0
    for user in (1, 2, 3):
        mine = [e for e in evs if e.user_id == user]
        last_day = max(fz.day_of(e.time, cal) for e in mine)
        accs = np.zeros((last_day + 1, fz.n_acc), dtype=np.float32)
        for e in mine:
            fz.fold(accs[fz.day_of(e.time, cal)], e)
        x = fz.day_vectors(accs, np.arange(last_day + 1), cal)
        static = fz.static_vector(None)[None, :]
        with torch.inference_mode():
            off = model(torch.from_numpy(x)[None], torch.from_numpy(static)).risk[0].numpy()
        for (u, day), risk in end_of_day.items():
            if u == user:
                assert abs(risk - off[day]) < 1e-5, (user, day, risk, off[day])
                checked += 1
        st = decode_state(redis_client.hgetall(f"rs:st:s1:7:{user}"), handle.n_day)
        # committed days 0..last_day-1 (float16 trajectory) and the open day (provisional)
        assert st.day == last_day
        assert len(st.traj) == last_day
        np.testing.assert_allclose(st.traj.astype(np.float32), off[:last_day], atol=1e-3)
        assert abs(st.risk - off[last_day]) < 1e-5
        # committed state == offline LSTM state after last_day days
        # (through the model's own step API, whatever inputs it derives from the day vectors)
        with torch.inference_mode():
            state = model.init_state(torch.from_numpy(static))
            for t in range(last_day):
                state, _ = model.step(state, torch.from_numpy(x[t])[None])
        np.testing.assert_allclose(st.model_state["h"], state["h"][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(st.win[-1], x[last_day - 1], atol=1e-6)
    assert checked == 24  # 3 users x 8 active days
    scores = [decode(RiskScore, r.value) for r in pub.on(TOPICS.risk_latest)]
    assert {s.user_id for s in scores} == {1, 2, 3}


def test_duplicates_are_noops_and_bad_messages_dead_letter(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path)
    evs = [event(i, 1, i * 0.4) for i in range(1, 6)]
    good = [record(e, i) for i, e in enumerate(evs)]
    bad = [record(b"{not json", 10), record(b'{"site": "s1"}', 11)]
    pub = ListPublisher()
    reps = run(_process(stack.redis_url, handle, pub, [good + bad, good[2:]]))
    assert reps[0].applied == 5 and reps[0].dead == 2
    assert reps[1].applied == 0 and reps[1].duplicates == 3
    reg = reps[-1].metrics.registry  # type: ignore[attr-defined]
    assert reg.get_sample_value("riskstream_events_total", {"outcome": "applied"}) == 5
    assert reg.get_sample_value("riskstream_events_total", {"outcome": "duplicate"}) == 3
    assert reg.get_sample_value("riskstream_dead_letters_total", {"stage": "stream.decode"}) == 2
    assert reg.get_sample_value("riskstream_batch_size_count") == 2
    dls = [decode(DeadLetter, r.value) for r in pub.on(TOPICS.dead_letter)]
    assert [d.stage for d in dls] == ["stream.decode", "stream.decode"]
    assert "event_id" in dls[1].reason and dls[1].source_offset == 11
    st = decode_state(redis_client.hgetall("rs:st:s1:7:1"), handle.n_day)
    assert st.last_id == 5
    # default calendar: midnight UTC of the first event, written back
    cal = decode(CourseCalendar, redis_client.get("rs:cal:s1:7"))
    assert cal.start == START


def test_alerts_respect_min_days_and_are_deterministic(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path, constant_risk=0.9)
    th = handle.loaded.thresholds
    evs = [event(d + 1, 5, d + 0.5) for d in range(th.min_days + 3)]
    recs = [record(e, i) for i, e in enumerate(evs)]
    pub = ListPublisher()
    # alerts are admitted once a day is over for everyone: the course-clock sweep
    kw = {"sweep_partitions": 1}
    run(_process(stack.redis_url, handle, pub, [recs], explainer=find_explainer(), **kw))
    alerts = pub.alerts()
    assert len(alerts) == 1
    a = alerts[0]
    # a constant-risk model: no feature group raises the risk, so no reason is invented
    assert a.contributions == [] and a.explanation == ""
    # decided on end-of-day risks: day min_days closes when the next day's event arrives
    assert a.level.value == "high" and a.day == th.min_days
    assert a.trigger_event_id == th.min_days + 1
    assert redis_client.xlen("rs:alerts") == 1
    assert redis_client.zscore("rs:rank:s1:7", "5") == pytest.approx(0.9, abs=1e-4)
    # replay from scratch in other batch sizes: same alert id
    redis_client.flushdb()
    pub2 = ListPublisher()
    run(_process(stack.redis_url, handle, pub2, [recs[:3], recs[3:5], recs[5:]], **kw))
    assert [x.alert_id for x in pub2.alerts()] == [a.alert_id]


def test_publish_failure_retries_and_state_written_after(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path)
    pub = ListPublisher()
    pub.fail_next = 2
    reps = run(_process(stack.redis_url, handle, pub, [[record(event(1, 1, 0.5))]]))
    assert reps[0].applied == 1 and len(pub.on(TOPICS.risk_latest)) == 1
    assert redis_client.hget("rs:st:s1:7:1", "last_id") == b"1"

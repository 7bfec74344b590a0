"""Cohort-relative act-on risk in the stream: the course-day sums equal the offline ones,
whatever the batching, and admission acts on the risk read against the cohort."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import redis
import torch

from contracts import CourseCalendar, encode, enrolment_event, keys
from models.calibration import DayBandCalibrator
from models.cohort import SCALE, course_day_means
from models.registry import Thresholds
from riskstream.stack import Stack
from stream_app.processor import Processor
from stream_app.reload import load_handle
from stream_app.state import connect
from tests.stream_app.helpers import START, ListPublisher, event, record

USERS = tuple(range(1, 7))
DAYS = 24


def _calibrated(root: Path, weight: float, ref: float, **kw: object):  # type: ignore[no-untyped-def]
    """A tiny model whose calibration is the identity per band, with a cohort reference."""
    from models.testing import tiny_model

    version = tiny_model(root, **kw)  # type: ignore[arg-type]
    cal = DayBandCalibrator(a=(1.0,) * 6, b=(0.0,) * 6, cohort_weight=weight, cohort_ref=(ref,) * 6)
    (root / version / "calibration.json").write_text(json.dumps(cal.to_dict()))
    return load_handle(root, "cpu")


def _events() -> list:  # type: ignore[type-arg]
    rng = np.random.default_rng(7)
    evs = [enrolment_event("s1", 7, u, START, event_id=u) for u in USERS]
    eid = len(USERS)
    body = []
    for u in USERS:
        size = int(rng.integers(3, 12))
        for day in sorted(rng.choice(np.arange(0, DAYS), size=size, replace=False)):
            comp = ["mod_quiz", "mod_forum", "mod_page"][int(rng.integers(0, 3))]
            body.append(event(0, u, float(day) + rng.random() * 0.9, component=comp))
    # one student clicks on the last day, so the course clock reaches it
    body.append(event(0, USERS[0], DAYS + 0.5))
    body.sort(key=lambda e: e.time)
    for e in body:
        eid += 1
        evs.append(e.model_copy(update={"event_id": eid}))
    return evs


def _run(url: str, handle, batches) -> ListPublisher:  # type: ignore[no-untyped-def]
    pub = ListPublisher()

    async def go() -> None:
        r = connect(url)
        try:
            proc = Processor(r, pub, handle, sweep_partitions=1)
            for b in batches:
                await proc.process(b)
        finally:
            await r.aclose()

    asyncio.run(go())
    return pub


def _book(redis_client: redis.Redis) -> dict[str, int]:
    raw = redis_client.hgetall(keys.caps_key("s1", 7, 0))
    return {k.decode(): int(v) for k, v in raw.items() if k.decode()[:2] in ("ls", "ln")}


def _setup(redis_client: redis.Redis) -> CourseCalendar:
    redis_client.flushdb()
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=60)
    redis_client.set(keys.calendar_key("s1", 7), encode(cal))
    return cal


def test_cohort_day_sums_equal_offline_and_ignore_batching(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = _calibrated(tmp_path, 0.5, 0.0, hidden=16, seed=3)
    assert handle.loaded.calibrator.cohort
    evs = _events()
    recs = [record(e, i) for i, e in enumerate(evs)]
    cal = _setup(redis_client)
    _run(stack.redis_url, handle, [recs[i : i + 5] for i in range(0, len(recs), 5)])
    small = _book(redis_client)
    cal = _setup(redis_client)
    _run(stack.redis_url, handle, [recs[i : i + 40] for i in range(0, len(recs), 40)])
    assert _book(redis_client) == small  # integer sums: exact, whatever the batching

    # offline: every student's end-of-day risks through the same forward pass
    fz, model = handle.featurizer, handle.loaded.model
    risks = []
    for u in USERS:
        accs = np.zeros((DAYS + 1, fz.n_acc), dtype=np.float32)
        for e in evs[len(USERS) :]:
            if e.user_id == u:
                fz.fold(accs[fz.day_of(e.time, cal)], e)
        x = fz.day_vectors(accs, np.arange(DAYS + 1), cal)
        with torch.inference_mode():
            static = torch.from_numpy(fz.static_vector(None)[None, :])
            risks.append(model(torch.from_numpy(x)[None], static).risk[0].numpy())
    means, counts = course_day_means(
        np.stack(risks), np.zeros(len(USERS), np.int64), np.full(len(USERS), 10_000)
    )
    mu = means[0]
    assert (counts[0] == len(USERS)).all()
    # days over for everyone (released): the sweep lags a day behind the clock
    released = int(redis_client.hget(keys.caps_key("s1", 7, 0), "rel") or -1)
    closed = list(range(released + 1))
    assert len(closed) >= DAYS - 2
    for d in closed:
        assert small[f"ln{d}"] == len(USERS)
        stream_mean = small[f"ls{d}"] / small[f"ln{d}"] / SCALE
        assert abs(stream_mean - mu[d]) < 1e-4, (d, stream_mean, mu[d])


CLASS = tuple(range(1, 61))


def _constant_course(redis_client: redis.Redis, url: str, handle) -> set[int]:  # type: ignore[no-untyped-def]
    _setup(redis_client)
    evs = [enrolment_event("s1", 7, u, START, event_id=u) for u in CLASS]
    evs += [event(100 + d, CLASS[0], d + 0.5) for d in range(20)]
    pub = _run(url, handle, [[record(e, i)] for i, e in enumerate(evs)])
    return {a.user_id for a in pub.alerts()}


def test_admission_acts_on_risk_relative_to_the_cohort(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Everyone's risk is 0.9 (logit 2.2). Read against a reference of 0 with weight 1 over
    60 students (shrunk to 60 / 90) the act-on risk is 0.67: below an act-on bar of 0.8, so
    nobody is alerted; against a reference equal to the cohort's own level it stays 0.9 and
    alerts go out."""
    th = Thresholds(medium=0.5, high=0.8, rearm=0.4, min_days=7, day_cap=1.0, week_cap=1.0)
    logit = float(np.log(0.9 / 0.1))
    low = _calibrated(tmp_path / "a", 1.0, 0.0, constant_risk=0.9, thresholds=th)
    assert _constant_course(redis_client, stack.redis_url, low) == set()
    same = _calibrated(tmp_path / "b", 1.0, logit, constant_risk=0.9, thresholds=th)
    assert set(CLASS) <= _constant_course(redis_client, stack.redis_url, same)

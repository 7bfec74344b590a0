"""Property: whatever valid-looking events arrive (extreme grades, counts, times, ids), the
batch logic never raises, accounts for every record, and everything it publishes is strict
JSON (no NaN/Infinity) valid against the published JSON Schema of its topic (issue 15)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import TOPICS
from riskstream.stack import Stack
from stream_app.records import InRecord
from tests.hostile.helpers import accounted, assert_published_valid, process, tmp_handle
from tests.stream_app.helpers import START

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e308)
tiny_or_huge = st.one_of(finite, st.sampled_from([5e-324, 1e-300, 1.0, 1e300, 1.7e308]))


@st.composite
def grades(draw: st.DrawFn) -> dict[str, Any]:
    if not draw(st.booleans()):
        return {}
    top = draw(tiny_or_huge.filter(lambda x: x > 0))
    return {"max_grade": top, "grade": draw(st.floats(min_value=0, max_value=top))}


events = st.builds(
    lambda site, user, course, days, comp, count, g, jump: {
        "site": site,
        "user_id": user,
        "course_id": course,
        "time": (START + timedelta(days=days)).isoformat(),
        "eventname": "\\mod_quiz\\event\\attempt_submitted",
        "component": comp,
        "action": "submitted",
        "count": count,
        "_jump": jump,
        **g,
    },
    st.sampled_from(["s1", "s2"]),
    st.integers(min_value=0, max_value=6),
    st.sampled_from([7, 8, 0]),
    st.one_of(
        st.floats(min_value=-30, max_value=120, allow_nan=False),
        st.floats(min_value=-9000, max_value=9000, allow_nan=False),
    ),
    st.sampled_from(["mod_quiz", "mod_assign", "mod_page", "core", "mod_unknown"]),
    st.integers(min_value=1, max_value=100_000),
    grades(),
    st.sampled_from([1, 1, 1, 0, -3, 10**9, 2**60]),
)


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tmp_handle(tmp_path_factory.mktemp("hostile-json"))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(events, min_size=1, max_size=40), cut=st.integers(min_value=1, max_value=40))
def test_everything_published_is_valid_json_against_the_schema(
    stack: Stack, handle: Any, tmp_path: Path, batch: list[dict[str, Any]], cut: int
) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    client.set(
        "rs:cal:s1:7",
        json.dumps({"site": "s1", "course_id": 7, "start": START.isoformat(), "length_days": 60}),
    )
    records = []
    eid = 100
    for i, d in enumerate(batch):
        eid = max(0, eid + d.pop("_jump"))
        d["event_id"] = eid
        key = f"{d['site']}:{d['user_id']}".encode()
        records.append(InRecord(TOPICS.events, 0, i, key, json.dumps(d).encode(), None))
    reps, pub = process(stack.redis_url, handle, [records[:cut], records[cut:]])
    assert accounted(reps) == len(records)
    assert assert_published_valid(pub) >= 1
    counts = {k.decode(): int(v) for k, v in client.hgetall("rs:counts").items()}
    assert counts.get("sent") == len(records)
    assert sum(counts.get(k, 0) for k in ("applied", "duplicate", "dead_letter")) == len(records)
    client.close()

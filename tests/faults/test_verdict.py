"""The fault-matrix verdict itself catches what it must: an event counted twice or a student
missing is flagged, while a replayed duplicate (deduped by the processor) is not. Without
this, a passing fault test could be a blind one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from contracts import encode, keys
from riskstream.stack import Stack
from tests.faults.harness import Replay, make_replay, reference, same_state

pytestmark = pytest.mark.slow


def test_verdict_flags_double_counting_and_loss_but_not_a_deduped_replay(
    stack: Stack, fault_registry: Path
) -> None:
    url = stack.redis_url.rsplit("/", 1)[0] + "/3"
    rep = make_replay(students=8, days=8, junk=4)
    ref = asyncio.run(reference(url, fault_registry, rep))
    assert ref.alert_ids and ref.dead_payloads == set(rep.junk)

    # A record delivered twice (at-least-once) is a no-op the second time: no difference.
    ev = rep.events[len(rep.events) // 2]
    again = Replay(rep.events, rep.junk, [*rep.records, (ev.key, encode(ev))])
    assert same_state(asyncio.run(reference(url, fault_registry, again)).state, ref.state) == []

    # A state that counted one event's clicks twice is flagged, on that student.
    key = keys.state_key(ev.site, ev.course_id, ev.user_id)
    bumped = {k: dict(v) for k, v in ref.state.items()}
    acc = np.frombuffer(bumped[key]["acc"], np.float32).copy()
    acc[int(np.argmax(acc))] += 1.0
    bumped[key]["acc"] = acc.tobytes()
    assert any(key in p for p in same_state(bumped, ref.state))

    # A student whose events were lost is flagged.
    assert same_state({k: v for k, v in ref.state.items() if k != key}, ref.state)

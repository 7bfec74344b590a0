"""FetchWaitTuner: the fetch wait stays short while fetches return data or nothing is
pending, and doubles (to a ceiling) when fetches keep returning nothing although the
partitions hold records past our position (Tansu's durable engine)."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka import TopicPartition

from stream_app.fetch_wait import FetchWaitTuner


def _consumer(highwater: int | None, position: int) -> SimpleNamespace:
    st = SimpleNamespace(highwater=highwater, position=position, has_valid_position=True)
    assignment = SimpleNamespace(state_value=lambda tp: st)
    subs = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
    return SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subs, _fetch_max_wait_ms=10))


TPS = [TopicPartition("t", 0)]


def test_wait_stays_short_when_caught_up_or_fetching() -> None:
    t = FetchWaitTuner(empty_while_behind=3)
    idle = _consumer(highwater=5, position=5)
    for _ in range(10):
        assert t.observe(idle, TPS, got_records=False) is None
    busy = _consumer(highwater=50, position=5)
    for _ in range(10):
        assert t.observe(busy, TPS, got_records=True) is None
    assert idle._fetcher._fetch_max_wait_ms == busy._fetcher._fetch_max_wait_ms == 10


def test_wait_doubles_when_empty_while_behind_up_to_the_ceiling() -> None:
    t = FetchWaitTuner(empty_while_behind=3, ceiling_ms=100)
    c = _consumer(highwater=50, position=5)
    raised = [t.observe(c, TPS, got_records=False) for _ in range(12)]
    assert [r for r in raised if r] == [20, 40, 80, 100]
    assert c._fetcher._fetch_max_wait_ms == 100
    # one fetch with data in between resets the count of empty fetches
    c2 = _consumer(highwater=50, position=5)
    t2 = FetchWaitTuner(empty_while_behind=3)
    for _ in range(5):
        t2.observe(c2, TPS, got_records=False)
        t2.observe(c2, TPS, got_records=True)
    assert c2._fetcher._fetch_max_wait_ms == 10


def test_fetch_size_grows_under_a_backlog_and_shrinks_back() -> None:
    from stream_app.faust_batch import next_fetch_size

    size, sizes = 1000, []
    for _ in range(5):  # full fetches: a backlog
        size = next_fetch_size(size, size, 1000, 8000)
        sizes.append(size)
    assert sizes == [2000, 4000, 8000, 8000, 8000]
    assert next_fetch_size(5000, 8000, 1000, 8000) == 8000  # still busy: keep
    for want in (4000, 2000, 1000, 1000):  # low load: back to the minimum
        size = next_fetch_size(30, size, 1000, 8000)
        assert size == want


def test_a_stale_fetch_is_dropped_and_its_partitions_rewound_to_the_next_unapplied() -> None:
    """A fetch that a rebalance made stale is not applied, and the consumer's position goes
    back to the next offset to apply for each partition still ours (else those records were
    skipped for good: a lost click after a worker joined or left)."""
    import asyncio
    import logging

    from faust.types import TP

    from stream_app.faust_batch import BatchConsumer

    ours, gone, done = TP("ev", 0), TP("ev", 1), TP("ev", 2)
    sought: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        sought.append((tp, offset))

    fake = SimpleNamespace(
        app=SimpleNamespace(consumer_generation_id=5),
        flow_active=True,
        should_stop=False,
        _read_offset={ours: 100, gone: 40, done: 60},
        _get_active_partitions=lambda: {ours, done},
        seek=seek,
        log=logging.getLogger("test"),
    )
    msgs = {
        ours: [SimpleNamespace(offset=o) for o in (100, 101, 102)],
        gone: [SimpleNamespace(offset=40)],  # given away: its next owner starts at the commit
        done: [SimpleNamespace(offset=58), SimpleNamespace(offset=59)],  # applied already
    }
    assert not BatchConsumer._stale(fake, 5, msgs)  # type: ignore[arg-type]
    assert BatchConsumer._stale(fake, 4, msgs)  # type: ignore[arg-type]  # generation moved
    assert not BatchConsumer._stale(fake, 4, {})  # type: ignore[arg-type]
    fake.flow_active = False
    assert BatchConsumer._stale(fake, 5, msgs)  # type: ignore[arg-type]  # mid-rebalance
    asyncio.run(BatchConsumer._rewind(fake, msgs))  # type: ignore[arg-type]
    assert sought == [(ours, 100)]

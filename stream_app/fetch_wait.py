"""The broker-side fetch wait: short for latency, longer when the broker needs it.

A fetch that finds no new data is answered after ``fetch_max_wait_ms``. Kafka answers as
soon as data arrives, but Tansu (the embedded broker) does not wake waiting fetches, so there
the wait is added to the latency of every event at low load: it starts short (10 ms). Tansu's
durable engine lists S3 objects on every fetch and returns nothing when the wait is shorter
than that, so when fetches keep coming back empty although the partitions hold records past
our position, the wait doubles (up to 1.5 s, Faust's own default) and stays there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition


class FetchWaitTuner:
    def __init__(self, empty_while_behind: int = 3, ceiling_ms: int = 1500) -> None:
        self.limit = empty_while_behind
        self.ceiling_ms = ceiling_ms
        self._empty = 0

    def observe(self, consumer: Any, tps: Iterable[Any], got_records: bool) -> int | None:
        """After each fetch of an aiokafka consumer (in the thread that owns it); returns the
        new wait in ms when it was raised."""
        if got_records or not behind(consumer, tps):
            self._empty = 0
            return None
        self._empty += 1
        fetcher = consumer._fetcher
        wait = int(fetcher._fetch_max_wait_ms)
        if self._empty < self.limit or wait >= self.ceiling_ms:
            return None
        self._empty = 0
        fetcher._fetch_max_wait_ms = min(max(wait * 2, 20), self.ceiling_ms)
        return int(fetcher._fetch_max_wait_ms)


def behind(consumer: Any, tps: Iterable[Any]) -> bool:
    """Does any partition have records past our fetch position (last fetched highwater)?"""
    sub = consumer._fetcher._subscriptions.subscription
    if sub is None:
        return False
    for tp in tps:
        st = sub.assignment.state_value(TopicPartition(tp.topic, tp.partition))
        if st is None or st.highwater is None or not st.has_valid_position:
            continue
        if st.highwater > st.position:
            return True
    return False

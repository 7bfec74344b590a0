"""The worker's production-monitoring hook: drift counts and withdrawal outcomes.

Called by ``Processor`` after a batch's state write. Drift counts are summed in memory and
written every ``flush_every_s`` seconds (one pipelined round trip; a crash loses at most
that long of counts, never counts a day twice); withdrawals are written with the batch.
Kept apart from the processor so the hot path changes by one call; see
``stream_app/drift.py`` and ``stream_app/outcomes.py`` for what is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from contracts import CourseCalendar, LmsEvent
from stream_app.drift import DriftCounter
from stream_app.outcomes import queue_outcomes, withdrawals


class StreamMonitor:
    def __init__(
        self,
        registry: Path,
        metrics_registry: CollectorRegistry | None = None,
        flush_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.drift = DriftCounter(registry)
        self.flush_every_s = flush_every_s
        self.clock = clock
        self._flushed = clock()
        r = metrics_registry or CollectorRegistry()
        self.days_counted = Counter(
            "riskstream_drift_days", "Committed day vectors counted for drift", registry=r
        )
        self.outcomes = Counter(
            "riskstream_outcomes", "Outcomes recorded by the worker", ["result"], registry=r
        )

    async def record(
        self,
        redis: Any,
        handle: Any,
        vectors: np.ndarray | None,
        days: list[int],
        courses: list[tuple[str, int]],
        events: list[LmsEvent],
        cals: dict[tuple[str, int], CourseCalendar],
    ) -> None:
        counted = 0
        if vectors is not None and len(vectors):
            counted = self.drift.add(handle.version, vectors, days, courses)
        self.days_counted.inc(counted)
        gone = withdrawals(events, cals, handle.featurizer)
        due = self.clock() - self._flushed >= self.flush_every_s and self.drift.pending
        if not gone and not due:
            return
        pipe = redis.pipeline(transaction=False)
        queue_outcomes(pipe, gone, final=False)
        if due:
            self.drift.flush(pipe)
            self._flushed = self.clock()
        await pipe.execute()
        if gone:
            self.outcomes.labels("withdrawn").inc(len(gone))

    async def flush(self, redis: Any) -> None:
        """Write the drift counts now (the runtime calls it when the worker stops)."""
        if self.drift.pending:
            pipe = redis.pipeline(transaction=False)
            self.drift.flush(pipe)
            await pipe.execute()
        self._flushed = self.clock()

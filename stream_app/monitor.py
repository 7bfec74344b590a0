"""The worker's production-monitoring hook: drift counts and withdrawal outcomes.

Called by ``Processor`` after a batch's state write (one pipelined round trip). Kept apart
from the processor so the hot path changes by one call; see ``stream_app/drift.py`` and
``stream_app/outcomes.py`` for what is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from contracts import CourseCalendar, LmsEvent
from stream_app.drift import DriftCounter
from stream_app.outcomes import queue_outcomes, withdrawals


class StreamMonitor:
    def __init__(self, registry: Path, metrics_registry: CollectorRegistry | None = None) -> None:
        self.drift = DriftCounter(registry)
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
        pipe = redis.pipeline(transaction=False)
        counted = 0
        if vectors is not None and len(vectors):
            counted = self.drift.queue(pipe, handle.version, vectors, days, courses)
        gone = withdrawals(events, cals, handle.featurizer)
        queue_outcomes(pipe, gone, final=False)
        if counted or gone:
            await pipe.execute()
        self.days_counted.inc(counted)
        if gone:
            self.outcomes.labels("withdrawn").inc(len(gone))

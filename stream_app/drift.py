"""Drift counts in the stream: every committed day vector, binned like the training data.

For the model version that scored it, each committed day vector adds 1 to
``rs:drift:{site}:{course}:{version}`` (hash) fields ``{week}:n`` and, per day feature,
``{week}:{feature index}:{bin}``; bins and training shares come from the version's
``drift_reference.json`` (``models.drift``). The API turns the counts into PSI.

The counts are written after the batch's state write: a crash between the two loses that
batch's days from the histogram (a sample of thousands), it never counts a day twice,
because a replay after the state write finds the days already committed.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from models.drift import DriftReference, bin_increments

log = structlog.get_logger("stream_app.drift")


def drift_key(site: str, course: int, version: str) -> str:
    return f"rs:drift:{site}:{course}:{version}"


class DriftCounter:
    """Per model version: its reference (read once from the registry) and the counting."""

    def __init__(self, registry: Path) -> None:
        self.registry = Path(registry)
        self._refs: dict[str, DriftReference | None] = {}

    def reference(self, version: str, n_day: int) -> DriftReference | None:
        if version not in self._refs:
            try:
                ref = DriftReference.load(self.registry / version)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("drift.reference_unreadable", version=version, error=str(exc))
                ref = None
            if ref is None:
                log.warning(
                    "drift.no_reference",
                    version=version,
                    hint="riskstream monitor reference --version " + version,
                )
            elif len(ref.features) != n_day:
                log.warning("drift.reference_mismatch", version=version)
                ref = None
            self._refs[version] = ref
        return self._refs[version]

    def queue(
        self,
        pipe: Any,
        version: str,
        vectors: np.ndarray,
        days: list[int],
        courses: list[tuple[str, int]],
    ) -> int:
        """Add HINCRBYs for one batch's committed day vectors; returns vectors counted."""
        if len(vectors) == 0:
            return 0
        ref = self.reference(version, vectors.shape[1])
        if ref is None:
            return 0
        groups: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, c in enumerate(courses):
            groups[c].append(i)
        day_arr = np.asarray(days, dtype=np.int64)
        for (site, course), idx in groups.items():
            key = drift_key(site, course, version)
            for field, n in bin_increments(ref, vectors[idx], day_arr[idx]).items():
                pipe.hincrby(key, field, n)
        return len(vectors)

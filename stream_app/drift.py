"""Drift counts in the stream: every committed day vector, binned like the training data.

For the model version that scored it, each committed day vector adds 1 to
``rs:drift:{site}:{course}:{version}`` (hash) fields ``{week}:n`` and, per day feature,
``{week}:{feature index}:{bin}``; bins and training shares come from the version's
``drift_reference.json`` (``models.drift``). The API turns the counts into PSI.

Counts are taken after the batch's state write and summed in memory until the monitor
flushes them (every few seconds, and when the worker stops): a crash loses at most the
unflushed counts (a sample of a sample), it never counts a day twice, because a replay
after the state write finds the days already committed. Same bins and field format as
``models.drift.bin_increments`` (tested equal).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from models.drift import DriftReference

log = structlog.get_logger("stream_app.drift")


def drift_key(site: str, course: int, version: str) -> str:
    return f"rs:drift:{site}:{course}:{version}"


class DriftCounter:
    """Per model version: its reference (read once from the registry); counts accumulate
    in memory (one ``bincount`` per course and batch) and go to Redis on ``flush``."""

    def __init__(self, registry: Path) -> None:
        self.registry = Path(registry)
        self._refs: dict[str, DriftReference | None] = {}
        # (site, course, version) -> week -> (day vectors, counts [n_features, max_bins])
        self._pending: dict[tuple[str, int, str], dict[int, list[Any]]] = {}

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

    def add(
        self,
        version: str,
        vectors: np.ndarray,
        days: list[int],
        courses: list[tuple[str, int]],
    ) -> int:
        """Count one batch's committed day vectors; returns how many were counted."""
        if len(vectors) == 0:
            return 0
        ref = self.reference(version, vectors.shape[1])
        if ref is None:
            return 0
        n_f, nb = len(ref.features), ref.max_bins
        bins = ref.bin_index(vectors)  # [M, n_f]
        weeks = np.asarray(days, dtype=np.int64) // 7
        groups: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, c in enumerate(courses):
            groups[c].append(i)
        cell = np.arange(n_f)[None, :] * nb + bins  # feature-major cell of each value
        for (site, course), idx in groups.items():
            w = weeks[idx]
            w0, w1 = int(w.min()), int(w.max())
            flat = (w - w0)[:, None] * (n_f * nb) + cell[idx]
            counts = np.bincount(flat.ravel(), minlength=(w1 - w0 + 1) * n_f * nb)
            counts = counts.reshape(w1 - w0 + 1, n_f, nb)
            per_week = np.bincount(w - w0, minlength=w1 - w0 + 1)
            pend = self._pending.setdefault((site, course, version), {})
            for k in np.flatnonzero(per_week):
                slot = pend.setdefault(w0 + int(k), [0, np.zeros((n_f, nb), np.int64)])
                slot[0] += int(per_week[k])
                slot[1] += counts[k]
        return len(vectors)

    @property
    def pending(self) -> int:
        return sum(len(w) for w in self._pending.values())

    def flush(self, pipe: Any) -> int:
        """Queue HINCRBYs for everything counted since the last flush; returns fields."""
        fields = 0
        for (site, course, version), weeks in self._pending.items():
            key = drift_key(site, course, version)
            for week, (n, counts) in weeks.items():
                pipe.hincrby(key, f"{week}:n", n)
                for f, b in zip(*np.nonzero(counts), strict=True):
                    pipe.hincrby(key, f"{week}:{int(f)}:{int(b)}", int(counts[f, b]))
                fields += 1 + int(np.count_nonzero(counts))
        self._pending.clear()
        return fields

"""What a registry version keeps about its training data for monitoring in production.

- ``drift_reference.json``: per day feature, bins and per-week shares of the training day
  vectors (``models.drift``), compared with the stream's counts;
- ``segments.json``: k-means segments of the training students' four-week activity
  profiles, described in words (``models.segments``), used per course on ``/ui``.

The trainer writes both with every version (``reference_files``); ``backfill`` computes them
for a version published without them (e.g. the shipped ``models/pretrained/lstm_oulad``),
from the presentations its ``data.json`` says it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.dataset import DayTensors
from models.drift import REFERENCE_FILE, build_reference
from models.features import FeatureSpec
from models.segments import SEGMENTS_FILE, fit_segments

SEGMENT_CUTOFFS: tuple[int, ...] = (28, 56, 84, 112, 140, 168, 196)


def reference_files(
    t: DayTensors, spec: FeatureSpec, seed: int = 0, cutoffs: Sequence[int] = SEGMENT_CUTOFFS
) -> dict[str, Any]:
    """The monitoring files of a version trained on ``t`` (file name -> JSON document)."""
    used = t.subset((t.last_day >= 0).nonzero()[0])
    out: dict[str, Any] = {
        REFERENCE_FILE: build_reference(used.x, used.last_day, spec.day_features).to_dict()
    }
    if "clicks_total" in spec.day_features and "active" in spec.day_features:
        seg = fit_segments(used.x, used.last_day, used.label, spec.day_features, cutoffs, seed=seed)
        out[SEGMENTS_FILE] = seg.to_dict()
    return out


def backfill(
    registry_root: Path,
    version: str,
    data_dir: Path,
    max_students: int | None = None,
    cache_dir: Path | None = None,
) -> list[str]:
    """Compute and attach the monitoring files of an existing version; returns their names."""
    from models.oulad import Oulad
    from models.registry import Registry
    from models.train import TrainConfig, load_tensors

    reg = Registry(registry_root)
    loaded = reg.load(version, device="cpu")
    train = (loaded.data_summary.get("train") or {}).get("presentations") or ["2013B", "2013J"]
    cfg = TrainConfig(spec=loaded.spec, cache_dir=cache_dir)
    t = load_tensors(Oulad(data_dir), cfg, tuple(train), max_students)
    docs = reference_files(t, loaded.spec)
    for name, doc in docs.items():
        reg.attach(loaded.version, name, {**doc, "backfilled_from": list(train)})
    return sorted(docs)

"""The model registry as the API sees it: versions, metrics, thresholds (read-only).

The API never loads torch weights: it reports what the registry says. The registry object
comes from ``models.registry.Registry``; anything with the same two methods will do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

DEFAULT_THRESHOLDS = {"medium": 0.5, "high": 0.75}


class ModelRegistry(Protocol):
    def versions(self) -> list[dict[str, Any]]: ...
    def current_version(self) -> str | None: ...


def open_registry(root: Path) -> ModelRegistry | None:
    """The models package's registry at ``root``, or None when models is not installed."""
    try:
        from models.registry import Registry
    except ImportError:
        return None
    reg: ModelRegistry = Registry(root)
    return reg


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    if hasattr(obj, "model_dump"):
        out: dict[str, Any] = obj.model_dump()
        return out
    return {}


class Catalog:
    """Normalises registry entries into {version, current, metrics, thresholds, details}."""

    def __init__(self, registry: ModelRegistry | None, ttl_s: float = 5.0) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._cached: tuple[float, list[dict[str, Any]]] | None = None

    def current(self) -> str | None:
        if self.registry is None:
            return None
        try:
            return self.registry.current_version()
        except (OSError, ValueError):
            return None

    def entries(self) -> list[dict[str, Any]]:
        """The registry's versions, re-read at most every ``ttl_s`` (it lives on disk and
        changes only when a model is published)."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl_s:
            return self._cached[1]
        out = self._read()
        self._cached = (now, out)
        return out

    def _read(self) -> list[dict[str, Any]]:
        if self.registry is None:
            return []
        try:
            raw = self.registry.versions()
        except (OSError, ValueError):
            return []
        cur = self.current()
        out = []
        for item in raw:
            d = dict(_as_dict(item))
            version = str(d.pop("version", ""))
            if not version:
                continue
            metrics = _as_dict(d.pop("metrics", {}))
            thresholds = _as_dict(d.pop("thresholds", {}))
            d.pop("current", None)
            out.append(
                {
                    "version": version,
                    "current": version == cur,
                    "metrics": metrics,
                    "thresholds": thresholds,
                    "details": {k: v for k, v in d.items() if _jsonable(v)},
                }
            )
        return out

    def current_entry(self) -> dict[str, Any] | None:
        return next((e for e in self.entries() if e["current"]), None)

    def thresholds(self) -> dict[str, float]:
        entry = self.current_entry()
        th = dict(DEFAULT_THRESHOLDS)
        if entry:
            for level in ("medium", "high"):
                v = entry["thresholds"].get(level)
                if isinstance(v, int | float):
                    th[level] = float(v)
        return th


def _jsonable(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | list | dict) or v is None

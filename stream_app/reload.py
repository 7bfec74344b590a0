"""Model hot reload: poll the registry's ``current`` pointer and swap models between batches.

Students whose state was made by the old version are re-warmed on their next event: the new
model steps through their rolling window of day vectors (at most W steps, so bounded cost).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog

from stream_app.inference import InferenceEngine
from stream_app.processor import Explainer, ModelHandle, Processor

log = structlog.get_logger("stream_app.reload")


def load_handle(registry_root: Path, device: str, version: str | None = None) -> ModelHandle:
    """Load ``version`` (default: current) from the registry onto ``device``."""
    from models.registry import Registry

    return ModelHandle.of(Registry(registry_root).load(version, device=device))


def current_version(registry_root: Path) -> str | None:
    from models.registry import Registry

    return Registry(registry_root).current_version()


def find_explainer() -> Explainer | None:
    """models.explain.explain when the models package provides it, else None (alerts then
    carry no contributions; the stream never invents its own explanation)."""
    try:
        from models.explain import explain_many, sentence
    except ImportError:
        return None

    def run(loaded: Any, windows: Any, statics: Any) -> list[tuple[list[Any], str]]:
        return [(cs, sentence(cs)) for cs in explain_many(loaded, windows, statics)]

    return run


class ModelWatcher:
    """Polls the registry every ``every`` seconds and swaps the processor's model."""

    def __init__(
        self, registry_root: Path, device: str, engine: InferenceEngine, every: float = 5.0
    ) -> None:
        self.root = Path(registry_root)
        self.device = device
        self.engine = engine
        self.every = every

    async def poll(self, processor: Processor) -> bool:
        """One check; True when a new version was loaded."""
        version = await self.engine.call(current_version, self.root)
        if version is None or version == processor.model.version:
            return False
        handle: ModelHandle = await self.engine.call(load_handle, self.root, self.device, version)
        processor.swap_model(handle)
        return True

    async def run(self, processor: Processor) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.poll(processor)
            except Exception as exc:  # a broken new version must not stop the worker
                log.error("model.reload_failed", error=str(exc))

"""Shared set-up of the hostile-input suite: a processor on the real Redis, strict JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema

from contracts import TOPICS
from contracts.schema import json_schemas
from stream_app.processor import BatchReport, Processor
from stream_app.records import InRecord
from stream_app.state import connect
from tests.stream_app.helpers import ListPublisher

SCHEMA_OF_TOPIC = {
    TOPICS.alerts: "risk_alert",
    TOPICS.risk_latest: "risk_score",
    TOPICS.dead_letter: "dead_letter",
}
_SCHEMAS = json_schemas()


def strict_json(raw: bytes) -> Any:
    """json.loads that refuses NaN/Infinity (which Python's json accepts by default)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(raw, parse_constant=refuse)


def assert_published_valid(pub: ListPublisher) -> int:
    """Every published record is strict JSON valid against its topic's published schema."""
    for rec in pub.records:
        obj = strict_json(rec.value)
        jsonschema.validate(obj, _SCHEMAS[SCHEMA_OF_TOPIC[rec.topic]])
    return len(pub.records)


def process(
    url: str,
    handle: Any,
    batches: list[list[InRecord]],
    pub: ListPublisher | None = None,
    **kw: Any,
) -> tuple[list[BatchReport], ListPublisher]:
    pub = pub or ListPublisher()

    async def go() -> list[BatchReport]:
        r = connect(url)
        try:
            proc = Processor(r, pub, handle, **kw)
            return [await proc.process(b) for b in batches]
        finally:
            await r.aclose()

    return asyncio.run(go()), pub


def accounted(reps: list[BatchReport]) -> int:
    return sum(r.applied + r.duplicates + r.dead for r in reps)


def tmp_handle(path: Path, **kw: Any) -> Any:
    from tests.stream_app.helpers import handle_for

    return handle_for(path, **kw)

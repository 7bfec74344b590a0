"""End to end without a broker: the stream's Processor (with models.explain) fills Redis,
the API reads it back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis
from fastapi.testclient import TestClient

from models.registry import Registry
from riskstream.api import ApiConfig, create_app
from riskstream.api.auth import hash_key
from riskstream.stack import Stack
from stream_app.processor import Processor
from stream_app.reload import find_explainer
from tests.riskstream.api.conftest import AUTH, KEY
from tests.stream_app.helpers import ListPublisher, event, handle_for, record


async def _process(url: str, handle, pub, batches) -> None:  # type: ignore[no-untyped-def]
    r = aredis.Redis.from_url(url)
    try:
        proc = Processor(r, pub, handle, explainer=find_explainer(), sweep_partitions=1)
        for b in batches:
            await proc.process(b)
    finally:
        await r.aclose()


def test_api_reads_what_the_stream_processor_wrote(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    handle = handle_for(tmp_path, constant_risk=0.9)
    days = handle.loaded.thresholds.min_days + 3
    evs = [event(d + 1, 5, d + 0.5) for d in range(days)] + [event(100, 6, 0.2)]
    evs.sort(key=lambda e: e.time)
    pub = ListPublisher()
    recs = [record(e, i) for i, e in enumerate(evs)]
    asyncio.run(_process(stack.redis_url, handle, pub, [recs[:4], recs[4:]]))
    (published,) = pub.alerts()
    # models.explain ran inside the worker: a constant model has no reason to give
    assert published.contributions == [] and published.explanation == ""

    cfg = ApiConfig(
        redis_url=stack.redis_url,
        site="s1",
        key_hashes=(hash_key(KEY),),
        registry=Registry(tmp_path),
    )
    with TestClient(create_app(cfg)) as client:
        deadline = time.monotonic() + 5
        body = client.get("/v1/courses/7/students/5/risk", headers=AUTH).json()
        while body["explanation"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            body = client.get("/v1/courses/7/students/5/risk", headers=AUTH).json()
        assert body["risk"] == pytest.approx(0.9, abs=1e-3)
        assert body["level"] == "high" and body["model_version"] == handle.version
        assert body["day"] == days - 1  # the open day
        assert len(body["trajectory"]) == days - 1  # one score per committed day
        assert body["trajectory"][-1] == pytest.approx(0.9, abs=1e-3)
        assert body["trajectory_start_day"] == 0
        assert body["explanation"]["alert_id"] == published.alert_id
        assert body["explanation"]["day"] == published.day
        assert body["explanation"]["text"] == published.explanation
        assert body["explanation"]["contributions"] == [
            c.model_dump(mode="json") for c in published.contributions
        ]

        ranked = client.get(
            "/v1/courses/7/at-risk", headers=AUTH, params={"min_level": "low"}
        ).json()
        assert {i["user"] for i in ranked["items"]} == {"5", "6"}  # constant model: a tie
        assert all(i["risk"] == pytest.approx(0.9, abs=1e-3) for i in ranked["items"])
        alerts = client.get("/v1/alerts", headers=AUTH, params={"course": 7}).json()["items"]
        assert [a["alert_id"] for a in alerts] == [published.alert_id]
        assert client.get("/v1/models/current", headers=AUTH).json()["version"] == handle.version

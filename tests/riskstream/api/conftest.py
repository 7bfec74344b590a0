"""Fixtures for the API: an app over the real Redis fixture, and a live uvicorn server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import redis
import redis.asyncio as aredis
import uvicorn
from fastapi.testclient import TestClient

from contracts import Contribution, RiskAlert, RiskLevel, alert_id, encode
from models.features import DEFAULT_SPEC
from models.registry import Registry, Thresholds, model_class
from riskstream.api import ApiConfig, create_app
from riskstream.api.auth import hash_key
from riskstream.stack import Stack, free_port
from stream_app.alerting import AlertState
from stream_app.state import BatchWrite, StudentKey, StudentState, encode_state, write_batch

SITE = "test.moodle"
KEY = "k-3f9a1c2e-api-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _publish(reg: Registry, medium: float, high: float, auc: float) -> str:
    spec = DEFAULT_SPEC
    model = model_class("lstm")(n_day=spec.n_day, n_static=spec.n_static, hidden=4)  # type: ignore[call-arg]
    return reg.publish(
        model,
        spec,
        Thresholds(medium=medium, high=high, rearm=medium - 0.1),
        metrics={"auc": auc},
        data_summary={"source": "api tests"},
    )


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A real models registry with two versions; v0002 (medium 0.4, high 0.7) is current."""
    reg = Registry(tmp_path_factory.mktemp("registry"))
    _publish(reg, 0.5, 0.8, 0.81)
    _publish(reg, 0.4, 0.7, 0.86)
    return reg


def _write(url: str, w: BatchWrite) -> None:
    async def go() -> None:
        r = aredis.Redis.from_url(url)
        try:
            await write_batch(r, w)
        finally:
            await r.aclose()

    # its own thread: callers may sit inside a running loop (playwright's sync API)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


def _url(r: redis.Redis) -> str:
    kw = r.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"


def put_student(
    r: redis.Redis,
    course: int,
    user: int,
    traj: list[float],
    level: str | None = None,
    version: str = "v0002",
    site: str = SITE,
    start_day: int = 0,
) -> None:
    """Writes a student through the stream worker's own state code (encode + batch write)."""
    risk = traj[-1]
    level = level or ("high" if risk >= 0.7 else "medium" if risk >= 0.4 else "low")
    key = StudentKey(site, course, user)
    st = StudentState(
        day=start_day + len(traj),
        d0=start_day,
        ver=version,
        risk=risk,
        level=level,
        upd=time.time(),
        alert=AlertState(armed=level == "low", last_day=None, level=None),
        traj=np.asarray(traj, dtype=np.float16),
    )
    _write(_url(r), BatchWrite(states={key: encode_state(st, full=True)}, ranks={key: risk}))


def make_alert(
    course: int,
    user: int,
    risk: float = 0.82,
    level: str = "high",
    day: int = 20,
    site: str = SITE,
    explanation: str = "no quiz activity for 14 days; fewer forum posts than peers",
) -> RiskAlert:
    now = datetime.now(UTC)
    return RiskAlert(
        alert_id=alert_id(site, course, user, "v0002", 1000 + user, level),
        site=site,
        user_id=user,
        course_id=course,
        risk=risk,
        level=RiskLevel(level),
        threshold=0.7,
        model_version="v0002",
        contributions=[
            Contribution(feature="quiz", weight=0.21, text="no quiz activity for 14 days"),
            Contribution(feature="forum", weight=0.08, text="fewer forum posts than peers"),
        ],
        explanation=explanation,
        day=day,
        trigger_event_id=1000 + user,
        event_time=now,
        created_at=now,
    )


def add_alert(r: redis.Redis, course: int, user: int, **kw: Any) -> str:
    """XADDs a RiskAlert the way the worker does; returns its stream id."""
    _write(_url(r), BatchWrite(alerts=[encode(make_alert(course, user, **kw))]))
    ((eid, _),) = r.xrevrange("rs:alerts", count=1)
    return eid.decode() if isinstance(eid, bytes) else str(eid)


@pytest.fixture
def cfg(stack: Stack, redis_client: redis.Redis, registry: Registry) -> ApiConfig:
    return ApiConfig(
        redis_url=stack.redis_url,
        site=SITE,
        key_hashes=(hash_key(KEY), hash_key("another-key")),
        registry=registry,
    )


@pytest.fixture
def client(cfg: ApiConfig) -> Iterator[TestClient]:
    with TestClient(create_app(cfg)) as c:
        yield c


@pytest.fixture
def pseudo_client(cfg: ApiConfig) -> Iterator[TestClient]:
    with TestClient(create_app(replace(cfg, pseudonym_key=b"campus-secret"))) as c:
        yield c


class LiveServer:
    def __init__(self, cfg: ApiConfig) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(cfg), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(cfg: ApiConfig) -> Iterator[LiveServer]:
    with LiveServer(cfg) as srv:
        yield srv

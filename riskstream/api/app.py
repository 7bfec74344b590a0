"""The FastAPI app: risk, at-risk ranking, alerts (paged and live), models, health, /ui."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

import orjson
import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import generate_latest
from pydantic import TypeAdapter, ValidationError

from contracts import TOPICS
from riskstream.api import schemas
from riskstream.api.auth import BearerGuard, KeyChecker
from riskstream.api.catalog import Catalog, ModelRegistry
from riskstream.api.fastpath import RiskFastPath
from riskstream.api.hub import AlertHub
from riskstream.api.metrics import ApiMetrics, MetricsMiddleware
from riskstream.api.monitoring import MonitorConfig, Monitoring
from riskstream.api.monitoring_routes import add_monitoring_routes
from riskstream.api.probe import LagProbe
from riskstream.api.pseudonym import Pseudonymiser
from riskstream.api.reader import StateReader, StudentState
from stream_app.state import connect as connect_redis

_log = structlog.get_logger("riskstream.api")
LEVELS = ("low", "medium", "high")
TREND_DAYS = 7
_STREAM_ID = re.compile(r"^\d{1,19}-\d{1,19}$")  # a Redis stream id (64-bit parts)
# at-risk cursor: the last row's score as an exact hex float, then its user id
RANK_CURSOR = r"^0x[01]\.[0-9a-f]{1,13}p[+-]\d{1,4}:\d{1,18}$"


@dataclass(frozen=True)
class ApiConfig:
    """Plain values from the settings (the CLI builds this; tests too)."""

    redis_url: str
    site: str
    key_hashes: tuple[str, ...]
    pseudonym_key: bytes | None = None
    registry: ModelRegistry | None = None
    kafka_bootstrap: str | None = None
    stream_group: str = "riskstream-worker"
    events_topic: str = TOPICS.events
    lag_period_s: float = 5.0
    fast_path: bool = True  # serve the risk route as plain ASGI (tests compare both ways)
    # drift / calibration alarm thresholds (riskstream/api/monitoring.py)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)


class FastJSON(Response):
    """orjson straight to bytes; response models still document the shape in OpenAPI."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _problem(status: int, loc: str, msg: str) -> HTTPException:
    """A 422 shaped like FastAPI's own, naming the field."""
    return HTTPException(
        status, detail=[{"loc": ["query", loc], "msg": msg, "type": "value_error"}]
    )


def _iso(epoch: float) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch > 0 else None


def trend_of(traj: list[float | None], days: int = TREND_DAYS) -> dict[str, Any]:
    """Change of risk over the last ``days`` course days that have a score."""
    idx = [i for i, v in enumerate(traj) if v is not None]
    if not idx:
        return {"days": 0, "change": None, "direction": "unknown", "recent": []}
    last = idx[-1]
    first = next(i for i in idx if i >= last - days)
    a, b = traj[first], traj[last]
    assert a is not None and b is not None
    change = round(b - a, 4)
    direction = "steady"  # moves under 5 points are noise, not a trend
    if last > first and change > 0.05:
        direction = "rising"
    elif last > first and change < -0.05:
        direction = "falling"
    return {
        "days": last - first,
        "change": change if last > first else None,
        "direction": direction,
        "recent": traj[max(0, last - 13) : last + 1],
    }


_DATETIME = TypeAdapter(datetime)


def _parse_time(raw: str) -> datetime:
    """An RFC 3339 date-time; a bare number is refused (the schema says date-time)."""
    try:
        if re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", raw):
            raise ValueError(raw)
        when = _DATETIME.validate_python(raw)
    except (ValueError, ValidationError):
        raise _problem(422, "since", "must be a date-time like 2026-03-01T12:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _rank_cursor(raw: str) -> tuple[float, int]:
    """(score, user) of the last row of the previous page (keyset paging)."""
    score_s, _, user_s = raw.partition(":")
    try:
        score = float.fromhex(score_s)
    except OverflowError:
        score = math.inf
    return score, int(user_s)


class Api:
    """Holds the app's collaborators; the route functions close over one instance."""

    def __init__(self, cfg: ApiConfig) -> None:
        self.cfg = cfg
        self.keys = KeyChecker(cfg.key_hashes, site=cfg.site)
        self.pseudo = Pseudonymiser(cfg.pseudonym_key)
        self.catalog = Catalog(cfg.registry)
        self.metrics = ApiMetrics()
        # the worker's client: hiredis packs commands in C (~30 us a request saved)
        self.redis: aioredis.Redis = connect_redis(cfg.redis_url)
        self.hub_redis: aioredis.Redis = aioredis.Redis.from_url(cfg.redis_url)
        self.reader = StateReader(self.redis, cfg.site)
        self.monitoring = Monitoring(
            self.redis, cfg.site, cfg.registry, cfg.monitor, self.metrics.registry
        )
        self.hub = AlertHub(self.hub_redis, site=cfg.site)
        self.probe = (
            LagProbe(cfg.kafka_bootstrap, cfg.events_topic, cfg.stream_group, cfg.lag_period_s)
            if cfg.kafka_bootstrap
            else None
        )

    async def refresh_monitoring(self) -> None:
        """Update the drift/calibration gauges; a Redis hiccup never breaks /metrics."""
        try:
            await self.monitoring.overview()
        except (aioredis.RedisError, OSError, ValueError) as exc:
            self.metrics.monitor_errors.inc()
            _log.warning("monitoring.refresh_failed", error=str(exc))

    # -- shaping -------------------------------------------------------------------
    def alert_out(self, entry_id: str, a: dict[str, Any]) -> dict[str, Any]:
        level = a.get("level")
        return {
            "id": entry_id,
            "alert_id": self.pseudo.opaque(str(a.get("alert_id", ""))),
            "site": str(a.get("site", self.cfg.site)),
            "course": int(a.get("course_id", -1)),
            "user": self.pseudo.out(int(a.get("user_id", -1))),
            "risk": float(a.get("risk", 0.0)),
            "level": level if level in LEVELS else "low",
            "threshold": float(a.get("threshold", 0.0)),
            "model_version": str(a.get("model_version", "")),
            "explanation": str(a.get("explanation", "")),
            "contributions": _contributions(a.get("contributions")),
            "day": int(a.get("day", 0)),
            "event_time": a.get("event_time"),
            "created_at": a.get("created_at"),
        }

    def risk_out(self, st: StudentState) -> dict[str, Any]:
        alert = self.hub.latest_for(self.cfg.site, st.course, st.user)
        explanation: dict[str, Any] | None = None
        source = alert or (st.alert_state if st.alert_state.get("explanation") else None)
        if source:
            explanation = {
                "text": str(source.get("explanation", "")),
                "contributions": _contributions(source.get("contributions")),
                "alert_id": self.pseudo.opaque(str(source.get("alert_id", ""))),
                "level": source.get("level"),
                "day": source.get("day"),
                "created_at": source.get("created_at"),
            }
        return {
            "course": st.course,
            "user": self.pseudo.out(st.user),
            "risk": None if math.isnan(st.risk) else round(st.risk, 4),
            "level": st.level if st.level in LEVELS else "low",
            "day": st.day,
            "model_version": st.version,
            "updated_at": _iso(st.updated),
            "trend": trend_of(st.trajectory),
            "trajectory": st.trajectory,
            "trajectory_start_day": st.trajectory_start,
            "explanation": explanation,
        }

    async def resolve_user(self, course: int, user: str) -> int:
        if user.isdigit() and len(user) <= 18:
            return int(user)
        if not self.pseudo.enabled:
            raise HTTPException(404, f"no student {user}: this API does not use pseudonyms")
        found = self.pseudo.resolve(user, await self.reader.course_members(course))
        if found is None:
            raise HTTPException(404, f"no student {user} in course {course}")
        return found


def _contributions(raw: Any) -> list[dict[str, Any]]:
    out = []
    for c in raw if isinstance(raw, list) else []:
        if isinstance(c, dict) and "feature" in c:
            out.append(
                {
                    "feature": str(c["feature"]),
                    "weight": float(c.get("weight", 0.0)),
                    "text": str(c.get("text", "")),
                }
            )
    return out


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.ErrorOut, "description": "Missing or invalid API key"},
    422: {"model": schemas.ErrorOut, "description": "A parameter is invalid (field named)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorOut, "description": "Unknown course or student"},
}

CourseId = Annotated[int, Path(ge=0, le=2**53, description="Moodle course id")]


def create_app(cfg: ApiConfig) -> FastAPI:
    """Build the app; Redis and the broker are contacted only once it starts."""
    api = Api(cfg)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        api.hub.start()
        if api.probe:
            api.probe.start()
        try:
            yield
        finally:
            await api.hub.stop()
            if api.probe:
                await api.probe.stop()
            await api.redis.aclose()
            await api.hub_redis.aclose()

    app = FastAPI(
        title="riskstream risk API",
        version="1.0",
        description=(
            "Live dropout/failure risk of Moodle students, read from the stream worker's state. "
            "Every /v1 route needs `Authorization: Bearer <key>`."
        ),
        lifespan=lifespan,
        # Swagger UI and ReDoc load from a CDN; the spec itself is served at /openapi.json
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = api
    if cfg.fast_path:
        app.add_middleware(RiskFastPath, api=api)  # innermost: behind the key check
    app.add_middleware(BearerGuard, checker=api.keys)  # every /v1/ path needs a key
    app.add_middleware(MetricsMiddleware, metrics=api.metrics)  # outermost: counts the 401s

    secured: dict[str, Any] = {"security": [{"bearer": []}]}

    @app.get(
        "/v1/courses/{course}/students/{user}/risk",
        response_model=schemas.RiskOut,
        responses={**AUTH_RESPONSES, **NOT_FOUND},
        openapi_extra=secured,
        tags=["risk"],
    )
    async def student_risk(
        course: CourseId,
        user: Annotated[
            str,
            Path(
                pattern=r"^(\d{1,18}|p[0-9a-f]{20})$",
                description="Moodle user id, or its pseudonym when pseudonyms are enabled",
            ),
        ],
    ) -> Response:
        """Current risk, level, recent trend, model version and the latest alert's explanation."""
        uid = await api.resolve_user(course, user)
        known, st = await api.reader.student(course, uid)
        if not known:
            raise HTTPException(404, f"unknown course {course}")
        if st is None:
            raise HTTPException(404, f"no student {user} in course {course}")
        return FastJSON(api.risk_out(st))

    @app.get(
        "/v1/courses/{course}/at-risk",
        response_model=schemas.AtRiskPage,
        responses={**AUTH_RESPONSES, **NOT_FOUND},
        openapi_extra=secured,
        tags=["risk"],
    )
    async def at_risk(
        course: CourseId,
        min_level: Annotated[schemas.Level, Query(description="Lowest level listed")] = "medium",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[
            str | None,
            Query(pattern=RANK_CURSOR, description="`next_cursor` of the previous page"),
        ] = None,
    ) -> Response:
        """The course's students ranked by risk, highest first, paged with a cursor."""
        if not await api.reader.course_known(course):
            raise HTTPException(404, f"unknown course {course}")
        th = api.catalog.thresholds()
        min_risk = 0.0 if min_level == "low" else th[min_level]
        after = _rank_cursor(cursor) if cursor else None
        rows = await api.reader.ranking(course, min_risk, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        levels = await api.reader.levels(course, [r.user for r in rows]) if rows else []
        items = [
            {
                "user": api.pseudo.out(r.user),
                "risk": round(r.risk, 4),
                "level": lv if lv in LEVELS else None,
                "updated_at": _iso(upd),
            }
            for r, (lv, upd) in zip(rows, levels, strict=True)
        ]
        nxt = f"{rows[-1].risk.hex()}:{rows[-1].user}" if more else None
        return FastJSON(
            {
                "course": course,
                "min_level": min_level,
                "min_risk": min_risk,
                "items": items,
                "next_cursor": nxt,
            }
        )

    @app.get(
        "/v1/courses",
        response_model=schemas.CoursesOut,
        responses={401: AUTH_RESPONSES[401]},
        openapi_extra=secured,
        tags=["risk"],
    )
    async def courses() -> Response:
        """Courses the worker has seen, with how many students it scores in each."""
        ids = await api.reader.courses()
        counts = await api.reader.course_sizes(ids)
        return FastJSON(
            {
                "site": cfg.site,
                "courses": [
                    {"course": c, "students": int(n)} for c, n in zip(ids, counts, strict=True)
                ],
            }
        )

    @app.get(
        "/v1/courses/{course}/distribution",
        response_model=schemas.DistributionOut,
        responses={**AUTH_RESPONSES, **NOT_FOUND},
        openapi_extra=secured,
        tags=["risk"],
    )
    async def distribution(
        course: CourseId, bins: Annotated[int, Query(ge=2, le=50)] = 20
    ) -> Response:
        """How the course's students spread over risk (a histogram)."""
        if not await api.reader.course_known(course):
            raise HTTPException(404, f"unknown course {course}")
        counts = await api.reader.distribution(course, bins)
        return FastJSON(
            {
                "course": course,
                "edges": [round(i / bins, 4) for i in range(bins + 1)],
                "counts": counts,
                "thresholds": api.catalog.thresholds(),
            }
        )

    @app.get(
        "/v1/alerts",
        response_model=schemas.AlertPage,
        responses=AUTH_RESPONSES,
        openapi_extra=secured,
        tags=["alerts"],
    )
    async def alerts(
        course: Annotated[int | None, Query(ge=0, le=2**53)] = None,
        since: Annotated[
            str | None,
            Query(
                description="Only alerts raised at or after this time (RFC 3339)",
                json_schema_extra={"format": "date-time"},
                max_length=64,
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[
            str | None,
            Query(pattern=_STREAM_ID.pattern, description="`next_cursor` of the previous page"),
        ] = None,
    ) -> Response:
        """Recent alerts, newest first, from the ``rs:alerts`` stream (last ~10,000)."""
        newest = "+"
        if cursor:
            if cursor.replace("0", "") == "-":  # nothing is older than 0-0
                return FastJSON({"items": [], "next_cursor": None})
            newest = "(" + cursor
        oldest = "-"
        if since is not None:
            when = _parse_time(since)
            ms = int(when.timestamp() * 1000)
            oldest = f"{ms}-0" if ms > 0 else "-"
        items: list[dict[str, Any]] = []
        scanned, nxt = 0, None
        while True:
            rows = await api.reader.alert_entries(newest, oldest, 500)
            for eid, a in rows:
                scanned += 1
                newest = "(" + eid
                if (
                    a is not None
                    and a.get("site") == cfg.site  # rs:alerts holds every site's alerts
                    and (course is None or a.get("course_id") == course)
                ):
                    items.append(api.alert_out(eid, a))
                if len(items) > limit:
                    break
            if len(items) > limit:
                items = items[:limit]
                nxt = items[-1]["id"]
                break
            if len(rows) < 500:
                break
            if scanned >= 10_000:  # bounded work per request; the client may go on
                nxt = newest[1:]
                break
        return FastJSON({"items": items, "next_cursor": nxt})

    @app.get(
        "/v1/alerts/live",
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "SSE: event `alert`"},
            **AUTH_RESPONSES,
        },
        response_class=StreamingResponse,
        openapi_extra=secured,
        tags=["alerts"],
    )
    async def alerts_live(
        request: Request,
        course: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    ) -> StreamingResponse:
        """Alerts as they arrive (server-sent events); resumes after ``Last-Event-ID``."""
        last = request.headers.get("last-event-id")
        sub = api.hub.subscribe(course)
        api.metrics.live_clients.inc()

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n: connected\n\n"
                if last and _STREAM_ID.match(last):
                    for eid, a in await api.reader.alerts_after(last, 1000):
                        if (
                            a
                            and a.get("site") == cfg.site
                            and (course is None or a.get("course_id") == course)
                        ):
                            yield _sse(api.alert_out(eid, a))
                while True:
                    try:
                        live_id, alert = await asyncio.wait_for(sub.queue.get(), 15.0)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keep-alive\n\n"
                        continue
                    yield _sse(api.alert_out(live_id, alert))
            finally:
                api.hub.unsubscribe(sub)
                api.metrics.live_clients.dec()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/v1/models",
        response_model=schemas.ModelsOut,
        responses={401: AUTH_RESPONSES[401]},
        openapi_extra=secured,
        tags=["models"],
    )
    async def models() -> Response:
        """Every registered model version with its evaluation metrics and thresholds."""
        entries = await asyncio.to_thread(api.catalog.entries)
        return FastJSON({"current": api.catalog.current(), "versions": entries})

    @app.get(
        "/v1/models/current",
        response_model=schemas.ModelOut,
        responses={401: AUTH_RESPONSES[401], **NOT_FOUND},
        openapi_extra=secured,
        tags=["models"],
    )
    async def model_current() -> Response:
        """The version the worker scores with."""
        entry = await asyncio.to_thread(api.catalog.current_entry)
        if entry is None:
            raise HTTPException(404, "no current model in the registry: publish one and set it")
        return FastJSON(entry)

    @app.get(
        "/v1/stats",
        response_model=schemas.StatsOut,
        responses={401: AUTH_RESPONSES[401]},
        openapi_extra=secured,
        tags=["operations"],
    )
    async def stats() -> Response:
        """Throughput and lag of the stream worker, and the live alert rate (for /ui)."""
        lat = api.probe.latest() if api.probe else None
        api.metrics.alerts_seen.set(api.hub.seen)
        if lat is not None:
            api.metrics.lag.set(lat.lag)
        return FastJSON(
            {
                "throughput_eps": api.probe.throughput() if api.probe else None,
                "lag": lat.lag if lat else None,
                "lag_error": api.probe.error if api.probe else "no broker configured",
                "alerts_per_min": api.hub.rate_per_min(),
                "alerts_seen": api.hub.seen,
                "live_clients": len(api.hub.subscribers),
                "at": datetime.now(UTC).isoformat(),
            }
        )

    @app.get(
        "/healthz",
        response_model=schemas.HealthOut,
        responses={503: {"model": schemas.HealthOut, "description": "Redis is unreachable"}},
        tags=["operations"],
    )
    async def healthz() -> Response:
        """Redis (required), broker and model (reported). No key needed; no student data."""
        redis_ok = await api.reader.ping()
        broker: bool | None = None
        if cfg.kafka_bootstrap:
            from riskstream.stack import kafka_answers

            host, _, port = cfg.kafka_bootstrap.split(",")[0].rpartition(":")
            broker = await asyncio.to_thread(kafka_answers, host or "127.0.0.1", int(port), 0.5)
        version = await asyncio.to_thread(api.catalog.current)
        ok = redis_ok and broker is not False and version is not None
        body = {
            "status": "ok" if ok else "degraded",
            "redis": redis_ok,
            "broker": broker,
            "model_loaded": version is not None,
            "model_version": version,
            "site": cfg.site,
        }
        return FastJSON(body, status_code=200 if redis_ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    async def metrics() -> Response:
        """Prometheus text format. No key needed; no student data."""
        api.metrics.alerts_seen.set(api.hub.seen)
        await api.refresh_monitoring()  # drift / calibration gauges (cached ttl_s)
        return Response(
            generate_latest(api.metrics.registry), media_type="text/plain; version=0.0.4"
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            doc.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key issued by the operator",
                }
            }
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    add_monitoring_routes(app, api)

    ui_html = resources.files("riskstream.api").joinpath("static/ui.html").read_text("utf-8")

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    async def ui() -> HTMLResponse:
        return HTMLResponse(ui_html)

    return app


def _sse(obj: dict[str, Any]) -> bytes:
    return b"id: " + obj["id"].encode() + b"\nevent: alert\ndata: " + orjson.dumps(obj) + b"\n\n"

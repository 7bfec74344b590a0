"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "riskstream_api_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "riskstream_api_request_seconds",
            "Time to the response headers, by route",
            ["route"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.live_clients = Gauge(
            "riskstream_api_live_clients", "Open SSE alert streams", registry=self.registry
        )
        self.alerts_seen = Gauge(
            "riskstream_api_alerts_seen", "Alerts read live from rs:alerts", registry=self.registry
        )
        self.monitor_errors = Counter(
            "riskstream_api_monitor_errors",
            "Drift/calibration refreshes that failed (Redis or registry unreadable)",
            registry=self.registry,
        )
        self.lag = Gauge(
            "riskstream_stream_lag_events",
            "Events not yet committed by the worker",
            registry=self.registry,
        )


class MetricsMiddleware:
    """Plain ASGI (no BaseHTTPMiddleware): the risk endpoint's budget is a few hundred µs."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.m = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                self.m.latency.labels(_route(scope)).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.m.requests.labels(scope.get("method", ""), _route(scope), str(status[0])).inc()


def _route(scope: Scope) -> str:
    if "route_label" in scope:
        return str(scope["route_label"])
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"

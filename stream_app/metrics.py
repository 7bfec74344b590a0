"""Prometheus metrics of one worker (own registry, so tests and benches can make many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events = Counter(
            "riskstream_events", "Events consumed, by outcome", ["outcome"], registry=r
        )
        self.batch_size = Histogram(
            "riskstream_batch_size",
            "Events per micro-batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.inference_seconds = Histogram(
            "riskstream_inference_seconds", "Model time per batch", registry=r
        )
        self.batch_seconds = Histogram(
            "riskstream_batch_seconds",
            "Wall time per batch (read, model, publish, write)",
            registry=r,
        )
        self.event_to_output = Histogram(
            "riskstream_event_to_output_seconds",
            "Event produce time -> its risk/alert acknowledged by the broker",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_to_alert = Histogram(
            "riskstream_event_to_alert_seconds",
            "Triggering event produce time -> alert acknowledged by the broker",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.alerts = Counter("riskstream_alerts", "Alerts raised", ["level"], registry=r)
        self.dead_letters = Counter(
            "riskstream_dead_letters", "Messages dead-lettered", ["stage"], registry=r
        )
        self.lag = Gauge(
            "riskstream_consumer_lag",
            "Fetch high watermark minus next offset to process",
            ["partition"],
            registry=r,
        )
        self.redis_retries = Counter(
            "riskstream_redis_retries", "Redis round trips retried after an error", registry=r
        )
        self.model_version = Gauge(
            "riskstream_model_loaded", "1 for the model version in use", ["version"], registry=r
        )
        self.swept = Counter(
            "riskstream_swept_students", "Idle students advanced by the course clock", registry=r
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> tuple[str, int] | None:
        """Expose /metrics on ``host:port`` (0 = do not serve); loopback unless configured.
        Returns the bound address."""
        if not port:
            return None
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        bound = server.server_address
        return str(bound[0]), int(bound[1])

"""Before a command talks to the stack: is Kafka / Redis there? One clear line if not."""

from __future__ import annotations

from urllib.parse import urlparse

from riskstream.stack import kafka_answers, redis_answers


def host_port(addr: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or a bare host) -> (host, port)."""
    host, _, port = addr.strip().rpartition(":")
    if not host or not port.isdigit():
        return addr.strip().strip("[]"), default_port
    return host.strip("[]"), int(port)


def unreachable(kafka: str | None = None, redis_url: str | None = None) -> str | None:
    """None when every named service answers, else one line naming the address and what to
    run. ``kafka``: a bootstrap list (any one broker answering is enough)."""
    if kafka is not None:
        brokers = [b for b in kafka.split(",") if b.strip()]
        if not any(kafka_answers(*host_port(b, 9092)) for b in brokers):
            return (
                f"Kafka at {kafka} is not answering; start the stack (riskstream stack up) "
                "or set RISKSTREAM_KAFKA_BOOTSTRAP"
            )
    if redis_url is not None:
        r = urlparse(redis_url)
        if not redis_answers(r.hostname or "127.0.0.1", r.port or 6379):
            return (
                f"Redis at {r.hostname or '127.0.0.1'}:{r.port or 6379} is not answering; "
                "start the stack (riskstream stack up) or set RISKSTREAM_REDIS_URL"
            )
    return None

"""Operations commands for deployments: ``riskstream topics`` and ``riskstream ping``.

The compose file's one-shot topic init and every container's health check use these, so a
deployment creates exactly the topics named in ``contracts/topics.py``.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import typer
from rich.console import Console

from contracts import TOPICS
from riskstream.stack import kafka_answers, redis_answers

console = Console()


def _host_port(addr: str, default_port: int) -> tuple[str, int]:
    host, _, port = addr.strip().rpartition(":")
    if not host:
        return addr.strip(), default_port
    return host.strip("[]"), int(port)


def topics_command(
    partitions: int = typer.Option(
        12, min=1, help="Partitions per topic: the most workers that can share the load"
    ),
    retries: int = typer.Option(30, min=1, help="Attempts while the broker starts"),
) -> None:
    """Create the riskstream topics that do not exist yet (idempotent)."""
    from riskstream.cli import _fail, _settings
    from riskstream.kafka_admin import ensure_topics

    s = _settings()
    last: Exception | None = None
    for attempt in range(retries):
        try:
            created = asyncio.run(ensure_topics(s.kafka_bootstrap, TOPICS.all(), partitions))
        except Exception as exc:  # broker still starting: back off and retry
            last = exc
            asyncio.run(asyncio.sleep(min(2.0, 0.2 * (attempt + 1))))
            continue
        console.print(
            f"topics at {s.kafka_bootstrap}: created {created or 'none'}, "
            f"{len(TOPICS.all()) - len(created)} already there"
        )
        return
    raise _fail(
        f"cannot create topics at {s.kafka_bootstrap}: {last}; check RISKSTREAM_KAFKA_BOOTSTRAP"
    )


def ping_command() -> None:
    """Exit 0 when the configured Kafka and Redis both answer (container health checks)."""
    from riskstream.cli import _settings

    s = _settings()
    first = s.kafka_bootstrap.split(",")[0]
    k_host, k_port = _host_port(first, 9092)
    r = urlparse(s.redis_url)
    kafka_ok = kafka_answers(k_host, k_port)
    redis_ok = redis_answers(r.hostname or "127.0.0.1", r.port or 6379)
    console.print(
        f"kafka {first}: {'ok' if kafka_ok else 'NOT answering'}; "
        f"redis {r.hostname}:{r.port or 6379}: {'ok' if redis_ok else 'NOT answering'}"
    )
    if not (kafka_ok and redis_ok):
        raise typer.Exit(1)

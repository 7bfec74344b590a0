"""Operations commands for deployments: ``riskstream topics`` and ``riskstream ping``.

The compose file's one-shot topic init and every container's health check use these, so a
deployment creates exactly the topics named in ``contracts/topics.py``.
"""

from __future__ import annotations

import asyncio
import time

import structlog
import typer
from rich.console import Console

from contracts import TOPICS
from riskstream.reachable import (
    err_console,
    fail,
    kafka_down,
    kafka_up,
    redis_address,
    redis_up,
)

console = Console()
log = structlog.get_logger(__name__)


def topics_command(
    partitions: int = typer.Option(
        12, min=1, help="Partitions per topic: the most workers that can share the load"
    ),
    retries: int = typer.Option(30, min=1, help="Attempts while the broker starts"),
    wait: float = typer.Option(
        10.0, min=0, help="Seconds to wait for the broker to answer at all before giving up"
    ),
) -> None:
    """Create the riskstream topics that do not exist yet (idempotent)."""
    from riskstream.cli import _settings
    from riskstream.kafka_admin import ensure_topics

    s = _settings()
    deadline = time.monotonic() + wait
    while not kafka_up(s.kafka_bootstrap):  # a silent probe: no client, no error log per try
        if time.monotonic() >= deadline:
            raise fail(f"{kafka_down(s.kafka_bootstrap)} (waited {wait:g} s)")
        time.sleep(0.5)
    last: Exception | None = None
    for attempt in range(retries):
        try:
            created = asyncio.run(ensure_topics(s.kafka_bootstrap, TOPICS.all(), partitions))
        except Exception as exc:  # broker answers but is still starting: back off and retry
            last = exc
            delay = min(2.0, 0.2 * (attempt + 1))
            log.warning(
                "topics.retry",
                attempt=attempt + 1,
                error=f"{type(exc).__name__}: {exc}",
                retry_in_s=delay,
            )
            time.sleep(delay)
            continue
        console.print(
            f"topics at {s.kafka_bootstrap}: created {created or 'none'}, "
            f"{len(TOPICS.all()) - len(created)} already there"
        )
        return
    raise fail(
        f"cannot create topics at {s.kafka_bootstrap} after {retries} attempts "
        f"({type(last).__name__}: {last}); check the broker's log and RISKSTREAM_KAFKA_BOOTSTRAP"
    )


def ping_command() -> None:
    """Exit 0 when the configured Kafka and Redis both answer (container health checks)."""
    from riskstream.cli import _settings

    s = _settings()
    kafka_ok = kafka_up(s.kafka_bootstrap)
    redis_ok = redis_up(s.redis_url)
    line = (
        f"kafka {s.kafka_bootstrap}: {'ok' if kafka_ok else 'NOT answering'}; "
        f"redis {redis_address(s.redis_url)}: {'ok' if redis_ok else 'NOT answering'}"
    )
    if kafka_ok and redis_ok:
        console.print(line, soft_wrap=True)
        return
    need = " and ".join(
        v
        for v, ok in (("RISKSTREAM_KAFKA_BOOTSTRAP", kafka_ok), ("RISKSTREAM_REDIS_URL", redis_ok))
        if not ok
    )
    err_console.print(
        f"[bold red]error:[/] {line}; start the stack (riskstream stack up) or set {need}"
    )
    raise typer.Exit(1)

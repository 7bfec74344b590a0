"""``riskstream api``: serve the risk API and /ui with uvicorn; ``api hash-key`` for keys."""

from __future__ import annotations

import importlib.util
import sys

import typer
from rich.console import Console

from riskstream.reachable import fail, require
from riskstream.settings import Settings, load_settings

api_app = typer.Typer(help="The risk API (FastAPI) and the operator page /ui.")
console = Console(stderr=True)


def config_from(s: Settings):  # type: ignore[no-untyped-def]
    """Plain values for the app; the registry is opened here, not inside the API."""
    from riskstream.api import ApiConfig
    from riskstream.api.auth import parse_key_hashes
    from riskstream.api.catalog import open_registry
    from riskstream.api.monitoring import MonitorConfig

    pkey = s.api_pseudonym_key.get_secret_value()
    return ApiConfig(
        redis_url=s.redis_url,
        site=s.site_id,
        key_hashes=parse_key_hashes(s.api_key_hashes),
        pseudonym_key=pkey.encode() if pkey else None,
        registry=open_registry(s.model_registry),
        kafka_bootstrap=s.kafka_bootstrap or None,
        stream_group=s.stream_group,
        monitor=MonitorConfig(s.monitor_psi_alarm, s.monitor_ece_alarm, s.monitor_min_outcomes),
    )


def app_from_env():  # type: ignore[no-untyped-def]
    """uvicorn factory (``--workers`` > 1 needs an import string)."""
    from riskstream.api import create_app
    from riskstream.logs import configure_logging

    s = load_settings()
    configure_logging(s.log_level, s.log_json)
    return create_app(config_from(s))


@api_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Bind address (default RISKSTREAM_API_HOST)"),
    port: int = typer.Option(None, help="Port (default RISKSTREAM_API_PORT)"),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
) -> None:
    """Serve the API (OpenAPI document at /openapi.json, operator page at /ui)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    s = load_settings()
    try:
        cfg = config_from(s)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    # Every route reads Redis: refuse to start without it, like the worker (the broker is
    # optional, for the lag probe; a Redis lost later shows as "degraded" on /healthz).
    require(redis_url=s.redis_url)
    if not cfg.key_hashes:
        console.print(
            "[yellow]warning:[/] no API keys configured, every /v1 request will get 401; "
            "set RISKSTREAM_API_KEY_HASHES (see: riskstream api hash-key)"
        )
    fast = importlib.util.find_spec("httptools") is not None
    uvicorn.run(
        "riskstream.cli_api:app_from_env",
        factory=True,
        host=host or s.api_host,
        port=port or s.api_port,
        workers=workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if fast else "h11",
        access_log=False,
        log_level=s.log_level.lower(),
    )


@api_app.command("hash-key")
def hash_key_cmd(
    site: str = typer.Option(
        "", "--site", help="Scope the key to one site (printed as SITE=digest); default: all"
    ),
) -> None:
    """Read an API key on stdin, print the sha256 digest for RISKSTREAM_API_KEY_HASHES."""
    from riskstream.api.auth import hash_key

    key = sys.stdin.readline().strip()
    if not key:
        raise fail("give the key on stdin, e.g. echo KEY | riskstream api hash-key", 2)
    typer.echo(f"{site}={hash_key(key)}" if site else hash_key(key))

"""Clear errors for every command: one line on stderr naming the address and what to run.

Commands check what they need before they start (``require``: a TCP/protocol probe of one
second, no client retries), and ``GuardedGroup`` turns a connection error that still escapes
a command (a service going away mid-run) into the same one line and exit code 1, never a
traceback. Addresses are printed as ``host:port``: a password in a Redis URL never shows.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import typer
from rich.console import Console
from typer.core import TyperGroup

from riskstream.stack import kafka_answers

err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def host_port(addr: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or a bare host) -> (host, port)."""
    host, _, port = addr.strip().rpartition(":")
    if not host or not port.isdigit():
        return addr.strip().strip("[]"), default_port
    return host.strip("[]"), int(port)


def redis_address(redis_url: str) -> str:
    """``host:port`` of a Redis URL, without user or password."""
    try:
        r = urlparse(redis_url)
        return f"{r.hostname or '127.0.0.1'}:{r.port or 6379}"
    except ValueError:  # a malformed port: say so without echoing the URL's secrets
        return "an unparsable RISKSTREAM_REDIS_URL"


def moodle_address(url: str) -> str:
    """The Moodle base URL without user info, query or fragment (no token can show)."""
    try:
        u = urlparse(url)
        host = u.hostname or ""
        port = f":{u.port}" if u.port else ""
    except ValueError:
        return "the RISKSTREAM_MOODLE_URL"
    return f"{u.scheme}://{host}{port}{u.path.rstrip('/')}" if u.scheme else url.split("?")[0]


def kafka_down(bootstrap: str) -> str:
    return (
        f"Kafka at {bootstrap} is not answering; start the stack (riskstream stack up) "
        "or set RISKSTREAM_KAFKA_BOOTSTRAP"
    )


def redis_down(redis_url: str) -> str:
    return (
        f"Redis at {redis_address(redis_url)} is not answering; start the stack "
        "(riskstream stack up) or set RISKSTREAM_REDIS_URL"
    )


def moodle_down(moodle_url: str) -> str:
    return (
        f"Moodle at {moodle_address(moodle_url)} is not answering; check the site is up and "
        "reachable from this host (riskstream connector check) or set RISKSTREAM_MOODLE_URL"
    )


def kafka_up(bootstrap: str) -> bool:
    """Any one broker of a bootstrap list answering is enough."""
    brokers = [b for b in bootstrap.split(",") if b.strip()]
    return any(kafka_answers(*host_port(b, 9092)) for b in brokers)


def redis_up(redis_url: str, timeout: float = 1.0) -> bool:
    """PING with the URL's own credentials, database and TLS; one try of ``timeout`` s."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        client = redis.Redis.from_url(
            redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError:
        return False
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def unreachable(kafka: str | None = None, redis_url: str | None = None) -> str | None:
    """None when every named service answers, else one line naming the address and what to
    run. ``kafka``: a bootstrap list (any one broker answering is enough)."""
    if kafka is not None and not kafka_up(kafka):
        return kafka_down(kafka)
    if redis_url is not None and not redis_up(redis_url):
        return redis_down(redis_url)
    return None


def fail(msg: str, code: int = 1) -> typer.Exit:
    """Print ``error: msg`` as one line on stderr; return the Exit for the caller to raise."""
    err_console.print(f"[bold red]error:[/] {msg}")
    return typer.Exit(code)


def require(kafka: str | None = None, redis_url: str | None = None) -> None:
    """Exit 1 with one line when a named service does not answer (see ``unreachable``)."""
    down = unreachable(kafka=kafka, redis_url=redis_url)
    if down:
        raise fail(down)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups."""
    out: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop()
        if any(e is seen for seen in out):
            continue
        out.append(e)
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)
    return out


def connection_failure(exc: BaseException) -> str | None:
    """The one line for a connection error to Kafka, Redis or Moodle, else None."""
    from riskstream.settings import load_settings

    s: Any = None
    for e in _chain(exc):
        kind = _kind(e)
        if kind is None:
            continue
        if s is None:
            try:
                s = load_settings()
            except Exception:  # settings themselves invalid: name the service only
                return f"{kind} is not reachable ({type(e).__name__}); check RISKSTREAM_* settings"
        if kind == "Kafka":
            return kafka_down(s.kafka_bootstrap)
        if kind == "Redis":
            return redis_down(s.redis_url)
        return moodle_down(s.moodle_url)
    return None


def _kind(e: BaseException) -> str | None:
    mod = type(e).__module__ or ""
    if mod.startswith("redis"):
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout

        return "Redis" if isinstance(e, (RedisConnectionError, RedisTimeout)) else None
    if mod.startswith(("aiokafka", "kafka")):
        from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError

        ok = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError)
        return "Kafka" if isinstance(e, ok) else None
    if mod.startswith(("httpx", "httpcore", "moodle_connector")):
        import httpx

        from moodle_connector.errors import MoodleUnavailable

        return "Moodle" if isinstance(e, (httpx.TransportError, MoodleUnavailable)) else None
    return None


class GuardedGroup(TyperGroup):
    """The top-level group: a connection error escaping any command ends in one line."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            line = connection_failure(exc)
            if line is None:
                raise
            raise fail(line) from None

"""Structured logging for every command, with secrets scrubbed before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|api_key|apikey|authorization)", re.I)
_WSTOKEN = re.compile(r"(wstoken=)[^&\s]+", re.I)


def scrub(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Blank values of secret-named keys and ``wstoken=`` inside any string value."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key) and value not in (None, ""):
            event_dict[key] = "**********"
        elif isinstance(value, str) and "wstoken" in value.lower():
            event_dict[key] = _WSTOKEN.sub(r"\1**********", value)
    return event_dict


class _StderrLogger(structlog.PrintLogger):
    """Writes to whatever ``sys.stderr`` is now, so a replaced or closed stream never breaks us."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


class _StderrLoggerFactory:
    def __call__(self, *args: Any) -> _StderrLogger:
        return _StderrLogger()


class _RetryIsWarning(logging.Filter):
    """aiokafka logs each failed connect at ERROR although its client retries (the broker
    restarting, the API's lag probe every 5 s): a retry is a warning; what finally fails is
    reported once, at error, by the command or worker that gives up."""

    _RETRIED = ("Unable connect to", "Unable to update metadata", "Unable to request metadata")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and str(record.msg).startswith(self._RETRIED):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_RETRY_FILTER = _RetryIsWarning()


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(message)s")
    for noisy in ("aiokafka", "faust", "mode", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
    for name in ("aiokafka.client", "aiokafka.conn"):  # filters see only their own logger
        if _RETRY_FILTER not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_RETRY_FILTER)
    # Tracebacks are plain text without local variables: the rich default dumped every
    # local (student ids, model arrays) of every frame, thousands of lines per crash.
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *([structlog.processors.format_exc_info] if json else []),
            scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=True,
    )

"""Secrets and logs (issue 15): upstream text never carries the token out, tracebacks hold no
local variables, the worker's metrics listen on loopback unless configured."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator

import httpx
import pytest
import structlog

from moodle_connector.client import MoodleClient, RetryPolicy
from moodle_connector.errors import InvalidToken, MoodleError
from riskstream.logs import configure_logging
from riskstream.settings import Settings
from riskstream.stack import free_port
from stream_app.metrics import Metrics

TOKEN = "f00dfeedc0ffee1234567890abcdef12"


def _client(body: bytes) -> MoodleClient:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    return MoodleClient(
        "http://moodle.test",
        TOKEN,
        transport=httpx.MockTransport(reply),
        retry=RetryPolicy(attempts=1),
    )


@pytest.mark.parametrize(
    ("body", "exc"),
    [
        (
            json.dumps(
                {
                    "exception": "moodle_exception",
                    "errorcode": "invalidtoken",
                    "message": f"Invalid token wstoken={TOKEN} - token not found",
                    "debuginfo": f"request: wsfunction=x&wstoken={TOKEN}",
                }
            ).encode(),
            InvalidToken,
        ),
        (f"<html>Fatal error near wstoken={TOKEN}</html>".encode(), MoodleError),
        (
            json.dumps(
                {"exception": "x", "errorcode": "other", "message": f"echo {TOKEN} back"}
            ).encode(),
            MoodleError,
        ),
    ],
)
def test_token_echoed_by_upstream_is_redacted(body: bytes, exc: type[MoodleError]) -> None:
    async def go() -> None:
        async with _client(body) as c:
            await c.call("core_webservice_get_site_info")

    with pytest.raises(exc) as info:
        asyncio.run(go())
    text = str(info.value) + repr(info.value.args) + info.value.debuginfo
    assert TOKEN not in text and "**********" in text


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """configure_logging sets process-wide logger levels: put them back for other tests."""
    names = ["", "aiokafka", "faust", "mode", "httpx", "httpcore"]
    levels = {n: logging.getLogger(n).level for n in names}
    handlers = list(logging.getLogger().handlers)
    yield
    for n, lvl in levels.items():
        logging.getLogger(n).setLevel(lvl)
    logging.getLogger().handlers[:] = handlers
    structlog.reset_defaults()


def test_tracebacks_carry_no_local_variables(
    monkeypatch: pytest.MonkeyPatch, logging_restored: None
) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    configure_logging("INFO", json=False)
    try:
        student_ids = [913_377_001, 913_377_002]  # noqa: F841 (a local the log must not show)
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger("t").exception("worker.batch_failed")
    out = buf.getvalue()
    assert "RuntimeError: boom" in out and "913377001" not in out and "913_377_001" not in out
    assert len(out.splitlines()) < 30
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    configure_logging("INFO", json=True)
    try:
        secret_array = [424_242_424]  # noqa: F841
        raise RuntimeError("bang")
    except RuntimeError:
        structlog.get_logger("t").exception("worker.batch_failed")
    line = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert "RuntimeError: bang" in line["exception"] and "424242424" not in buf.getvalue()


def test_metrics_bind_loopback_by_default() -> None:
    assert Settings().stream_metrics_host == "127.0.0.1"
    bound = Metrics().serve(free_port())
    assert bound is not None and bound[0] == "127.0.0.1"

"""The Moodle token never shows up in logs, errors or reprs; the connector never loads torch."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from structlog.testing import capture_logs

from moodle_connector.client import MoodleClient, RetryPolicy
from moodle_connector.errors import MoodleError
from moodle_connector.run import ConnectorConfig
from tests.conftest import subprocess_env
from tests.moodle_connector.fake_moodle import FakeMoodle

TOKEN = "tok-NEVER-PRINT-ME-8d7c6b5a4f3e2d1c"


async def test_token_absent_from_logs_errors_and_reprs(
    fake: FakeMoodle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logging included
    fake.token = TOKEN
    texts: list[str] = []
    with capture_logs() as logs:
        async with MoodleClient(
            fake.url, TOKEN, timeout_s=0.3, retry=RetryPolicy(3, 0.01, 0.02)
        ) as c:
            texts.append(repr(c))
            fake.faults.extend(["503", "timeout"])
            fake.timeout_sleep_s = 0.6
            await c.site_info()
            for fn in ("core_user_create_users", "core_grades_get_grades"):
                with pytest.raises(MoodleError) as err:
                    await c.call(fn, {"x": 1})
                texts += [str(err.value), repr(err.value)]
            fake.faults.extend(["reset", "500", "500"])
            with pytest.raises(MoodleError) as err:
                await c.site_info()  # outage past the retry budget
            texts.append(str(err.value))
        fake.token = "rotated"  # our token is now invalid
        async with MoodleClient(fake.url, TOKEN, retry=RetryPolicy(1)) as c:
            with pytest.raises(MoodleError) as err:
                await c.site_info()
            texts.append(str(err.value))
    assert len(logs) >= 4  # the retries were logged
    cfg = ConnectorConfig(fake.url, TOKEN, "s", "k:1", "redis://x")
    texts += [repr(cfg), caplog.text, *(repr(e) for e in logs)]
    assert caplog.text  # something was logged at DEBUG
    for text in texts:
        assert TOKEN not in text


def test_connector_never_imports_torch_or_models() -> None:
    code = (
        "import sys, moodle_connector, moodle_connector.run, moodle_connector.sink, "
        "moodle_connector.poller, moodle_connector.enrich, moodle_connector.courses, "
        "riskstream.cli_connector\n"
        "bad = [m for m in ('torch', 'models', 'stream_app') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

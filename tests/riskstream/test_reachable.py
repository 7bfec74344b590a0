"""Clear errors (issue 15, item 7): every command with the stack, Moodle, the data folder or
the registry missing prints one line on stderr naming the address and what to run, exits 1,
never a traceback, never a secret, and leaves no temporary folder behind.

The stack cases run as real processes (a traceback or a hang shows as it would to a user),
in parallel, against loopback ports nothing listens on. The data and registry cases run in
process with CliRunner (they import torch; a process each would take minutes on CI).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import typer
from typer.testing import CliRunner

from riskstream.reachable import GuardedGroup, moodle_address, redis_address, unreachable
from riskstream.stack import free_port
from tests.conftest import REPO, subprocess_env

REDIS_PASSWORD = "s3cret-redis-pw"
MOODLE_TOKEN = "f00dfeedc0ffee-not-a-real-token"
SECRETS = (REDIS_PASSWORD, MOODLE_TOKEN)


@dataclass(frozen=True)
class Ports:
    kafka: str
    redis_url: str
    redis: str  # what the message must name: host:port, no password
    moodle: str


@pytest.fixture(scope="module")
def ports() -> Ports:
    k, r, m = free_port(), free_port(), free_port()  # bound and released: nothing listens
    return Ports(
        kafka=f"127.0.0.1:{k}",
        redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{r}/0",
        redis=f"127.0.0.1:{r}",
        moodle=f"http://127.0.0.1:{m}",
    )


# (id, argv, which address the line must name, what it must tell the user to do)
STACK_CASES: list[tuple[str, list[str], str, str]] = [
    ("smoke", ["smoke"], "kafka", "riskstream stack up"),
    ("alerts-tail", ["alerts", "tail", "--timeout", "2"], "kafka", "riskstream stack up"),
    ("worker", ["worker"], "kafka", "riskstream stack up"),
    ("topics", ["topics", "--wait", "1"], "kafka", "RISKSTREAM_KAFKA_BOOTSTRAP"),
    ("ping", ["ping"], "redis", "riskstream stack up"),
    ("replay-files", ["replay", "{events}"], "kafka", "riskstream stack up"),
    ("backfill", ["backfill", "--oulad", "GGG/2014B"], "redis", "riskstream stack up"),
    ("backfill-publish", ["backfill", "--oulad", "GGG/2014B", "--publish"], "kafka", "stack up"),
    ("monitor-status", ["monitor", "status"], "redis", "riskstream stack up"),
    ("retrain", ["retrain", "--check"], "redis", "--no-live"),
    ("connector-check", ["connector", "check"], "moodle", "check the site is up"),
    ("connector-run", ["connector", "run"], "kafka", "riskstream stack up"),
    ("api", ["api", "--port", "{api_port}"], "redis", "riskstream stack up"),
]


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float
    tmp_left: list[str]


def _run(argv: list[str], env: dict[str, str], tmp: Path) -> Ran:
    tmp.mkdir(parents=True)
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "riskstream", *argv],
        cwd=REPO,
        env={**env, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return Ran(
        out.returncode,
        out.stdout,
        out.stderr,
        time.monotonic() - t0,
        sorted(p.name for p in tmp.iterdir()),
    )


@pytest.fixture(scope="module")
def stack_runs(ports: Ports, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """Every stack case, run once, a few at a time (the imports are what costs)."""
    from models.testing import tiny_model

    base = tmp_path_factory.mktemp("unreachable")
    tiny_model(base / "registry")
    events = base / "events.jsonl"
    events.write_text("{}\n")  # a bad line: still has to go to the dead-letter topic
    env = subprocess_env(
        RISKSTREAM_KAFKA_BOOTSTRAP=ports.kafka,
        RISKSTREAM_REDIS_URL=ports.redis_url,
        RISKSTREAM_MOODLE_URL=ports.moodle,
        RISKSTREAM_MOODLE_TOKEN=MOODLE_TOKEN,
        RISKSTREAM_CONNECTOR_RETRIES="1",
        RISKSTREAM_MODEL_REGISTRY=str(base / "registry"),
        RISKSTREAM_STATE_DIR=str(base / "state"),
        RISKSTREAM_CACHE_DIR=str(base / "cache"),
        COLUMNS="60",  # a narrow terminal must not wrap the line
    )
    subs = {"{events}": str(events), "{api_port}": str(free_port())}
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        futures = {
            name: pool.submit(_run, [subs.get(a, a) for a in argv], env, base / "tmp" / name)
            for name, argv, _, _ in STACK_CASES
        }
        return {name: f.result() for name, f in futures.items()}


def _one_line(ran: Ran) -> str:
    assert "Traceback" not in ran.stdout + ran.stderr, ran.stderr
    lines = [ln for ln in ran.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, ran.stderr
    assert ran.code == 1, (ran.code, ran.stderr)
    assert not ran.tmp_left, ran.tmp_left
    for secret in SECRETS:
        assert secret not in ran.stdout + ran.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("name", "argv", "service", "hint"), STACK_CASES, ids=[c[0] for c in STACK_CASES]
)
def test_stack_unreachable_is_one_line(
    name: str,
    argv: list[str],
    service: str,
    hint: str,
    ports: Ports,
    stack_runs: dict[str, Ran],
) -> None:
    ran = stack_runs[name]
    line = _one_line(ran)
    address = {"kafka": ports.kafka, "redis": ports.redis, "moodle": ports.moodle}[service]
    assert re.search(re.escape(address) + r"(?!\d)", line), line
    assert line.startswith("error: ") and hint in line, line
    assert ran.seconds < 45, f"{name} took {ran.seconds:.1f} s to say the stack is down"


# --- data folder and registry: the same rules, in process ------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, ports: Ports, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointing at a missing data folder and an empty registry; a private TMPDIR."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    for key, value in {
        "RISKSTREAM_KAFKA_BOOTSTRAP": ports.kafka,
        "RISKSTREAM_REDIS_URL": ports.redis_url,
        "RISKSTREAM_DATA_DIR": str(tmp_path / "no-data"),
        "RISKSTREAM_MODEL_REGISTRY": str(tmp_path / "no-registry"),
        "RISKSTREAM_CACHE_DIR": str(tmp_path / "cache"),
        "RISKSTREAM_STATE_DIR": str(tmp_path / "state"),
        "RISKSTREAM_KAFKA_PORT": str(free_port()),  # were the demo to start a stack anyway
        "RISKSTREAM_REDIS_PORT": str(free_port()),
        "COLUMNS": "60",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp_path


# (id, argv, what the line must name: "data" or "registry" folder, and a hint)
FOLDER_CASES: list[tuple[str, list[str], str, str]] = [
    ("train", ["train", "--quick"], "data", "RISKSTREAM_DATA_DIR"),
    ("evaluate", ["evaluate", "--out", "{tmp}/rep"], "data", "RISKSTREAM_DATA_DIR"),
    ("evaluate-alerts", ["evaluate-alerts", "--out", "{tmp}/rep"], "data", "RISKSTREAM_DATA_DIR"),
    ("replay-oulad", ["replay", "--oulad", "GGG/2014B"], "data", "RISKSTREAM_DATA_DIR"),
    ("demo", ["demo", "--report-dir", "{tmp}/demo"], "data", "RISKSTREAM_DATA_DIR"),
    ("monitor-reference", ["monitor", "reference"], "registry", "--version"),
    ("retrain-no-live", ["retrain", "--no-live", "--check"], "data", "RISKSTREAM_DATA_DIR"),
    ("calibrate", ["calibrate", "--oot", "{tmp}/no-registry:v0001:2013J"], "registry", "not found"),
    ("worker", ["worker"], "registry", "riskstream train"),
    ("backfill", ["backfill", "--oulad", "GGG/2014B"], "registry", "riskstream train"),
    ("model-list", ["model", "list"], "registry", "riskstream model import"),
    ("model-use", ["model", "use", "v0009"], "registry", "not found"),
    ("model-import", ["model", "import", "{tmp}/nothing"], "nothing", "model version folder"),
]


@pytest.mark.parametrize(
    ("name", "argv", "folder", "hint"), FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES]
)
def test_missing_folder_is_one_line(
    name: str, argv: list[str], folder: str, hint: str, cli_env: Path
) -> None:
    from riskstream.cli import app

    args = [a.replace("{tmp}", str(cli_env)) for a in argv]
    t0 = time.monotonic()
    res = CliRunner().invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    ran = Ran(res.exit_code, res.stdout, res.stderr, time.monotonic() - t0, [])
    ran.tmp_left = sorted(p.name for p in (cli_env / "tmp").iterdir())
    line = _one_line(ran)
    where = {"data": "no-data", "registry": "no-registry", "nothing": "nothing"}[folder]
    assert where in line and hint in line, line
    assert not (cli_env / "demo").exists() and not (cli_env / "rep").exists()
    assert not (cli_env / "state").exists(), "a stack was started for a command that failed"


# --- the shared pieces ------------------------------------------------------------------


def test_guard_turns_a_late_connection_error_into_one_line(
    ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service lost mid-command (after the preflight) still ends in one line, exit 1."""
    monkeypatch.setenv("RISKSTREAM_REDIS_URL", ports.redis_url)
    monkeypatch.setenv("RISKSTREAM_KAFKA_BOOTSTRAP", ports.kafka)
    app = typer.Typer(cls=GuardedGroup)

    @app.command()
    def lost_redis() -> None:
        try:
            redis.Redis.from_url(ports.redis_url, socket_connect_timeout=1).ping()
        except redis.ConnectionError as exc:
            raise RuntimeError("while writing the batch") from exc

    @app.command()
    def lost_kafka() -> None:
        from aiokafka.errors import KafkaConnectionError

        raise KafkaConnectionError("Unable to bootstrap")

    @app.command()
    def bug() -> None:
        raise ZeroDivisionError("not a connection error")

    runner = CliRunner()
    res = runner.invoke(app, ["lost-redis"])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1, res.stderr
    assert f"Redis at {ports.redis} is not answering" in res.stderr
    assert REDIS_PASSWORD not in res.stderr
    res = runner.invoke(app, ["lost-kafka"])
    assert res.exit_code == 1 and f"Kafka at {ports.kafka} is not answering" in res.stderr
    res = runner.invoke(app, ["bug"])  # other errors are not dressed up as outages
    assert isinstance(res.exception, ZeroDivisionError)


def test_unreachable_answers_at_once_and_names_no_secret(ports: Ports) -> None:
    t0 = time.monotonic()
    line = unreachable(redis_url=ports.redis_url)
    assert line is not None and ports.redis in line and REDIS_PASSWORD not in line
    assert time.monotonic() - t0 < 2.5  # one try of 1 s, not the client's retries
    assert unreachable(kafka=f"127.0.0.1:1,{ports.kafka}") is not None
    assert redis_address("redis://user:pw@[::1]:7000/2") == "::1:7000"
    assert "pw" not in redis_address("redis://:pw@host:notaport/0")
    assert moodle_address("https://u:pw@moodle.example.org/lms/?wstoken=abc") == (
        "https://moodle.example.org/lms"
    )


def test_aiokafka_connect_retries_are_warnings() -> None:
    import logging

    from riskstream.logs import configure_logging

    configure_logging("INFO")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    h = Keep()
    logging.getLogger().addHandler(h)
    try:
        log = logging.getLogger("aiokafka.client")
        log.error('Unable connect to "%s:%s": %s', "127.0.0.1", 1, "refused")
        log.error("something else failed")
    finally:
        logging.getLogger().removeHandler(h)
    assert [r.levelname for r in seen] == ["WARNING", "ERROR"]

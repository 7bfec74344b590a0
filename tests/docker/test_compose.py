"""The compose deployment: valid for docker-compose, and every command it runs exists."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from riskstream.settings import Settings
from tests.conftest import REPO, subprocess_env

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def _substitute(value: Any) -> Any:
    """Resolve ${VAR:-default} like compose does (environment, else the default)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, list):
        return [_substitute(v) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v) for k, v in value.items()}
    return value


@functools.cache
def load_compose() -> dict[str, Any]:
    """The resolved file: ``docker-compose config`` when installed, else YAML + substitution."""
    exe = shutil.which("docker-compose")
    if exe:
        out = subprocess.run(
            [exe, "-f", str(COMPOSE), "--env-file", str(DOCKER / ".env.example"), "config"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return yaml.safe_load(out.stdout)
    return _substitute(yaml.safe_load(COMPOSE.read_text()))


def ours(svc: dict[str, Any]) -> bool:
    build = svc.get("build") or {}
    return isinstance(build, dict) and str(build.get("dockerfile", "")).startswith("docker/")


def subcommand(command: list[str]) -> list[str]:
    """The CLI path of a command: the words before the first option."""
    words: list[str] = []
    for word in command:
        if word.startswith("-"):
            break
        words.append(word)
    return words


RAW = _substitute(yaml.safe_load(COMPOSE.read_text()))
OUR_SERVICES = sorted(name for name, svc in RAW["services"].items() if ours(svc))


def test_compose_file_is_valid_for_docker_compose() -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install -y docker-compose)")
    for env_file in (DOCKER / ".env.example",):
        out = subprocess.run(
            ["docker-compose", "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_every_service_command_exists_in_the_cli(service: str) -> None:
    cfg = load_compose()["services"][service]
    words = subcommand(cfg["command"])
    assert words, f"{service} has no riskstream command"
    out = subprocess.run(
        [sys.executable, "-m", "riskstream", *words, "--help"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"`riskstream {' '.join(words)}` ({service}): {out.stderr}"
    # the options the service passes must exist too
    for opt in cfg["command"][len(words) :]:
        if opt.startswith("--"):
            assert opt.split("=")[0] in out.stdout, f"{service}: unknown option {opt}"


def test_the_deployment_has_every_part() -> None:
    cfg = load_compose()
    svcs = cfg["services"]
    commands = {name: " ".join(subcommand(s.get("command") or [])) for name, s in svcs.items()}
    for needed in ("worker", "train", "replay", "topics", "connector run", "api"):
        assert needed in commands.values(), f"no service runs `riskstream {needed}`"
    assert svcs["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in svcs["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert "--appendonly" in svcs["redis"]["command"]
    assert svcs["redis"]["command"][svcs["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert svcs["worker"]["deploy"]["replicas"] >= 1
    gpu = svcs["worker-gpu"]
    assert "gpu" in gpu["profiles"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    assert "replay" in svcs["replayer"]["profiles"]
    for name, svc in svcs.items():
        one_shot = svc.get("restart") == "no"
        assert one_shot or svc.get("restart") in ("unless-stopped", "always", "on-failure")
        if not one_shot:
            assert "healthcheck" in svc and not svc["healthcheck"].get("disable"), name


def test_riskstream_services_are_configured_by_settings_variables() -> None:
    fields = {f"RISKSTREAM_{name.upper()}" for name in Settings.model_fields}
    for name in OUR_SERVICES:
        env = RAW["services"][name]["environment"]
        unknown = [k for k in env if k.startswith("RISKSTREAM_") and k not in fields]
        assert not unknown, f"{name}: {unknown} are not fields of riskstream/settings.py"
        assert env["RISKSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    example = (DOCKER / ".env.example").read_text()
    assert re.search(r"^RISKSTREAM_MOODLE_TOKEN=\s*$", example, re.M), "no token in the example"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfiles_copy_what_exists_and_install_torch_first(dockerfile: str) -> None:
    text = (DOCKER / dockerfile).read_text()
    sources = [
        line.split()[1]
        for line in text.splitlines()
        if line.startswith("COPY ") and not line.startswith("COPY --from")
    ]
    assert sources
    ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
    for src in sources:
        assert (REPO / src).exists(), f"{dockerfile} copies {src}, which does not exist"
        assert f"!{src.rstrip('/')}" in {x.rstrip("/") for x in ignore}, f"{src} is ignored"
    torch_at = text.index("torch==${TORCH_VERSION}")
    assert torch_at < text.index("pip install ."), "torch must come first (CPU/CUDA index)"
    assert "ARG TORCH_VERSION=2.13.0" in text
    if dockerfile == "Dockerfile":
        assert text.startswith("#") and "FROM python:3.11-slim" in text
        assert "download.pytorch.org/whl/cpu" in text

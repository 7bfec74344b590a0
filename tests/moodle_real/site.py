"""A real Moodle 5.0.2 on loopback for the integration suite: PostgreSQL 15 + PHP 8.2 + ``php -S``.

Everything lives under one cache folder (default ``var/moodle``, ``RISKSTREAM_MOODLE_CACHE``):
``www/`` (the Moodle code with our plugin copied in), ``data/`` (dataroot), ``pg/`` (a
PostgreSQL cluster of its own, so the system's cluster is never touched) and ``installed``
(marker). The first run installs the site (about 70 s here); later runs reuse it: start
PostgreSQL, copy the plugin, ``upgrade.php`` (only when the plugin changed), serve. Ports are
chosen free at every start and written into ``config.php``.

``python3 -m tests.moodle_real.site up|down`` stands the same site up by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from riskstream.stack import free_port

REPO = Path(__file__).resolve().parents[2]
SHARED = next(
    (p / "shared" for p in REPO.parents if (p / "shared" / "moodle").is_dir()),
    REPO.parent / "shared",
)
TARBALL = SHARED / "moodle" / "moodle-5.0.2.tar.zst"
PLUGIN = REPO / "moodle_plugin" / "local_riskstream"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PHP_INI = ("-d", "max_input_vars=5000", "-d", "memory_limit=512M")
ADMIN_PASS = "Admin-pass-1"  # a throwaway loopback test site
PHP_EXTENSIONS = ("pgsql", "curl", "xml", "mbstring", "zip", "gd", "intl", "soap")

CONFIG = """<?php  // Written by tests/moodle_real/site.py at every start (ports change).
unset($CFG);
global $CFG;
$CFG = new stdClass();
$CFG->dbtype    = 'pgsql';
$CFG->dblibrary = 'native';
$CFG->dbhost    = '127.0.0.1';
$CFG->dbname    = 'moodle';
$CFG->dbuser    = 'moodle';
$CFG->dbpass    = 'moodle';
$CFG->prefix    = 'mdl_';
$CFG->dboptions = ['dbpersist' => 0, 'dbport' => {pg_port}, 'dbsocket' => ''];
$CFG->wwwroot   = 'http://127.0.0.1:{http_port}';
$CFG->dataroot  = '{data}';
$CFG->admin     = 'admin';
$CFG->directorypermissions = 02777;
$CFG->noemailever = true;
require_once(__DIR__ . '/lib/setup.php');
"""


class SiteError(RuntimeError):
    """The site could not be stood up; the message says which step and shows its output."""


def unavailable_reason() -> str | None:
    """Why this machine cannot run a real Moodle, or None when it can."""
    if not TARBALL.is_file():
        return f"Moodle source {TARBALL} is missing (../shared/moodle beside the checkout)"
    if shutil.which("php") is None:
        return "php is not installed (bash scripts/install.sh installs php8.2-cli and friends)"
    mods = subprocess.run(["php", "-m"], capture_output=True, text=True).stdout.lower().split()
    missing = [m for m in PHP_EXTENSIONS if m not in mods]
    if missing:
        return f"PHP extensions missing: {', '.join(missing)} (bash scripts/install.sh)"
    if not (PG_BIN / "initdb").is_file():
        return f"PostgreSQL 15 is not installed ({PG_BIN}/initdb; bash scripts/install.sh)"
    if shutil.which("zstd") is None and not _tar_knows_zstd():
        return "zstd is not installed (apt-get install zstd)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is missing (needed to run PostgreSQL as 'postgres' when root)"
    return None


def _tar_knows_zstd() -> bool:
    out = subprocess.run(["tar", "--help"], capture_output=True, text=True).stdout
    return "--zstd" in out


def _run(cmd: Sequence[str], what: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if out.returncode != 0:
        tail = (out.stdout + out.stderr)[-3000:]
        raise SiteError(f"{what} failed (exit {out.returncode}): {' '.join(cmd)}\n{tail}")
    return out


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


class MoodleSite:
    """One cached site. ``start()`` returns when it answers HTTP; ``stop()`` stops both servers."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or os.environ.get("RISKSTREAM_MOODLE_CACHE") or REPO / "var/moodle")
        self.www = self.root / "www"
        self.data = self.root / "data"
        self.pg = self._pg_dir()
        self.marker = self.root / "installed"
        self.pg_port = 0
        self.http_port = 0
        self._server: subprocess.Popen[bytes] | None = None
        self._pg_started = False
        self._lock: Any = None
        self.timings: dict[str, float] = {}

    def _pg_dir(self) -> Path:
        """``<cache>/pg``, unless the 'postgres' user (root runs PostgreSQL as it) cannot reach
        the cache (a checkout under a private home): then a folder of its own under /var/tmp."""
        inside = self.root / "pg"
        if os.geteuid() != 0:
            return inside
        self.root.mkdir(parents=True, exist_ok=True)
        ok = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-x", str(self.root)], capture_output=True
        )
        if ok.returncode == 0:
            return inside
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"riskstream-moodle-pg-{digest}"

    # -- paths and calls ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def php(self, script: str | Path, *args: str, check: bool = True) -> str:
        """Run a PHP CLI script with MOODLE_DIR set; returns stdout."""
        env = dict(os.environ, MOODLE_DIR=str(self.www))
        cmd = ["php", *PHP_INI, str(script), *args]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.www)
        if check and out.returncode != 0:
            raise SiteError(
                f"{script} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr}"
            )
        return out.stdout

    def php_json(self, script: str | Path, *args: str) -> Any:
        out = self.php(script, *args)
        lines = [ln for ln in out.splitlines() if ln.startswith(("{", "["))]
        if not lines:
            raise SiteError(f"{script} printed no JSON:\n{out[-2000:]}")
        return json.loads(lines[-1])

    def sql(self, query: str, db: str = "moodle") -> list[list[str]]:
        """One SQL query on the site's database (psql, unaligned); rows of strings."""
        out = _run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pg_port),
                "-U",
                "postgres",
                "-d",
                db,
                "-AtF",
                "\t",
                "-c",
                query,
            ],
            "psql",
        )
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    # -- lifecycle --------------------------------------------------------------------------
    def _as_pg(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    def _extract(self) -> None:
        if (self.www / "version.php").is_file():
            return
        tmp = self.root / "www.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _run(["tar", "--zstd", "-xf", str(TARBALL), "-C", str(tmp)], "extract Moodle")
        tmp.rename(self.www)

    def _pg_start(self) -> None:
        fresh = not (self.pg / "PG_VERSION").is_file()
        if fresh:
            shutil.rmtree(self.pg, ignore_errors=True)
            self.pg.mkdir(parents=True)
            if os.geteuid() == 0:
                shutil.chown(self.pg, "postgres", "postgres")
            self.pg.chmod(0o700)
            _run(
                self._as_pg(
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.pg),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ),
                "initdb",
            )
        # A cluster left running by a killed run: stop it first (its port is unknown).
        if (self.pg / "postmaster.pid").exists():
            subprocess.run(
                self._as_pg(str(PG_BIN / "pg_ctl"), "-D", str(self.pg), "-m", "fast", "stop"),
                capture_output=True,
            )
        self.pg_port = free_port()
        opts = f"-p {self.pg_port} -k {self.pg} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(
            self._as_pg(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.pg),
                "-l",
                str(self.pg / "log"),
                "-o",
                opts,
                "-w",
                "start",
            ),
            "start PostgreSQL",
        )
        self._pg_started = True
        if fresh:
            self.sql("CREATE ROLE moodle LOGIN PASSWORD 'moodle'", db="postgres")
            self.sql(
                "CREATE DATABASE moodle OWNER moodle ENCODING 'UTF8' TEMPLATE template0 "
                "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'",
                db="postgres",
            )

    def _write_config(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        (self.www / "config.php").write_text(
            CONFIG.replace("{pg_port}", str(self.pg_port))
            .replace("{http_port}", str(self.http_port))
            .replace("{data}", str(self.data))
        )

    def _copy_plugin(self) -> bool:
        """Copy the plugin in; True when it changed since the last install/upgrade."""
        dest = self.www / "local" / "riskstream"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(PLUGIN, dest)
        digest = _tree_hash(PLUGIN)
        stamp = self.root / "plugin.sha256"
        changed = not stamp.is_file() or stamp.read_text() != digest
        stamp.write_text(digest)
        return changed

    def _install(self) -> None:
        t = time.monotonic()
        _run(
            [
                "php",
                *PHP_INI,
                str(self.www / "admin/cli/install_database.php"),
                "--agree-license",
                f"--adminpass={ADMIN_PASS}",
                "--adminemail=admin@example.invalid",
                "--fullname=RiskStream test site",
                "--shortname=rstest",
            ],
            "Moodle install (admin/cli/install_database.php)",
            cwd=self.www,
        )
        self.marker.write_text(json.dumps({"tarball": TARBALL.name, "installed": time.time()}))
        self.timings["install_s"] = time.monotonic() - t

    def _upgrade(self) -> None:
        t = time.monotonic()
        out = subprocess.run(
            ["php", *PHP_INI, str(self.www / "admin/cli/upgrade.php"), "--non-interactive"],
            capture_output=True,
            text=True,
            cwd=self.www,
        )
        if out.returncode != 0 and "No upgrade needed" not in out.stdout + out.stderr:
            raise SiteError(
                f"upgrade.php failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}"
            )
        self.timings["upgrade_s"] = time.monotonic() - t

    def _serve(self) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (closed with the process)
        self._server = subprocess.Popen(
            ["php", *PHP_INI, "-S", f"127.0.0.1:{self.http_port}", "-t", str(self.www)],
            cwd=self.www,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PHP_CLI_SERVER_WORKERS="4"),
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise SiteError(
                    f"php -S exited with {self._server.returncode}; see {self.root}/server.log"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/login/index.php", timeout=5).status_code == 200:
                    return
            time.sleep(0.3)
        raise SiteError(f"php -S did not answer on {self.url} within 30 s")

    def start(self) -> MoodleSite:
        t0 = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / "lock", "w")  # noqa: SIM115 (held until stop)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            installed = self.marker.is_file() and (self.pg / "PG_VERSION").is_file()
            if not installed:  # a half-made cache: start over
                for d in (self.pg, self.data):
                    shutil.rmtree(d, ignore_errors=True)
                self.marker.unlink(missing_ok=True)
                (self.root / "plugin.sha256").unlink(missing_ok=True)
            self._extract()
            changed = self._copy_plugin()
            self._pg_start()
            self.http_port = free_port()
            self._write_config()
            if not installed:
                self._install()
            elif changed:
                self._upgrade()
            else:
                # A new wwwroot (port): Moodle caches URLs, so clear the caches.
                self.php(self.www / "admin/cli/purge_caches.php")
            self._serve()
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Signal php -S's master (a TERM to the group can leave it serving), then PostgreSQL."""
        if self._server is not None and self._server.poll() is None:
            self._server.send_signal(signal.SIGTERM)
            try:
                self._server.wait(10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait(5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._server.pid, signal.SIGKILL)  # workers, if any outlived it
        self._server = None
        if self._pg_started:
            subprocess.run(
                self._as_pg(str(PG_BIN / "pg_ctl"), "-D", str(self.pg), "-m", "fast", "-w", "stop"),
                capture_output=True,
            )
            self._pg_started = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None


@contextlib.contextmanager
def running_site(root: Path | None = None) -> Iterator[MoodleSite]:
    site = MoodleSite(root).start()
    try:
        yield site
    finally:
        site.stop()


def main(argv: list[str]) -> int:
    """``up``: start and wait for Ctrl-C (prints the URL); a manual look at the test site."""
    reason = unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    with running_site() as site:
        print(f"Moodle at {site.url} (admin / {ADMIN_PASS}); PostgreSQL on {site.pg_port}")
        print(json.dumps(site.timings))
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Benchmark: GET /v1/courses/{course}/students/{user}/risk under load (not a timed test).

Starts a private Redis (riskstream.stack on free ports), fills it through the stream worker's
own state code (2,000 students x 60 days of trajectory), serves `riskstream api` with uvicorn
(uvloop + httptools when installed) and drives it with `wrk` (Debian package) rotating over
every student with a bearer key; falls back to an httpx async load loop when wrk is absent.
Prints requests/s and latency percentiles; target: >= 2,000 req/s with p99 < 20 ms.

    python3 bench/bench_api.py [--workers 2] [--connections 8] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import redis.asyncio as aredis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from riskstream.api.auth import hash_key  # noqa: E402
from riskstream.stack import Stack, free_port  # noqa: E402
from stream_app.alerting import AlertState  # noqa: E402
from stream_app.state import BatchWrite, StudentKey, StudentState, encode_state, write_batch  # noqa: E402

SITE = "bench"
KEY = "bench-key-not-secret"


async def fill(url: str, courses: int, per_course: int, days: int) -> list[str]:
    """Students written as the worker writes them; returns their risk URLs."""
    r = aredis.Redis.from_url(url)
    rng = np.random.default_rng(0)
    paths = []
    try:
        for c in range(courses):
            w = BatchWrite()
            for u in range(per_course):
                traj = np.clip(np.cumsum(rng.normal(0.005, 0.03, days)) + 0.3, 0, 1)
                key = StudentKey(SITE, 100 + c, 10_000 + u)
                risk = float(traj[-1])
                st = StudentState(
                    day=days,
                    d0=0,
                    ver="v0001",
                    risk=risk,
                    level="high" if risk >= 0.7 else "medium" if risk >= 0.5 else "low",
                    upd=time.time(),
                    alert=AlertState(),
                    traj=traj.astype(np.float16),
                    model_state={
                        "h": rng.normal(size=128).astype(np.float32),
                        "c": rng.normal(size=128).astype(np.float32),
                    },
                    win=rng.random((28, 40), dtype=np.float32),
                )
                w.states[key] = encode_state(st, full=True)
                w.ranks[key] = risk
                paths.append(f"/v1/courses/{100 + c}/students/{10_000 + u}/risk")
            await write_batch(r, w)
    finally:
        await r.aclose()
    return paths


def stack_redis_pid(stack: Stack) -> int:
    return int(json.loads((stack.state_dir / "pids.json").read_text())["redis"])


def start_api(redis_url: str, port: int, workers: int, registry: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        RISKSTREAM_REDIS_URL=redis_url,
        RISKSTREAM_SITE=SITE,
        RISKSTREAM_API_KEY_HASHES=hash_key(KEY),
        RISKSTREAM_KAFKA_BOOTSTRAP="",  # no lag probe: this measures the API alone
        RISKSTREAM_MODEL_REGISTRY=str(registry),
        RISKSTREAM_LOG_LEVEL="WARNING",
    )
    cmd = [
        sys.executable,
        "-m",
        "riskstream",
        "api",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True)


def wait_ready(base: str, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(base + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=2)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"API did not answer on {base} within {timeout:.0f}s")


def tree_cpu_s(root: int) -> float:
    """User+system CPU seconds of a process and its descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[int(d.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(d.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += (int(stats[pid][11]) + int(stats[pid][12])) / tick
        todo += children.get(pid, [])
    return total


LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %%d, \\"errors\\": %%d, \\"non2xx\\": %%d, ",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status))
  io.write(string.format("\\"seconds\\": %%f, \\"p50_ms\\": %%f, \\"p90_ms\\": %%f, ",
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3))
  io.write(string.format("\\"p99_ms\\": %%f, \\"max_ms\\": %%f}\\n",
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


def run_wrk(base: str, paths: list[str], conns: int, seconds: int, tmp: Path) -> dict[str, float]:
    plist = tmp / "paths.txt"
    plist.write_text("\n".join(paths) + "\n")
    script = tmp / "risk.lua"
    script.write_text(LUA % (plist, KEY))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"^JSON (\{.*\})$", out, re.M)
    if not m:
        raise SystemExit("could not read wrk output:\n" + out)
    res: dict[str, float] = json.loads(m.group(1))
    res["rps"] = res["requests"] / res["seconds"]
    return res


async def run_httpx(base: str, paths: list[str], conns: int, seconds: int) -> dict[str, float]:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, limits=limits, headers=headers) as client:

        async def one(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await client.get(paths[i % len(paths)])
                lat.append(time.perf_counter() - t)
                errors += r.status_code != 200
                i += conns

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(conns)))
        took = time.perf_counter() - t0
    ms = np.asarray(lat) * 1000
    return {
        "requests": len(lat),
        "errors": 0,
        "non2xx": errors,
        "seconds": took,
        "rps": len(lat) / took,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--connections", type=int, default=8, help="open keep-alive connections")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--courses", type=int, default=4)
    ap.add_argument("--students", type=int, default=500, help="per course")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    stack = Stack(
        state_dir=tmp / "stack",
        kafka_port=free_port(),
        redis_port=free_port(),
        redis_appendonly=False,
    )
    stack.up()
    api = None
    try:
        paths = asyncio.run(fill(stack.redis_url, args.courses, args.students, args.days))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = start_api(stack.redis_url, port, args.workers, tmp / "registry")
        wait_ready(base, paths[0])
        client = args.client
        if client == "auto":
            client = "wrk" if shutil.which("wrk") else "httpx"
        # warm-up: every worker process imports, connects and fills its pools
        if client == "wrk":
            run_wrk(base, paths, args.connections, 2, tmp)
        else:
            asyncio.run(run_httpx(base, paths, args.connections, 2))
        cpu0, redis0 = tree_cpu_s(api.pid), tree_cpu_s(stack_redis_pid(stack))
        if client == "wrk":
            res = run_wrk(base, paths, args.connections, args.seconds, tmp)
        else:
            res = asyncio.run(run_httpx(base, paths, args.connections, args.seconds))
        # CPU per request does not depend on what else runs on the machine: the capacity
        # of an otherwise idle machine follows from it (load generator and Redis aside).
        res["api_cpu_us_per_req"] = (tree_cpu_s(api.pid) - cpu0) / res["requests"] * 1e6
        res["redis_cpu_us_per_req"] = (
            (tree_cpu_s(stack_redis_pid(stack)) - redis0) / res["requests"] * 1e6
        )
        res.update(
            client=client,
            workers=args.workers,
            connections=args.connections,
            students=len(paths),
            cpus=os.cpu_count(),
            load_avg_1m=round(os.getloadavg()[0], 2),
            python=platform.python_version(),
        )
        ok = res["rps"] >= 2000 and res["p99_ms"] < 20 and res["non2xx"] == 0
        print(
            f"risk endpoint, {client}, {args.workers} uvicorn workers, "
            f"{args.connections} connections, {len(paths)} students, {res['seconds']:.1f} s"
        )
        print(f"  requests/s   {res['rps']:>9.0f}   (target >= 2000)")
        print(f"  p50 / p90    {res['p50_ms']:>6.2f} / {res['p90_ms']:.2f} ms")
        print(f"  p99          {res['p99_ms']:>9.2f} ms (target < 20)")
        print(f"  max          {res['max_ms']:>9.2f} ms")
        print(
            f"  API CPU      {res['api_cpu_us_per_req']:>9.0f} us/request "
            f"(= {1e6 / res['api_cpu_us_per_req']:,.0f} req/s per fully free core); "
            f"Redis {res['redis_cpu_us_per_req']:.0f} us/request"
        )
        print(f"  errors       {int(res['errors'])} socket, {int(res['non2xx'])} non-2xx")
        print(f"  load avg 1m  {res['load_avg_1m']} on {res['cpus']} cpus")
        print("  PASS" if ok else "  BELOW TARGET")
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
    finally:
        if api is not None:
            api.terminate()
            try:
                api.wait(15)
            except subprocess.TimeoutExpired:
                api.kill()
        stack.down()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

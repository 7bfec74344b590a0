"""How fast the poller moves events from a Moodle site to the broker, and how far it lags.

Starts the embedded stack (broker + Redis on free ports) and the fake Moodle in its own
process (so it does not share our GIL), then:

1. drain: a backlog of ``--backlog`` rows -> events/s end to end (fetch, normalize,
   publish with acks=all, cursor);
2. live: the site produces ``--rate`` rows/s for ``--seconds``; every 0.5 s we sample the
   lag = rows the site has written but the broker has not acknowledged, in seconds of
   production (backlog / rate), and the age of the newest acknowledged row.

Usage: python3 bench/bench_poller.py [--rate 5000 --seconds 30 --page-size 1000]
Target: keep up with 5,000 events/s with < 5 s lag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from redis.asyncio import Redis  # noqa: E402

from moodle_connector.client import MoodleClient  # noqa: E402
from moodle_connector.poller import Poller  # noqa: E402
from moodle_connector.run import producer_for  # noqa: E402
from riskstream.kafka_admin import ensure_topics  # noqa: E402
from riskstream.stack import Stack, free_port  # noqa: E402

TOKEN = "bench-token-0123456789"


def start_fake(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.moodle_connector.fake_moodle", "--token", TOKEN, *args],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def fake_stats(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/fake/stats", timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


async def drain(bootstrap: str, redis_url: str, backlog: int, page: int) -> float:
    proc, url = start_fake("--preload", str(backlog), "--no-ws-rows")
    producer = producer_for(bootstrap)
    await producer.start()
    redis = Redis.from_url(redis_url)
    try:
        async with MoodleClient(url, TOKEN) as client:
            poller = Poller(client, producer, redis, "bench-drain", page_size=page)
            t0 = time.perf_counter()
            while (await poller.poll_once()).has_more:
                pass
            dt = time.perf_counter() - t0
        print(
            f"drain: {poller.stats.published} events in {dt:.2f} s = "
            f"{poller.stats.published / dt:,.0f} events/s"
        )
        return poller.stats.published / dt
    finally:
        await producer.stop()
        await redis.aclose()
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)


async def live(bootstrap: str, redis_url: str, rate: float, seconds: float, page: int) -> None:
    proc, url = start_fake("--rate", str(rate))
    producer = producer_for(bootstrap)
    await producer.start()
    redis = Redis.from_url(redis_url)
    stop = asyncio.Event()
    try:
        async with MoodleClient(url, TOKEN) as client:
            poller = Poller(client, producer, redis, "bench-live", page_size=page, idle_s=0.2)
            task = asyncio.create_task(poller.run(stop))
            backlog_s: list[float] = []
            ages: list[float] = []
            t0 = time.perf_counter()
            await asyncio.sleep(2)  # warm-up
            start_published = poller.stats.published
            t_start = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                await asyncio.sleep(0.5)
                st = await asyncio.to_thread(fake_stats, url)
                acked = int(await redis.get("rs:cursor:bench-live") or 0)
                backlog_s.append(max(0.0, (st["last_id"] - acked) / rate))
                ages.append(poller.stats.lag_s)
            elapsed = time.perf_counter() - t_start
            moved = poller.stats.published - start_published
            stop.set()
            await task
        q = statistics.quantiles(backlog_s, n=20)
        print(
            f"live @ {rate:,.0f} rows/s for {seconds:.0f} s (page {page}): "
            f"moved {moved / elapsed:,.0f} events/s; "
            f"lag (unacked backlog) p50 {statistics.median(backlog_s):.2f} s, p95 {q[18]:.2f} s, "
            f"max {max(backlog_s):.2f} s; newest acked row age max {max(ages):.2f} s "
            f"(timecreated has 1 s resolution); outages {poller.stats.outages}"
        )
        verdict = "PASS" if max(backlog_s) < 5 and moved / elapsed > 0.95 * rate else "FAIL"
        print(f"keep up with {rate:,.0f} events/s with < 5 s lag: {verdict}")
    finally:
        await producer.stop()
        await redis.aclose()
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--bootstrap", help="use a running broker instead of starting one")
    ap.add_argument("--redis-url")
    a = ap.parse_args()
    stack = None
    if a.bootstrap and a.redis_url:
        bootstrap, redis_url = a.bootstrap, a.redis_url
    else:
        stack = Stack(
            state_dir=Path(tempfile.mkdtemp(prefix="bench-poller-")),
            kafka_port=free_port(),
            redis_port=free_port(),
            redis_appendonly=False,
        )
        stack.up()
        bootstrap, redis_url = stack.bootstrap, stack.redis_url
    try:
        asyncio.run(ensure_topics(bootstrap, ("riskstream.events", "riskstream.dead-letter")))
        asyncio.run(drain(bootstrap, redis_url, a.backlog, a.page_size))
        asyncio.run(live(bootstrap, redis_url, a.rate, a.seconds, a.page_size))
    finally:
        if stack is not None:
            stack.down()


if __name__ == "__main__":
    main()

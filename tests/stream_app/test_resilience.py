"""Redis outage (retry, nothing skipped) and model hot reload (re-warm from the window)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import redis
import torch

from contracts import CourseCalendar, encode, keys
from models.registry import Registry
from models.testing import tiny_model
from riskstream.stack import Stack, free_port, redis_answers
from stream_app.inference import InferenceEngine
from stream_app.processor import Processor
from stream_app.reload import ModelWatcher, load_handle
from stream_app.state import connect, decode_state
from tests.stream_app.helpers import START, ListPublisher, event, handle_for, record


def test_redis_down_pauses_and_retries_until_it_is_back(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    handle = handle_for(tmp_path / "reg")
    port = free_port()
    pub = ListPublisher()

    async def scenario() -> tuple[int, int]:
        r = connect(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5, socket_timeout=1)
        proc = Processor(r, pub, handle)
        task = asyncio.create_task(proc.process([record(event(1, 1, 0.5))]))
        await asyncio.sleep(1.0)
        assert not task.done()  # paused: Redis is down, nothing applied, nothing published
        assert pub.records == []
        srv = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            while not redis_answers("127.0.0.1", port):
                await asyncio.sleep(0.05)
            rep = await asyncio.wait_for(task, 15)
            last = await r.hget(keys.state_key("s1", 7, 1), "last_id")
            await r.aclose()
            return rep.applied, int(last or -1)
        finally:
            srv.terminate()
            srv.wait(10)

    applied, last_id = asyncio.run(scenario())
    assert applied == 1 and last_id == 1
    assert len(pub.records) == 1  # published once, only after Redis came back


def test_hot_reload_rewarms_from_window(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    root = tmp_path / "reg"
    tiny_model(root, seed=1, hidden=8)
    cal = CourseCalendar(site="s1", course_id=7, start=START, length_days=60)
    redis_client.set(keys.calendar_key("s1", 7), encode(cal))
    evs = [
        event(i + 1, 3, d + 0.5, component=c)
        for i, (d, c) in enumerate(
            [(0, "mod_quiz"), (2, "mod_page"), (3, "mod_forum"), (5, "mod_page"), (6, "mod_quiz")]
        )
    ]

    async def scenario() -> tuple[str, str]:
        r = connect(stack.redis_url)
        engine = InferenceEngine()
        proc = Processor(r, ListPublisher(), load_handle(root, "cpu"), engine=engine)
        watcher = ModelWatcher(root, "cpu", engine, every=0.1)
        await proc.process([record(e, i) for i, e in enumerate(evs[:4])])
        assert not await watcher.poll(proc)  # nothing new
        v2 = tiny_model(root, seed=2, hidden=12)  # publishes and makes it current
        assert await watcher.poll(proc)
        await proc.process([record(evs[4], 4)])
        await r.aclose()
        engine.close()
        return v2, proc.model.version

    v2, running = asyncio.run(scenario())
    assert running == v2 == Registry(root).current_version()
    loaded = load_handle(root, "cpu").loaded
    st = decode_state(redis_client.hgetall(keys.state_key("s1", 7, 3)), loaded.spec.n_day)
    assert st.ver == v2 and st.day == 6
    # re-warmed: the new model over the window (days 0..4, all within W) + committed day 5
    fz = loaded.featurizer
    accs = np.zeros((7, fz.n_acc), dtype=np.float32)
    for e in evs:
        fz.fold(accs[fz.day_of(e.time, cal)], e)
    x = torch.from_numpy(fz.day_vectors(accs, np.arange(7), cal))[None]
    static = torch.from_numpy(fz.static_vector(None))[None]
    with torch.inference_mode():
        off = loaded.model(x, static).risk[0].numpy()
    assert abs(st.risk - off[6]) < 1e-5
    assert st.model_state["h"].shape == (12,)

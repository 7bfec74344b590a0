"""The durable embedded broker keeps topics, records and group offsets across a kill -9.

Same scenario on both storage engines: the memory engine loses everything on a broker
restart (documented, by design), the s3:// engine on s3rver keeps it all.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from riskstream.kafka_admin import ensure_topics
from riskstream.stack import Stack, StackError, free_port, s3rver_binary

pytestmark = pytest.mark.slow

TOPIC = "durable.probe"
GROUP = "durable-probe"
N = 120


def _need_s3rver() -> None:
    try:
        s3rver_binary()
    except StackError as exc:
        pytest.skip(str(exc))


def _stack(tmp_path: Path, durable: bool) -> Stack:
    return Stack(
        state_dir=tmp_path,
        kafka_port=free_port(),
        redis_port=free_port(),
        s3_port=free_port(),
        s3_gate_port=free_port(),
        redis_appendonly=False,
        durable=durable,
    )


@pytest.fixture
def durable_stack(tmp_path: Path) -> Iterator[Stack]:
    _need_s3rver()
    st = _stack(tmp_path, durable=True)
    st.up()
    try:
        yield st
    finally:
        st.down()


async def _produce(bootstrap: str, first: int, n: int) -> None:
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await prod.start()
    try:
        for i in range(first, first + n):
            await prod.send(TOPIC, f"value-{i}".encode(), key=f"user-{i % 11}".encode())
        await prod.flush()
    finally:
        await prod.stop()


async def _produce_and_half_consume(bootstrap: str) -> dict[int, int]:
    """Send N keyed records, consume about half in a group and commit; return commits."""
    await ensure_topics(bootstrap, (TOPIC,), 4)
    await _produce(bootstrap, 0, N)
    cons = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
    )
    await cons.start()
    try:
        got = 0
        while got < N // 2:
            batch = await cons.getmany(timeout_ms=1000, max_records=10)
            got += sum(len(v) for v in batch.values())
            await cons.commit()
        return {tp.partition: (await cons.committed(tp)) or 0 for tp in cons.assignment()}
    finally:
        await cons.stop()


async def _after_restart(bootstrap: str) -> tuple[list[str], dict[int, int], int, set[bytes]]:
    """Topics, the group's committed offsets, what the group still reads, and every value."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        topics = list(await admin.list_topics())
    finally:
        await admin.close()
    if TOPIC not in topics:
        return topics, {}, 0, set()
    cons = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await cons.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(4)]
        committed = {tp.partition: (await cons.committed(tp)) or 0 for tp in tps}
        cons.assign(tps)
        for tp in tps:
            cons.seek(tp, committed[tp.partition])
        rest = await _drain(cons)
        for tp in tps:
            cons.seek(tp, 0)
        every = await _drain(cons)
    finally:
        await cons.stop()
    return topics, committed, len(rest), set(every)


async def _drain(cons: AIOKafkaConsumer, idle_s: float = 1.5) -> list[bytes]:
    out: list[bytes] = []
    idle = 0.0
    while idle < idle_s:
        batch = await cons.getmany(timeout_ms=300)
        recs = [r.value for v in batch.values() for r in v if r.value is not None]
        out.extend(recs)
        idle = 0.0 if recs else idle + 0.3
    return out


def test_durable_broker_keeps_topics_data_and_offsets_across_kill_9(
    durable_stack: Stack,
) -> None:
    st = durable_stack
    before = asyncio.run(_produce_and_half_consume(st.bootstrap))
    assert sum(before.values()) >= N // 2
    pid = st._read_pids()["broker"]
    st.stop_service("broker", sig=signal.SIGKILL)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    st.start_service("broker")
    # Produce before anything reads: the restarted broker must continue after the stored
    # offsets (without riskstream/s3gate.py it re-used offset 0 and replaced acked records).
    asyncio.run(_produce(st.bootstrap, N, N))
    topics, committed, rest, every = asyncio.run(_after_restart(st.bootstrap))
    assert TOPIC in topics
    assert committed == before
    assert every == {f"value-{i}".encode() for i in range(2 * N)}
    assert rest == 2 * N - sum(before.values())
    # Objects are on disk under the state dir, so they also outlive s3rver itself.
    assert any((st.state_dir / "s3" / "tansu").rglob("*.batch*"))


def test_memory_broker_loses_its_data_on_restart_by_design(tmp_path: Path) -> None:
    st = _stack(tmp_path, durable=False)
    st.up()
    try:
        asyncio.run(_produce_and_half_consume(st.bootstrap))
        st.stop_service("broker", sig=signal.SIGKILL)
        st.start_service("broker")
        topics, _, _, every = asyncio.run(_after_restart(st.bootstrap))
        assert TOPIC not in topics and not every
    finally:
        st.down()


def test_durable_stack_survives_a_full_down_up(tmp_path: Path) -> None:
    """s3rver too is restarted: data lives in <state_dir>/s3, not in a process."""
    _need_s3rver()
    st = _stack(tmp_path, durable=True)
    st.up()
    try:
        before = asyncio.run(_produce_and_half_consume(st.bootstrap))
        st.down()
        status = st.up()
        assert status.s3 is not None and status.s3.answering
        topics, committed, _, every = asyncio.run(_after_restart(st.bootstrap))
        assert TOPIC in topics and committed == before and len(every) == N
    finally:
        st.down()


def test_missing_s3rver_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import riskstream.stack as stack_mod

    monkeypatch.setattr(stack_mod, "_REPO_ROOT", tmp_path)
    monkeypatch.setattr(stack_mod.shutil, "which", lambda name: None)
    st = _stack(tmp_path, durable=True)
    with pytest.raises(StackError, match="npm install"):
        st.up()

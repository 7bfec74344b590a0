"""Offered load for the benchmarks: one paced producer, shared so every bench offers load alike."""

from __future__ import annotations

import asyncio
import time


def paced_send(
    bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]], rate: float
) -> None:
    """Child process: send at ``rate`` events/s in 5 ms ticks; CreateTime = send time.

    Acks are awaited every 5,000 sends so a slow broker shows up as lag, not as memory.
    """

    async def run() -> None:
        from aiokafka import AIOKafkaProducer

        p = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=1
        )
        await p.start()
        t0 = time.perf_counter()
        sent = 0
        futs = []
        while sent < len(payloads):
            due = min(len(payloads), int((time.perf_counter() - t0) * rate) + 1)
            while sent < due:
                k, v = payloads[sent]
                futs.append(await p.send(topic, v, key=k))
                sent += 1
            if len(futs) > 5000:
                await asyncio.gather(*futs)
                futs = []
            await asyncio.sleep(0.005)
        await asyncio.gather(*futs)
        await p.stop()

    asyncio.run(run())


async def send_all(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> float:
    """Send everything as fast as the broker takes it; returns the seconds it took.

    Acks are awaited every 5,000 sends (bounded memory, broker back-pressure shows).
    """
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=20,
        max_batch_size=1 << 20,
    )
    await p.start()
    t0 = time.perf_counter()
    try:
        futs = []
        for k, v in payloads:
            futs.append(await p.send(topic, v, key=k))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    return time.perf_counter() - t0

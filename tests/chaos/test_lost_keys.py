"""Scenario 5: what streamq keeps in Redis is taken away under it — the stream deleted, the group
destroyed, the scripts flushed, the consumer's connections killed — and it recovers by itself,
losing none of the jobs enqueued after the fault (nor, for the flush and the killed connections,
any job at all)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.testing.localserver import LocalRedis

from ..helpers import Producer, wait_until
from . import figures

pytestmark = [pytest.mark.chaos, pytest.mark.anyio, pytest.mark.timeout(300)]

Fault = Callable[[aioredis.Redis, str], Awaitable[object]]


async def delete_stream(admin: aioredis.Redis, queue: str) -> None:
    await admin.delete(f"streamq:{{{queue}}}:stream")


async def destroy_group(admin: aioredis.Redis, queue: str) -> None:
    await admin.xgroup_destroy(f"streamq:{{{queue}}}:stream", queue)


async def flush_scripts(admin: aioredis.Redis, queue: str) -> None:
    await admin.script_flush()


async def kill_connections(admin: aioredis.Redis, queue: str) -> None:
    await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # type: ignore[no-untyped-call]


#: (name, the fault, whether it may be injected while jobs are on their way: a deleted stream
#: or group takes what it held with it, by definition).
FAULTS: list[tuple[str, Fault, bool]] = [
    ("stream deleted", delete_stream, False),
    ("group destroyed", destroy_group, False),
    ("SCRIPT FLUSH", flush_scripts, True),
    ("CLIENT KILL", kill_connections, True),
]


async def test_lost_keys_flushed_scripts_and_killed_connections(
    own_server: LocalRedis, queue_name: str
) -> None:
    rounds = figures.scaled(2, 10)
    per_batch = figures.scaled(200, 1000)
    runs: Counter[int] = Counter()
    admin = aioredis.Redis.from_url(own_server.url)
    started = time.monotonic()
    faults = 0
    async with streamq.QueueManager(own_server.url, shutdown_grace=5) as qm:
        queue = qm.get_queue(queue_name, int)

        async def handle(job: streamq.Job[int]) -> None:
            runs[job.data] += 1
            await anyio.sleep(0.001)

        await queue.consume(handle, concurrency=8, visibility_timeout=5)
        producer = Producer(queue, pause=0.05)
        n = 0
        try:
            for _ in range(rounds):
                for _name, fault, under_load in FAULTS:
                    batch = range(n, n + per_batch)
                    n += per_batch
                    if under_load:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(producer.produce_all, batch)
                            await wait_until(
                                lambda b=batch: runs.keys() >= set(b[: per_batch // 4]),
                                what="the batch to flow",
                            )
                            await fault(admin, queue_name)
                    else:
                        await fault(admin, queue_name)  # the consumer waits in its read
                        await producer.produce_all(batch)
                    faults += 1
                    await wait_until(
                        lambda b=batch: runs.keys() >= set(b), timeout=60, what="the batch"
                    )
        finally:
            figures.record(
                figures.Row(
                    "5. keys deleted, scripts flushed, connections killed",
                    enqueued=n,
                    acknowledged=len(producer.acknowledged),
                    completed=len(runs),
                    lost=len(producer.acknowledged - runs.keys()),
                    reruns=sum(r - 1 for r in runs.values()),
                    faults=f"{faults} ({rounds}x each of {len(FAULTS)})",
                    seconds=time.monotonic() - started,
                )
            )
            await admin.aclose()
    assert producer.acknowledged == set(range(n))
    assert runs.keys() == set(range(n))

"""Huge ``enqueue_many`` batches are split into script calls that never hold the server for long
(by job count and by payload bytes), and every job lands, in order.

Each test has a server of its own, whose command statistics give the number of script calls and
their mean duration: one unsplit call of 500 jobs of 200 KiB runs for hundreds of milliseconds.
(Not the longest call: on a busy machine the server can be descheduled in the middle of any
one of them.)
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from typing import cast

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.client.batching import ENQUEUE_BATCH_BYTES
from streamq.testing.localserver import LocalRedis

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: Far above what a split call takes (about 2 ms for 1 MiB or 500 small jobs on 2 cores).
SLOW_MS = 20


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server() -> Iterator[LocalRedis]:
    with LocalRedis() as local:
        yield local


@pytest.fixture
async def admin(server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(server.url)
    yield client
    await client.aclose()


async def _script_calls(admin: aioredis.Redis) -> int:
    stats = await admin.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def _mean_script_ms(admin: aioredis.Redis) -> float:
    stats = await admin.info("commandstats")
    return float(stats["cmdstat_evalsha"]["usec_per_call"]) / 1000


async def _staged_in_order(admin: aioredis.Redis, queue: str) -> list[str]:
    members = await admin.zrange(f"streamq:{{{queue}}}:staged", 0, -1)
    return [m.decode() for m in cast("list[bytes]", members)]


async def test_200_000_small_jobs(server: LocalRedis, admin: aioredis.Redis) -> None:
    async with streamq.QueueManager(server.url) as qm:
        queue = qm.get_queue("many")
        ids = await queue.enqueue_many(range(200_000))
        assert len(set(ids)) == 200_000
        assert (await queue.stats()).waiting == 200_000
        # No consumer yet: every job is staged, in enqueue order.
        assert await _staged_in_order(admin, "many") == ids
    assert await _script_calls(admin) >= 200_000 / 500
    assert await _mean_script_ms(admin) < SLOW_MS


async def test_2000_jobs_of_200_kib_are_split_by_size(
    server: LocalRedis, admin: aioredis.Redis
) -> None:
    blob = b"b" * (200 * 1024)
    async with streamq.QueueManager(server.url) as qm:
        queue = qm.get_queue("big")
        ids = await queue.enqueue_many([blob] * 2000)
        assert await _staged_in_order(admin, "big") == ids
        async with admin.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hstrlen(f"streamq:{{big}}:job:{job_id}", "p")
            sizes = await pipe.execute()
        assert min(sizes) == max(sizes) > 200 * 1024
    calls = await _script_calls(admin)
    assert calls >= math.ceil(2000 * len(blob) / ENQUEUE_BATCH_BYTES)
    assert await _mean_script_ms(admin) < SLOW_MS


async def test_concurrent_big_enqueues_are_split_too(
    server: LocalRedis, admin: aioredis.Redis
) -> None:
    """Enqueues that arrive together share script calls, within the same bounds."""
    blob = b"c" * (100 * 1024)
    async with streamq.QueueManager(server.url) as qm:
        queue = qm.get_queue("together")

        async def enqueue(n: int) -> None:
            await queue.enqueue(blob, job_id=f"job-{n}")

        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(enqueue, n)
        assert (await queue.stats()).waiting == 200
    assert await _script_calls(admin) >= math.ceil(200 * len(blob) / ENQUEUE_BATCH_BYTES)
    assert await _mean_script_ms(admin) < SLOW_MS


async def test_a_big_batch_runs_in_order(server: LocalRedis) -> None:
    """Through the stream too: some jobs take the fast path, the rest wait staged."""
    async with streamq.QueueManager(server.url, shutdown_grace=5) as qm:
        queue = qm.get_queue("ordered")
        started: list[int] = []
        await queue.consume(lambda job: started.append(job.data[0]), concurrency=1)
        ids = await queue.enqueue_many([[n, b"d" * 20_000] for n in range(3000)])
        await queue.wait_for(ids[-1], timeout=30)
        assert started == list(range(3000))

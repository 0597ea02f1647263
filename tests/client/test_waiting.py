"""``wait_for`` at scale: waiters share the manager's one subscription to the queue's channel,
so any number of them hold no connection while they wait and are woken by the finish itself,
not by polling; the manager stays usable meanwhile; a finish published while the subscription
was lost still reaches them."""

from __future__ import annotations

import datetime
import decimal
import enum
import time
import uuid
from typing import Any

import anyio
import msgspec
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.testing.localcluster import LocalCluster
from streamq.testing.localserver import LocalRedis
from tests.helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster, pytest.mark.timeout(60)]

WAITERS = 1000


async def test_a_thousand_waiters_hold_no_connection_and_wake_on_the_finish(
    redis_url: str,
    redis_server: LocalRedis | LocalCluster,
    redis: aioredis.Redis,
    queue_name: str,
) -> None:
    # A pool of 20: a connection per waiter (a blocking pop each) used it up at the 21st.
    async with streamq.QueueManager(redis_url, max_connections=20, shutdown_grace=5) as qm:
        queue = qm.get_queue(queue_name)
        job_id = await queue.enqueue("W", job_id="W")
        standalone = isinstance(redis_server, LocalRedis)
        before = len(await redis.client_list()) if standalone else 0
        results: list[Any] = []
        woken_at: list[float] = []
        started_at: list[float] = []

        async def waiter() -> None:
            results.append(await queue.wait_for(job_id, timeout=30))
            woken_at.append(time.monotonic())

        async def handle(job: streamq.Job[str]) -> str:
            started_at.append(time.monotonic())
            return f"done {job.data}"

        async with anyio.create_task_group() as tg:
            for _ in range(WAITERS):
                tg.start_soon(waiter)
            await wait_until(lambda: _waiters(redis, queue_name, "W", WAITERS), what="waiters")
            if standalone:
                # The lane and one subscription, not one connection per waiter.
                assert len(await redis.client_list()) - before <= 5

            # The manager works meanwhile: the registry, replaying a dead job, a consumer, and
            # the scheduler's wake-ups (a delayed job runs when due, not at its 5 s safety net).
            assert queue_name in await qm.queues()
            other = qm.get_queue(f"{queue_name}-other")
            await other.enqueue(1, job_id="dies")
            failing = await other.consume(_fail, max_retries=0)
            await wait_until(lambda: _dead(other), what="a dead job")
            await failing.stop()
            assert await other.retry_dead("dies") == 1
            enqueued = time.monotonic()
            delayed = await other.enqueue(2, start_delay=0.3)
            await other.consume(lambda job: job.data)
            assert await other.wait_for(delayed, timeout=10) == 2
            assert time.monotonic() - enqueued < 2.0
            assert results == []

            await queue.consume(handle)
        assert results == ["done W"] * WAITERS
        # Woken by the finish: the safety-net re-read comes only every 5 s.
        assert max(woken_at) - started_at[0] < 2.0


async def test_waiters_on_different_jobs_each_get_their_own_result(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    ids = await queue.enqueue_many(range(200))
    results: dict[str, Any] = {}

    async def waiter(job_id: str) -> None:
        results[job_id] = await queue.wait_for(job_id, timeout=30)

    async with anyio.create_task_group() as tg:
        for job_id in ids:
            tg.start_soon(waiter, job_id)
        await queue.consume(lambda job: job.data + 1000, concurrency=20)
    assert results == {job_id: n + 1000 for n, job_id in enumerate(ids)}


async def test_a_finish_published_while_the_subscription_is_lost_still_wakes_the_waiter(
    server: LocalRedis, queue_name: str
) -> None:
    # A server of the module's own: new connections are refused for a moment.
    redis_url = server.url
    redis = aioredis.Redis.from_url(redis_url)
    release = anyio.Event()
    results: list[Any] = []

    async def handle(job: streamq.Job[int]) -> int:
        await release.wait()
        return job.data * 2

    async with (
        streamq.QueueManager(redis_url) as waiting,
        streamq.QueueManager(redis_url) as working,
    ):
        job_id = await working.get_queue(queue_name).enqueue(21, job_id="R")
        await working.get_queue(queue_name).consume(handle)
        queue = waiting.get_queue(queue_name)

        async def waiter() -> None:
            results.append(await queue.wait_for(job_id, timeout=30))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await wait_until(lambda: _waiters(redis, queue_name, "R", 1), what="the waiter")
            registered = time.monotonic()
            # Cut the subscriptions and refuse new connections (those open stay), so the finish
            # is published while nobody listens.
            connected = len(await redis.client_list())
            await redis.config_set("maxclients", connected - 1)
            try:
                await redis.client_kill_filter(_type="pubsub")
                release.set()
                await wait_until(lambda: _state(queue, job_id, "completed"), what="completed")
            finally:
                await redis.config_set("maxclients", 10000)
        await redis.aclose()
        # The subscription's confirmation, once it is back, sent the waiter to look again; its
        # own re-read would have come 5 s after it registered.
        assert results == [42]
        assert time.monotonic() - registered < 4.0


async def _fail(job: streamq.Job[Any]) -> None:
    raise ValueError("fails once")


async def _dead(queue: streamq.Queue[Any]) -> bool:
    return (await queue.stats()).dead == 1


async def _state(queue: streamq.Queue[Any], job_id: str, state: str) -> bool:
    job = await queue.get_job(job_id)
    return job is not None and job.state == state


async def _waiters(redis: aioredis.Redis, queue_name: str, job_id: str, waiters: int) -> bool:
    """Whether ``waiters`` wait_for calls registered on the job (its record's count)."""
    registered = await redis.hget(f"streamq:{{{queue_name}}}:job:{job_id}", "w")
    return registered is not None and int(registered) == waiters


class _Colour(enum.Enum):
    RED = "red"


class _Point(msgspec.Struct):
    x: int


async def test_results_come_back_as_their_messagepack_image_as_the_readme_says(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    aware = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=datetime.UTC)
    returned = {
        "tuple": (1, 2),
        "set": {3},
        "naive": datetime.datetime(2026, 12, 5, 12, 0),
        "aware": aware,
        "date": datetime.date(2026, 12, 5),
        "uuid": uuid.UUID(int=1),
        "decimal": decimal.Decimal("1.50"),
        "enum": _Colour.RED,
        "struct": _Point(1),
        "bytes": b"\x00\x01",
    }
    queue = qm.get_queue(queue_name)
    await queue.consume(lambda job: returned)
    result = await queue.wait_for(await queue.enqueue(None), timeout=5)
    assert result == {
        "tuple": [1, 2],
        "set": [3],
        "naive": "2026-12-05T12:00:00",
        "aware": aware,
        "date": "2026-12-05",
        "uuid": "00000000-0000-0000-0000-000000000001",
        "decimal": "1.50",
        "enum": "red",
        "struct": {"x": 1},
        "bytes": b"\x00\x01",
    }

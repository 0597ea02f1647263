"""Faults from Redis's side: lost replies, a destroyed group, a busy server, gone instances."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.testing.localserver import LocalRedis

from ..helpers import wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_server() -> Iterator[LocalRedis]:
    """A server of this test's own, free to be tampered with."""
    with LocalRedis() as server:
        yield server


@pytest.fixture
async def own_redis(own_server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(own_server.url, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()


async def test_entries_whose_delivery_reply_was_lost_are_taken_up(
    own_server: LocalRedis, own_redis: aioredis.Redis, queue_name: str
) -> None:
    async with streamq.QueueManager(own_server.url) as qm:
        queue = qm.get_queue(queue_name)
        attempts: dict[str, int] = {}

        async def handle(job: streamq.Job[Any]) -> None:
            attempts[job.data] = job.attempt

        consumer = await queue.consume(handle, visibility_timeout=60)
        await queue.wait_for(await queue.enqueue("warm-up"), timeout=5)
        # Redis delivers an entry to the consumer, but the consumer never sees the reply...
        stream = f"streamq:{{{queue_name}}}:stream"
        await own_redis.xadd(stream, {"j": "lost", "p": _payload("lost")})
        await own_redis.xreadgroup(queue_name, consumer.name, {stream: ">"}, count=1)
        # ...and its connection drops: it must take the entry up, well before the timeout.
        await own_redis.client_kill_filter(_type="normal", skipme=True)
        await wait_until(lambda: "lost" in attempts, timeout=10, what="the lost entry to run")
        assert attempts["lost"] == 1


def _payload(data: Any) -> bytes:
    import msgspec

    return msgspec.msgpack.encode([time.time(), 0, None, None, data])


async def test_consumer_survives_its_group_being_destroyed_while_redis_refuses_writes(
    own_server: LocalRedis, own_redis: aioredis.Redis, queue_name: str
) -> None:
    async with streamq.QueueManager(own_server.url) as qm:
        queue = qm.get_queue(queue_name)
        done: list[str] = []
        consumer = await queue.consume(lambda job: done.append(job.data))
        await queue.wait_for(await queue.enqueue("before"), timeout=5)
        await own_redis.config_set("maxmemory", "1")  # recreating the group fails (OOM)...
        await own_redis.delete(f"streamq:{{{queue_name}}}:stream")
        await anyio.sleep(1.0)
        await own_redis.config_set("maxmemory", "0")  # ...until the server takes writes again
        assert consumer.running
        job_id = await queue.enqueue("after")
        await queue.wait_for(job_id, timeout=15)
        assert done == ["before", "after"]


async def test_a_busy_server_during_the_ack_causes_no_second_run(
    own_server: LocalRedis, own_redis: aioredis.Redis, queue_name: str
) -> None:
    await own_redis.config_set("lua-time-limit", "50")  # others get BUSY after 50 ms
    runs: list[int] = []
    finishing = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> None:
        runs.append(job.attempt)
        finishing.set()
        await anyio.sleep(0.1)  # the ack is sent while the slow script below runs

    async with streamq.QueueManager(own_server.url) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(handle, visibility_timeout=5)
        job_id = await queue.enqueue(1)
        with anyio.fail_after(5):
            await finishing.wait()
        slow = aioredis.Redis.from_url(own_server.url, protocol=2)
        busy_loop = (
            "local t = redis.call('TIME')[1] + 2 while tonumber(redis.call('TIME')[1]) < t do end"
        )
        await slow.eval(busy_loop, 0)
        await slow.aclose()
        await queue.wait_for(job_id, timeout=15)
        await queue.wait_for(await queue.enqueue(2), timeout=15)
    assert runs == [1, 1], "the job ran twice"


async def test_groups_of_gone_instances_are_removed_and_the_stream_trimmed(
    own_server: LocalRedis, own_redis: aioredis.Redis, queue_name: str
) -> None:
    stream = f"streamq:{{{queue_name}}}:stream"
    async with streamq.QueueManager(own_server.url, group_idle_timeout=1.0) as gone:
        await gone.get_queue(queue_name).consume(lambda job: None, consumer_group="gone-instance")
    seen: list[int] = []
    async with streamq.QueueManager(own_server.url, group_idle_timeout=1.0) as live:
        queue = live.get_queue(queue_name)
        await queue.consume(lambda job: seen.append(job.data), consumer_group="live-instance")
        for n in range(20):
            await queue.enqueue(n)
        await wait_until(lambda: len(seen) == 20, what="the live group to get every job")

        async def only_live_group_and_empty_stream() -> bool:
            await queue.enqueue("keep trimming")  # trims run after acks
            groups = {g["name"].decode() for g in await own_redis.xinfo_groups(stream)}
            return groups == {"live-instance"} and await own_redis.xlen(stream) <= 1

        await wait_until(only_live_group_and_empty_stream, timeout=15, what="the gone group")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # decided in Redis: one loop is enough
@pytest.mark.parametrize("trimmer_idle", [1.5, 3600.0])
async def test_a_live_group_is_never_removed_as_idle(
    own_server: LocalRedis, own_redis: aioredis.Redis, queue_name: str, trimmer_idle: float
) -> None:
    """A live consumer marks its group alive often enough for a group idle timeout shorter
    than its usual 5 s, and a manager set to a shorter timeout (the one trimming here) judges
    other managers' groups by their own."""
    stream = f"streamq:{{{queue_name}}}:stream"
    seen: list[int] = []
    async with (
        streamq.QueueManager(own_server.url, group_idle_timeout=1.5) as live,
        streamq.QueueManager(own_server.url, group_idle_timeout=trimmer_idle) as trimmer,
        streamq.QueueManager(own_server.url) as default,
    ):
        queue = live.get_queue(queue_name)
        await queue.consume(lambda job: seen.append(job.data), consumer_group="short-idle")
        await trimmer.get_queue(queue_name).consume(lambda job: None, consumer_group="trimmer")
        await default.get_queue(queue_name).consume(lambda job: None, consumer_group="default")
        groups = {"short-idle", "trimmer", "default"}
        for n in range(60):  # 6 s: past a registration of every consumer, trims every 2 s
            await queue.enqueue(n)
            await anyio.sleep(0.1)
            names = {g["name"].decode() for g in await own_redis.xinfo_groups(stream)}
            assert names == groups, f"after {n / 10:.1f}s: {names}"
        await wait_until(lambda: len(seen) >= 60, what="every job")
    assert seen == list(range(60))


async def test_a_plain_function_past_its_timeout_never_runs_beside_its_retry(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    lock = threading.Lock()
    running = peak = 0
    attempts: list[int] = []

    def slow(job: streamq.Job[Any]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            attempts.append(job.attempt)
        time.sleep(0.5)
        with lock:
            running -= 1

    queue = qm.get_queue(queue_name)
    await queue.consume(slow, timeout=0.1, max_retries=2, backoff=0.01)
    job_id = await queue.enqueue(1)
    with pytest.raises(streamq.JobFailed, match="timeout"):
        await queue.wait_for(job_id, timeout=10)
    assert attempts == [1, 2, 3]
    assert peak == 1

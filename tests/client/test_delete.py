"""Deleting a queue: every job in every state and every key of it, in batches; refused while
consumers of it are live unless forced."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


async def _keys_of(redis: aioredis.Redis, queue_name: str) -> list[str]:
    found = [k async for k in redis.scan_iter(match=f"streamq:{{{queue_name}}}:*", count=1000)]
    return sorted(k.decode() if isinstance(k, bytes) else k for k in found)


async def test_delete_removes_every_job_and_key_of_the_queue_and_nothing_else(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    other = qm.get_queue(f"{queue_name}-other")
    kept_id = await other.enqueue("stays")
    hold = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> Any:
        if job.data == "fails":
            raise ValueError("for the dead letters")
        if job.data == "retries":
            raise ValueError("again later")
        if job.data == "holds":
            await hold.wait()
        return job.data

    consumer = await queue.consume(handle, max_retries=0, rate_limit=(1000, 1))
    retrying = await queue.consume(handle, consumer_group="slow-retries", backoff=3600)
    done = await queue.enqueue("completes")
    assert await queue.wait_for(done, timeout=5, group=queue_name) == "completes"
    dead = await queue.enqueue("fails")
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(dead, timeout=5, group=queue_name)
    await queue.enqueue("retries")
    held = await queue.enqueue("holds")
    await wait_until(lambda: _active(queue, held), what="a job to run")
    await queue.enqueue("later", start_delay=3600)
    await queue.enqueue_many(["urgent"] * 3, priority=9)
    await queue.schedule_recurring("tick", "tick", interval_seconds=3600, start_delay=3600)
    await wait_until(lambda: _retrying(queue), what="a retry to wait")
    assert len(await _keys_of(redis, queue_name)) > 10
    hold.set()
    await consumer.stop()
    await retrying.stop()

    assert await queue.delete() >= 8
    assert await _keys_of(redis, queue_name) == []
    assert queue_name not in await qm.queues()
    assert await queue.get_job(done) is None and await queue.dead_letters() == []
    # Another queue is untouched, and a deleted one can be used again at once.
    assert await other.get_job(kept_id) is not None
    assert await queue.enqueue("anew")
    assert queue_name in await qm.queues()


async def _active(queue: streamq.Queue[Any], job_id: str) -> bool:
    info = await queue.get_job(job_id)
    return info is not None and info.state == "active"


async def _retrying(queue: streamq.Queue[Any]) -> bool:
    return (await queue.stats()).retrying == 2  # both failures, in the slow-retries group


async def test_delete_refuses_while_consumers_are_live_unless_forced(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    consumer = await queue.consume(lambda job: job.data)
    assert await queue.wait_for(await queue.enqueue("one"), timeout=5) == "one"
    await queue.enqueue("later", start_delay=3600)
    with pytest.raises(streamq.QueueInUse, match=rf"1 consumer\(s\).*{consumer.name}.*force"):
        await queue.delete()
    assert (await queue.stats()).delayed == 1  # refused: nothing deleted
    assert await queue.delete(force=True) == 2
    assert (await queue.stats()).delayed == 0
    # The consumer still running finds its group gone and runs the jobs enqueued afterwards.
    assert await queue.wait_for(await queue.enqueue("after"), timeout=10) == "after"


async def test_a_big_queue_is_deleted_in_batches(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue_many(range(2500), priority=1)  # staged: no consumer yet
    await queue.enqueue_many(range(1200), start_delay=3600)
    assert await queue.delete() == 3700
    assert await _keys_of(redis, queue_name) == []

"""Inspecting: job states, waiting for results, queue stats."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


async def test_job_states_through_its_life(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue({"n": 1})
    waiting = await queue.get_job(job_id)
    assert waiting is not None
    assert (waiting.state, waiting.attempts, waiting.result, waiting.error) == (
        "waiting",
        0,
        None,
        None,
    )
    assert waiting.enqueued_at is not None and waiting.finished_at is None

    release = anyio.Event()
    running = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> dict[str, int]:
        running.set()
        await release.wait()
        return {"n": job.data["n"] + 1}

    await queue.consume(handle)
    with anyio.fail_after(5):
        await running.wait()
    active = await queue.get_job(job_id)
    assert active is not None and active.state == "active"
    stats = await queue.stats()
    assert (stats.active, stats.waiting) == (1, 0)

    release.set()
    assert await queue.wait_for(job_id, timeout=5) == {"n": 2}
    done = await queue.get_job(job_id)
    assert done is not None
    assert (done.state, done.attempts, done.result) == ("completed", 1, {"n": 2})
    assert done.finished_at is not None and done.enqueued_at is not None
    assert done.finished_at >= done.enqueued_at


async def test_unknown_jobs(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    assert await queue.get_job("nope") is None
    with pytest.raises(streamq.JobNotFound, match="nope"):
        await queue.wait_for("nope", timeout=1)


async def test_wait_for_times_out(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue(1)  # nobody consumes
    with pytest.raises(TimeoutError):
        await queue.wait_for(job_id, timeout=0.2)


async def test_many_waiters_on_one_job_all_wake(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue(5)
    results: list[Any] = []

    async def waiter() -> None:
        results.append(await queue.wait_for(job_id, timeout=5))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(waiter)
        await anyio.sleep(0.05)  # let the waiters register before the job runs
        await queue.consume(lambda job: job.data * 2)
    assert results == [10] * 5


async def test_stats_count_every_state(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue_many(range(4))
    stats = await queue.stats()
    assert (stats.waiting, stats.active, stats.completed, stats.dead) == (4, 0, 0, 0)
    assert stats.oldest_waiting_age >= 0

    async def handle(job: streamq.Job[int]) -> None:
        if job.data == 3:
            raise ValueError("three")

    await queue.consume(handle, max_retries=0)
    await wait_until(lambda: _settled(queue), what="completed 3, dead 1")
    stats = await queue.stats()
    assert (stats.waiting, stats.active, stats.retrying, stats.delayed) == (0, 0, 0, 0)
    assert stats.oldest_waiting_age == 0.0


async def _settled(queue: streamq.Queue[Any]) -> bool:
    stats = await queue.stats()
    return (stats.completed, stats.dead) == (3, 1)


async def test_oldest_waiting_age_grows(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue(1)
    await wait_until(lambda: _age_at_least(queue, 0.1), what="the age to grow")


async def _age_at_least(queue: streamq.Queue[Any], seconds: float) -> bool:
    return (await queue.stats()).oldest_waiting_age >= seconds


async def test_waiters_that_give_up_leave_no_registration_behind(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue(1)  # nobody consumes yet
    with pytest.raises(TimeoutError):
        await queue.wait_for(job_id, timeout=2.5)  # several blocking slices
    job_key = f"streamq:{{{queue_name}}}:job:{job_id}"
    assert await redis.hget(job_key, "w") in (None, b"0")

    await queue.consume(lambda job: "ok")
    assert await queue.wait_for(job_id, timeout=5) == "ok"
    assert await redis.hget(job_key, "w") is None

"""Broadcast jobs: every consumer group keeps its own state, attempts, result and error, and the
job holds its id until every group that received it finished."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq

from ..helpers import wait_until
from .spawned import SpawnWorker, next_start, spawn_worker

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]

__all__ = ("spawn_worker",)


async def test_each_group_has_its_own_state_and_result_and_the_id_is_held_until_all_finished(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    runs: dict[str, list[int]] = {"g-fast": [], "g-slow": []}
    release = anyio.Event()

    async def fast(job: streamq.Job[Any]) -> str:
        runs["g-fast"].append(job.data["v"])
        return "fast"

    async def slow(job: streamq.Job[Any]) -> str:
        runs["g-slow"].append(job.data["v"])
        await release.wait()
        return "slow"

    await queue.consume(fast, consumer_group="g-fast")
    await queue.consume(slow, consumer_group="g-slow")
    assert await queue.enqueue({"v": 1}, job_id="cfg") == "cfg"
    assert await queue.wait_for("cfg", timeout=5, group="g-fast") == "fast"
    await wait_until(lambda: runs["g-slow"] == [1], what="g-slow to start the job")

    info = await queue.get_job("cfg")
    assert info is not None
    assert (info.state, info.result) == ("active", None)
    assert info.groups == {"g-fast": "completed", "g-slow": "active"}
    # Unfinished in one group: the id is held, enqueueing it again changes nothing.
    assert await queue.enqueue({"v": 2}, job_id="cfg") == "cfg"
    fast_part = await queue.get_job("cfg", group="g-fast")
    assert fast_part is not None
    assert (fast_part.state, fast_part.result, fast_part.attempts) == ("completed", "fast", 1)
    assert fast_part.finished_at is not None
    slow_part = await queue.get_job("cfg", group="g-slow")
    assert slow_part is not None
    assert (slow_part.state, slow_part.result, slow_part.attempts) == ("active", None, 1)
    assert await queue.get_job("cfg", group="g-none") is None
    with pytest.raises(streamq.InvalidArgument, match=r"g-fast, g-slow.*pass group="):
        await queue.wait_for("cfg", timeout=5)
    with pytest.raises(streamq.InvalidArgument, match="'g-none' does not read"):
        await queue.wait_for("cfg", timeout=5, group="g-none")

    release.set()
    assert await queue.wait_for("cfg", timeout=5, group="g-slow") == "slow"
    done = await queue.get_job("cfg")
    assert done is not None
    assert (done.state, done.result, done.error) == ("completed", None, None)
    assert done.groups == {"g-fast": "completed", "g-slow": "completed"}
    assert done.finished_at is not None
    # Finished in every group: the id may be enqueued again, and each group runs it once more.
    assert await queue.enqueue({"v": 3}, job_id="cfg") == "cfg"
    assert await queue.wait_for("cfg", timeout=5, group="g-slow") == "slow"
    assert await queue.wait_for("cfg", timeout=5, group="g-fast") == "fast"
    assert runs == {"g-fast": [1, 3], "g-slow": [1, 3]}


async def test_a_group_that_dead_letters_the_job_fails_it_naming_that_group(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    runs = {"ok": 0, "bad": 0}
    healthy = False

    async def ok(job: streamq.Job[Any]) -> str:
        runs["ok"] += 1
        return "ok"

    async def bad(job: streamq.Job[Any]) -> str:
        runs["bad"] += 1
        if not healthy:
            raise ValueError("bad config")
        return "fixed"

    await queue.consume(ok, consumer_group="ok")
    await queue.consume(bad, consumer_group="bad", max_retries=0)
    job_id = await queue.enqueue("x")
    assert await queue.wait_for(job_id, timeout=5, group="ok") == "ok"
    with pytest.raises(streamq.JobFailed, match="bad config"):
        await queue.wait_for(job_id, timeout=5, group="bad")
    info = await queue.get_job(job_id)
    assert info is not None
    assert info.state == "dead"
    assert info.error is not None and "group bad" in info.error and "bad config" in info.error
    assert info.groups == {"ok": "completed", "bad": "dead"}
    bad_part = await queue.get_job(job_id, group="bad")
    assert bad_part is not None
    assert (bad_part.state, bad_part.attempts) == ("dead", 1)
    assert bad_part.error == "ValueError: bad config"

    # Replayed in the group it died in only; the job is unfinished again until it completes.
    healthy = True
    assert await queue.retry_dead(job_id) == 1
    assert await queue.wait_for(job_id, timeout=5, group="bad") == "fixed"
    info = await queue.get_job(job_id)
    assert info is not None
    assert (info.state, info.error) == ("completed", None)
    assert info.groups == {"ok": "completed", "bad": "completed"}
    assert runs == {"ok": 1, "bad": 2}


async def test_a_retry_in_one_group_is_that_groups_alone(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    attempts: dict[str, list[int]] = {"steady": [], "flaky": []}
    go_on = anyio.Event()

    async def steady(job: streamq.Job[Any]) -> int:
        attempts["steady"].append(job.attempt)
        return job.attempt

    async def flaky(job: streamq.Job[Any]) -> int:
        attempts["flaky"].append(job.attempt)
        if job.attempt == 1:
            raise ValueError("first try")
        await go_on.wait()
        return job.attempt

    await queue.consume(steady, consumer_group="steady")
    await queue.consume(flaky, consumer_group="flaky", backoff=0.05)
    job_id = await queue.enqueue("x", job_id="once")
    assert await queue.wait_for(job_id, timeout=5, group="steady") == 1
    await wait_until(lambda: attempts["flaky"] == [1, 2], what="the retry in flaky to start")
    info = await queue.get_job(job_id)
    assert info is not None
    assert info.state == "active"
    assert info.groups == {"steady": "completed", "flaky": "active"}
    flaky_part = await queue.get_job(job_id, group="flaky")
    assert flaky_part is not None
    assert (flaky_part.attempts, flaky_part.error) == (2, "ValueError: first try")
    assert await queue.enqueue("again", job_id="once") == "once"

    go_on.set()
    assert await queue.wait_for(job_id, timeout=5, group="flaky") == 2
    info = await queue.get_job(job_id)
    assert info is not None
    assert info.state == "completed"
    assert attempts == {"steady": [1], "flaky": [1, 2]}


async def test_the_id_is_held_while_a_killed_groups_job_waits_to_be_reclaimed(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, spawn_worker: SpawnWorker
) -> None:
    queue = qm.get_queue(queue_name)
    worker = spawn_worker("hang", vt=1.0, group="g-killed")
    assert await redis.blpop([f"test:{queue_name}:ready"], timeout=15) is not None
    runs: dict[str, list[int]] = {"g-a": [], "g-b": [], "g-killed": []}

    def handler(group: str) -> Any:
        async def handle(job: streamq.Job[Any]) -> str:
            runs[group].append(job.attempt)
            return group

        return handle

    await queue.consume(handler("g-a"), consumer_group="g-a")
    await queue.consume(handler("g-b"), consumer_group="g-b")
    assert await queue.enqueue({"v": 1}, job_id="cfg") == "cfg"
    assert await next_start(redis, queue_name) == ("cfg", 1)
    assert await queue.wait_for("cfg", timeout=5, group="g-a") == "g-a"
    assert await queue.wait_for("cfg", timeout=5, group="g-b") == "g-b"
    worker.kill()
    worker.wait(10)

    info = await queue.get_job("cfg")
    assert info is not None
    assert info.state == "active"  # its entry is still owed by the killed consumer
    assert info.groups == {"g-a": "completed", "g-b": "completed", "g-killed": "active"}
    assert await queue.enqueue({"v": 2}, job_id="cfg") == "cfg"

    await queue.consume(handler("g-killed"), consumer_group="g-killed", visibility_timeout=1.0)
    assert await queue.wait_for("cfg", timeout=10, group="g-killed") == "g-killed"
    info = await queue.get_job("cfg")
    assert info is not None
    assert info.state == "completed"
    assert info.groups == {"g-a": "completed", "g-b": "completed", "g-killed": "completed"}
    assert runs == {"g-a": [1], "g-b": [1], "g-killed": [2]}


async def test_cancel_of_a_broadcast_job_reaches_every_group_that_owes_it(
    qm: streamq.QueueManager, queue_name: str, redis_url: str
) -> None:
    queue = qm.get_queue(queue_name)
    started, stopped = anyio.Event(), anyio.Event()
    ran: dict[str, list[str]] = {"g-fast": [], "g-slow": [], "g-late": []}

    def recorder(group: str) -> Any:
        async def handle(job: streamq.Job[Any]) -> str:
            ran[group].append(job.data)
            if group == "g-slow" and job.data == "long":
                started.set()
                try:
                    await anyio.sleep(30)
                finally:
                    stopped.set()
            return group

        return handle

    await queue.consume(recorder("g-fast"), consumer_group="g-fast")
    await queue.consume(recorder("g-slow"), consumer_group="g-slow")
    # g-late exists (it is owed every job) but has no consumer yet.
    async with streamq.QueueManager(redis_url) as late:
        consumer = await late.get_queue(queue_name).consume(
            recorder("g-late"), consumer_group="g-late"
        )
        await consumer.stop()
    job_id = await queue.enqueue("long")
    assert await queue.wait_for(job_id, timeout=5, group="g-fast") == "g-fast"
    with anyio.fail_after(10):
        await started.wait()
    assert await queue.cancel(job_id) is True
    with anyio.fail_after(3):
        await stopped.wait()
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "cancelled"
    assert info.groups == {"g-fast": "completed", "g-slow": "cancelled", "g-late": "cancelled"}
    with pytest.raises(streamq.JobCancelled):
        await queue.wait_for(job_id, timeout=5, group="g-slow")
    # The group that was not delivered the job yet acknowledges it without running it.
    await queue.consume(recorder("g-late"), consumer_group="g-late")
    marker = await queue.enqueue("after")
    assert await queue.wait_for(marker, timeout=5, group="g-late") == "g-late"
    assert ran == {"g-fast": ["long", "after"], "g-slow": ["long", "after"], "g-late": ["after"]}

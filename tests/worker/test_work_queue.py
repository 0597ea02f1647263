"""Work queues (a shared group) and broadcast (a group per instance), end to end."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import anyio
import msgspec
import pytest
import redis.asyncio as aioredis

import streamq

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


async def test_each_job_of_a_shared_group_runs_exactly_once_across_two_managers(
    redis_url: str, queue_name: str
) -> None:
    runs: Counter[int] = Counter()
    by_manager: Counter[str] = Counter()
    all_done = anyio.Event()

    def handler_for(manager: str) -> Any:
        async def handle(job: streamq.Job[int]) -> int:
            runs[job.data] += 1
            by_manager[manager] += 1
            await anyio.sleep(0.001)  # let both managers take turns
            if sum(runs.values()) >= 300:
                all_done.set()
            return job.data * 2

        return handle

    async with (
        streamq.QueueManager(redis_url) as first,
        streamq.QueueManager(redis_url) as second,
    ):
        await first.get_queue(queue_name, int).consume(handler_for("first"), concurrency=5)
        await second.get_queue(queue_name, int).consume(handler_for("second"), concurrency=5)
        producer = first.get_queue(queue_name, int)
        ids = [await producer.enqueue(n) for n in range(150)]
        ids += await producer.enqueue_many(range(150, 300))
        with anyio.fail_after(20):
            await all_done.wait()
        assert await producer.wait_for(ids[-1], timeout=5) == 299 * 2
        await wait_until(lambda: _stats_settled(producer), what="all acknowledged")

    assert sorted(runs) == list(range(300))
    assert set(runs.values()) == {1}, "a job ran more than once"
    assert by_manager["first"] > 0 and by_manager["second"] > 0, by_manager


async def _stats_settled(queue: streamq.Queue[Any]) -> bool:
    stats = await queue.stats()
    return stats.completed == 300 and stats.active == 0 and stats.waiting == 0


async def test_every_broadcast_group_receives_every_job(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    received: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    for group, seen in received.items():

        async def handle(job: streamq.Job[Any], seen: list[int] = seen) -> None:
            seen.append(job.data)

        await queue.consume(handle, consumer_group=f"cache-sync:{qm.instance_id}:{group}")

    await queue.enqueue_many(range(40))
    await wait_until(lambda: all(len(s) == 40 for s in received.values()), what="40 jobs each")
    for seen in received.values():
        assert sorted(seen) == list(range(40))
    # Entries every group acknowledged are trimmed from the stream.
    await wait_until(
        lambda: _stream_empty(redis, queue_name), timeout=10, what="the stream to be trimmed"
    )


async def _stream_empty(redis: aioredis.Redis, queue_name: str) -> bool:
    return await redis.xlen(f"streamq:{{{queue_name}}}:stream") == 0


async def test_a_new_group_receives_the_jobs_still_retained(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue_many(["before-1", "before-2"])
    seen: list[str] = []

    async def handle(job: streamq.Job[Any]) -> None:
        seen.append(job.data)  # before any await: in the order the jobs started

    await queue.consume(handle, consumer_group="late")
    await queue.enqueue("after")
    await wait_until(lambda: len(seen) == 3, what="all three jobs")
    assert seen == ["before-1", "before-2", "after"]


async def test_a_single_group_deletes_entries_as_they_finish(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    done = anyio.Event()
    count = 0

    async def handle(job: streamq.Job[Any]) -> None:
        nonlocal count
        count += 1
        if count == 50:
            done.set()

    await queue.consume(handle)
    ids = await queue.enqueue_many(range(50))
    with anyio.fail_after(10):
        await done.wait()
    await queue.wait_for(ids[-1], timeout=5)
    await wait_until(lambda: _stream_empty(redis, queue_name), what="entries deleted")


async def test_concurrency_bounds_running_handlers(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    running = peak = finished = 0

    async def handle(job: streamq.Job[Any]) -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.02)
        running -= 1
        finished += 1

    await queue.consume(handle, concurrency=3)
    await queue.enqueue_many(range(30))
    await wait_until(lambda: finished == 30, what="30 jobs")
    assert peak == 3


async def test_plain_function_handlers_run_in_a_worker_thread(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    main_thread = threading.get_ident()

    def handle(job: streamq.Job[Any]) -> bool:
        return threading.get_ident() != main_thread

    job_id = await queue.enqueue("x")
    await queue.consume(handle)
    assert await queue.wait_for(job_id, timeout=5) is True


class Export(msgspec.Struct):
    user_id: int
    fmt: str = "csv"


async def test_typed_queue_delivers_typed_data(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name, Export)
    got: list[Export] = []

    async def handle(job: streamq.Job[Export]) -> str:
        got.append(job.data)
        return f"{job.data.user_id}.{job.data.fmt}"

    job_id = await queue.enqueue(Export(user_id=7))
    await queue.consume(handle)
    assert await queue.wait_for(job_id, timeout=5) == "7.csv"
    assert got == [Export(user_id=7)]


async def test_job_carries_its_metadata(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    jobs: list[streamq.Job[Any]] = []
    await queue.consume(jobs.append, max_retries=4)
    job_id = await queue.enqueue({"k": [1, 2]})
    await queue.wait_for(job_id, timeout=5)
    (job,) = jobs
    assert job.id == job_id
    assert job.data == {"k": [1, 2]}
    assert job.queue == queue_name
    assert job.attempt == 1
    assert job.max_retries == 4
    assert job.priority == 0
    info = await queue.get_job(job_id)
    assert info is not None and info.enqueued_at is not None
    assert abs(job.enqueued_at - info.enqueued_at) < 1e-3


async def test_long_jobs_are_shared_out_between_consumers_started_apart(
    redis_url: str, queue_name: str
) -> None:
    """The first consumer used to read ahead as many jobs as its concurrency: 4 jobs of 1 s on
    2 consumers of concurrency 2 took 2 s, the second consumer idle."""
    async with (
        streamq.QueueManager(redis_url, shutdown_grace=5) as first,
        streamq.QueueManager(redis_url, shutdown_grace=5) as second,
    ):
        ran: dict[str, int] = {"first": 0, "second": 0}

        def handler(who: str) -> Any:
            async def handle(job: streamq.Job[Any]) -> None:
                ran[who] += 1
                await anyio.sleep(1.0)

            return handle

        ids = await first.get_queue(queue_name).enqueue_many(range(4))
        started = time.monotonic()
        await first.get_queue(queue_name).consume(handler("first"), concurrency=2)
        await anyio.sleep(0.03)
        await second.get_queue(queue_name).consume(handler("second"), concurrency=2)
        for job_id in ids:
            await first.get_queue(queue_name).wait_for(job_id, timeout=10)
        assert time.monotonic() - started < 1.8
        assert ran == {"first": 2, "second": 2}


@pytest.mark.parametrize("prefetch", [0, 3])
async def test_a_fixed_prefetch_runs_every_job(
    qm: streamq.QueueManager, queue_name: str, prefetch: int
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.consume(lambda job: job.data, concurrency=2, prefetch=prefetch)
    ids = await queue.enqueue_many(range(50))
    assert [await queue.wait_for(i, timeout=10) for i in ids] == list(range(50))

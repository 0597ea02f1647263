"""Finished jobs keep their records for ``result_ttl`` and, per queue, only the newest
``keep_finished`` of them: Redis memory stays bounded however many jobs flow."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


def _key(queue_name: str, suffix: str) -> str:
    return f"streamq:{{{queue_name}}}:{suffix}"


async def test_only_the_newest_keep_finished_records_stay(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name, keep_finished=5)
    assert qm.get_queue(queue_name) is queue  # got again without settings: the same queue

    async def handle(job: streamq.Job[int]) -> int:
        if job.data == 19:
            raise ValueError("the last one fails")
        return job.data * 2

    await queue.consume(handle, max_retries=0, concurrency=1)
    ids = [await queue.enqueue(n, job_id=f"n{n}") for n in range(20)]
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(ids[-1], timeout=10)
    # Completed and dead jobs count alike; the oldest records are removed as new ones finish.
    kept = [i for i in ids if await queue.get_job(i) is not None]
    assert kept == ids[-5:]
    info = await queue.get_job(ids[-2])
    assert info is not None and (info.state, info.result) == ("completed", 36)
    assert await redis.llen(_key(queue_name, "finished")) == 5
    # Dead letters stay until purged, whatever keep_finished says.
    assert [d.job_id for d in await queue.dead_letters()] == ["n19"]


async def test_a_record_whose_id_a_new_job_holds_is_not_removed(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name, keep_finished=2)
    gate = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> Any:
        if job.data == "held":
            await gate.wait()
        return job.data

    await queue.consume(handle, concurrency=4)
    assert await queue.wait_for(await queue.enqueue("first", job_id="reused"), timeout=5)
    await queue.enqueue("held", job_id="reused")  # finished before: a new job under its id
    await wait_until(lambda: _state(queue, "reused", "active"), what="the new job to run")
    for n in range(5):  # push the old finish far past keep_finished
        assert await queue.wait_for(await queue.enqueue(n), timeout=5) == n
    info = await queue.get_job("reused")
    assert info is not None and info.state == "active"
    gate.set()
    assert await queue.wait_for("reused", timeout=5) == "held"


async def _state(queue: streamq.Queue[Any], job_id: str, state: str) -> bool:
    info = await queue.get_job(job_id)
    return info is not None and info.state == state


async def test_the_manager_sets_the_default_and_a_queue_overrides_it_once(
    redis_url: str, queue_name: str
) -> None:
    async with streamq.QueueManager(redis_url, keep_finished=3, result_ttl=60) as qm:
        queue = qm.get_queue(queue_name)
        assert (queue.retention.keep, queue.retention.ttl) == (3, 60)
        other = qm.get_queue(f"{queue_name}-b", keep_finished=0)
        assert (other.retention.keep, other.retention.ttl) == (0, 60)
        with pytest.raises(streamq.InvalidArgument, match="give them the first time only"):
            qm.get_queue(queue_name, keep_finished=4)
        assert qm.get_queue(queue_name, keep_finished=3) is queue  # the same settings again
        await queue.consume(lambda job: job.data, concurrency=1)
        ids = [await queue.enqueue(n) for n in range(6)]
        await queue.wait_for(ids[-1], timeout=5)
        assert [await queue.get_job(i) is not None for i in ids] == [False] * 3 + [True] * 3
    bad: Any
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(streamq.InvalidArgument, match="keep_finished"):
            streamq.QueueManager(redis_url, keep_finished=bad)


async def test_stats_tell_the_memory_a_queue_takes(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    empty = (await queue.stats()).memory_bytes
    await queue.enqueue_many(["x" * 1000] * 1000)
    await queue.enqueue_many(["y" * 1000] * 1000, priority=5)  # staged: in the records
    grown = (await queue.stats()).memory_bytes - empty
    # 2,000 payloads of 1,000 bytes, in the stream and in staged jobs' records.
    assert 2_000_000 <= grown <= 4_000_000, grown


async def test_stats_tell_the_memory_of_a_fair_queue_s_keys_and_jobs(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)

    async def in_redis() -> int:
        """What every key of the queue takes, summed."""
        total = 0
        async for key in qm.redis.scan_iter(match=f"streamq:{{{queue_name}}}:*", count=1000):
            total += await qm.redis.memory_usage(key) or 0
        return total

    empty, empty_in_redis = (await queue.stats()).memory_bytes, await in_redis()
    # Keyed jobs wait in their keys' own sets: 300 keys of one job, and one of 300.
    for n in range(300):
        await queue.enqueue({"n": n}, fairness_key=f"tenant-{n}")
    await queue.enqueue_many([{"n": n} for n in range(300)], fairness_key="big")
    grown = (await queue.stats()).memory_bytes - empty
    grown_in_redis = await in_redis() - empty_in_redis
    # An estimate from samples, but of everything: the keys' sets and their jobs' records.
    assert 0.7 <= grown / grown_in_redis <= 1.3, (grown, grown_in_redis)

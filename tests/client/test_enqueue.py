"""Producing: ids, dedup by job id, typed queues, bad input that writes nothing."""

from __future__ import annotations

import datetime
from typing import Any, cast

import anyio
import msgspec
import pytest
import redis.asyncio as aioredis

import streamq

from ..helpers import pause_redis, unpause_redis

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


class Export(msgspec.Struct):
    user_id: int
    fmt: str = "csv"


async def _keys_of(redis: aioredis.Redis, queue_name: str) -> list[bytes]:
    return sorted(cast("list[bytes]", await redis.keys(f"streamq:{{{queue_name}}}:*")))


async def test_enqueue_returns_unique_ids_and_records_waiting_jobs(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    ids = [await queue.enqueue(n) for n in range(3)]
    assert len(set(ids)) == 3
    for job_id in ids:
        info = await queue.get_job(job_id)
        assert info is not None and info.state == "waiting" and info.attempts == 0
    stats = await queue.stats()
    assert stats.waiting == 3 and stats.groups == 0


async def test_enqueue_many_keeps_order_and_handles_big_batches(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    ids = await queue.enqueue_many(range(1234))
    assert len(ids) == len(set(ids)) == 1234
    assert await queue.enqueue_many([]) == []
    started: list[str] = []

    async def handle(job: streamq.Job[Any]) -> None:
        started.append(job.id)

    await queue.consume(handle, concurrency=1)
    await queue.wait_for(ids[-1], timeout=20)
    assert started == ids


async def test_job_id_is_not_enqueued_twice_while_unfinished(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    assert await queue.enqueue("first", job_id="invoice-42") == "invoice-42"
    assert await queue.enqueue("second", job_id="invoice-42") == "invoice-42"
    assert (await queue.stats()).waiting == 1

    data: list[str] = []
    await queue.consume(lambda job: data.append(job.data))
    await queue.wait_for("invoice-42", timeout=5)
    assert data == ["first"]
    # Finished: the id may be used again.
    await queue.enqueue("third", job_id="invoice-42")
    await queue.wait_for("invoice-42", timeout=5)
    assert data == ["first", "third"]


async def test_typed_queue_rejects_bad_data_and_writes_nothing(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name, Export)
    with pytest.raises(
        streamq.EncodeError, match=r"not a valid Export.* at `\$.user_id`"
    ) as caught:
        await queue.enqueue({"user_id": "not a number"})  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)
    assert caught.value.queue == queue_name
    with pytest.raises(streamq.EncodeError):
        await queue.enqueue_many([Export(1), {"fmt": "csv"}])  # type: ignore[list-item]
    assert await _keys_of(redis, queue_name) == []
    await queue.enqueue(Export(user_id=1))  # the right type goes through


async def test_unencodable_data_is_rejected(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    for bad in (object(), {1, 2, object()}, lambda: None):
        with pytest.raises(streamq.EncodeError, match="cannot encode"):
            await queue.enqueue(bad)
    assert await _keys_of(redis, queue_name) == []


async def test_rich_builtin_types_round_trip(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name, dict[str, datetime.datetime])
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    got: list[Any] = []
    await queue.consume(lambda job: got.append(job.data))
    await queue.wait_for(await queue.enqueue({"at": when}), timeout=5)
    assert got == [{"at": when}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_delay": -1}, "start_delay"),
        ({"start_delay": float("nan")}, "start_delay"),
        ({"priority": "high"}, "priority"),
        ({"job_id": ""}, "job_id"),
        ({"job_id": 7}, "job_id"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout": 0}, "timeout"),
    ],
)
async def test_bad_enqueue_arguments(
    qm: streamq.QueueManager, queue_name: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await qm.get_queue(queue_name).enqueue("x", **kwargs)


async def test_concurrent_enqueues_share_round_trips_and_all_land(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    ids: list[str] = []

    async def produce(n: int) -> None:
        for k in range(10):
            kwargs: dict[str, Any] = {"priority": k % 3} if n % 2 else {}
            ids.append(await queue.enqueue((n, k), **kwargs))

    before = int((await redis.info("stats"))["total_reads_processed"])
    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(produce, n)
    reads = int((await redis.info("stats"))["total_reads_processed"]) - before
    assert len(set(ids)) == 200
    assert reads < 150, f"{reads} requests for 200 concurrent enqueues"
    seen: list[Any] = []
    await queue.consume(lambda job: seen.append(tuple(job.data)))
    for job_id in ids:
        await queue.wait_for(job_id, timeout=10)
    assert sorted(seen) == sorted((n, k) for n in range(20) for k in range(10))


async def test_a_failed_batch_raises_in_every_producer_in_it(queue_name: str) -> None:
    from streamq.testing.localserver import LocalRedis

    server = LocalRedis().start()
    try:
        async with streamq.QueueManager(server.url) as qm:
            queue = qm.get_queue(queue_name)
            await queue.enqueue("fine")
            server.stop()  # by its PID
            failures: list[BaseException] = []

            async def produce() -> None:
                try:
                    await queue.enqueue("lost")
                except Exception as exc:
                    failures.append(exc)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for _ in range(5):
                        tg.start_soon(produce)
            assert len(failures) == 5
    finally:
        server.stop()


async def test_no_answer_in_time_is_a_redis_timeout_that_says_the_job_may_be_written(
    redis_url: str, queue_name: str, redis: aioredis.Redis
) -> None:
    # It was redis-py's bare TimeoutError, neither a StreamqError nor saying what happened.
    async with streamq.QueueManager(redis_url, socket_timeout=1.0, replica_timeout=0.5) as qm:
        queue = qm.get_queue(queue_name)
        await queue.enqueue("warm")  # the lane is connected: the pause stalls a command
        await pause_redis(redis, 1500)
        with pytest.raises(streamq.RedisTimeout, match="may or may not have been added") as info:
            await queue.enqueue("stalled", job_id="stalled")
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, streamq.StreamqError)
        # Once Redis answers again, enqueueing the same id is safe: it is deduplicated.
        await unpause_redis(redis)
        assert await queue.enqueue("stalled", job_id="stalled") == "stalled"
        assert (await queue.stats()).waiting == 2

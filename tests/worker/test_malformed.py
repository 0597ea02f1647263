"""Entries the consumer cannot decode go to the dead letters; the consumer keeps going."""

from __future__ import annotations

import pickle
from typing import Any, cast

import msgspec
import pytest
import redis.asyncio as aioredis

import streamq

from ..helpers import wait_until

pytestmark = pytest.mark.anyio


class Order(msgspec.Struct):
    order_id: int


async def test_malformed_entries_are_dead_lettered_and_the_consumer_goes_on(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name, Order)
    stream = f"streamq:{{{queue_name}}}:stream"
    await redis.xadd(stream, {"j": "garbage", "p": b"\xc1\xff not msgpack"})
    await redis.xadd(stream, {"j": "pickled", "p": pickle.dumps({"order_id": 1})})
    await redis.xadd(stream, {"something": "else"})
    await redis.xadd(stream, {"j": b"\xff\xfe", "p": b"x"})
    await redis.xadd(stream, {"j": "bad-attempt", "p": b"x", "a": "many"})
    # A payload that no longer validates: the queue's type changed since it was written.
    stale = msgspec.msgpack.encode([1.0, 0, None, None, {"order_id": "not an int"}])
    await redis.xadd(stream, {"j": "stale-type", "p": stale})

    handled: list[int] = []
    await queue.consume(lambda job: handled.append(job.data.order_id), max_retries=0)
    good = await queue.enqueue(Order(order_id=7))
    assert await queue.wait_for(good, timeout=5) is None
    assert handled == [7]

    await wait_until(lambda: _dead_count(queue, 6), what="six dead letters")
    letters = {d.job_id: d for d in await queue.dead_letters()}
    assert letters["garbage"].error.startswith("undecodable entry")
    assert "undecodable entry" in letters["pickled"].error
    assert letters["pickled"].data == pickle.dumps({"order_id": 1}), "raw bytes, never unpickled"
    no_id, bad_id = [d for job_id, d in letters.items() if job_id.startswith("entry-")]
    assert "no job id" in no_id.error
    assert "UnicodeDecodeError" in bad_id.error
    # The path is the one in the job's data, not in streamq's envelope around it ($[4]).
    assert "Expected `int`, got `str` - at `$.order_id`" in letters["stale-type"].error
    assert "bad-attempt" in letters
    assert (await queue.stats()).active == 0


async def _dead_count(queue: streamq.Queue[Any], n: int) -> bool:
    return (await queue.stats()).dead == n


async def test_pending_entry_deleted_from_the_stream_is_dropped_by_reclaim(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    """A consumer died holding an entry that someone then deleted: nothing to run, no crash."""
    queue = qm.get_queue(queue_name)
    stream = f"streamq:{{{queue_name}}}:stream"
    await redis.xgroup_create(stream, queue_name, id="0", mkstream=True)
    await redis.xadd(stream, {"j": "held-by-a-dead-consumer", "p": b"\xc0"})
    reply = await redis.xreadgroup(queue_name, "ghost", {stream: ">"}, count=1)
    entry_id = cast("list[Any]", reply)[0][1][0][0]
    await redis.xdel(stream, entry_id)

    consumer = await queue.consume(lambda job: job.data, visibility_timeout=0.2)
    await wait_until(lambda: _nothing_pending(redis, stream, queue_name), what="the PEL to empty")
    assert await queue.wait_for(await queue.enqueue("after"), timeout=5) == "after"
    assert consumer.running


async def _nothing_pending(redis: aioredis.Redis, stream: str, group: str) -> bool:
    summary = await redis.xpending(stream, group)
    return bool(summary["pending"] == 0)

"""Looking into queues: the registry of queues, listings of jobs by state, groups, schedules."""

from __future__ import annotations

import secrets
import time
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.client.inspection import overview

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


async def _never(job: streamq.Job[Any]) -> None:
    raise AssertionError("not started in this test")


async def test_the_registry_lists_every_queue_used_and_nothing_else(redis_url: str) -> None:
    prefix = f"reg{secrets.token_hex(3)}"
    async with streamq.QueueManager(redis_url, prefix=prefix) as qm:
        assert await qm.queues() == []
        await qm.get_queue("emails").enqueue({"to": "a@example.com"})
        await qm.get_queue("bulk").enqueue_many([1, 2])
        await qm.get_queue("nightly").schedule_recurring("n", {}, 3600)
        consumer = await qm.get_queue("reports").consume(_never)
        await consumer.stop()
        qm.get_queue("only-opened")  # opening a queue is not using it
    async with streamq.QueueManager(redis_url, prefix=prefix) as fresh:
        assert await fresh.queues() == ["bulk", "emails", "nightly", "reports"]
    async with streamq.QueueManager(redis_url, prefix=prefix + "x") as other:
        assert await other.queues() == []


async def test_waiting_jobs_are_listed_in_the_order_they_run(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    before = time.time()
    # No consumer has given the ready window room yet: all wait staged, best first.
    first = await queue.enqueue({"n": 1})
    second = await queue.enqueue({"n": 2})
    await queue.enqueue({"n": 3})
    urgent = await queue.enqueue({"n": 4}, priority=5)
    listed = await queue.jobs("waiting")
    assert [(j.data["n"], j.priority) for j in listed] == [(4, 5), (1, 0), (2, 0), (3, 0)]
    assert [j.id for j in listed[:3]] == [urgent, first, second]
    assert all(j.state == "waiting" and j.due_at is None and j.attempts == 0 for j in listed)
    assert all(j.enqueued_at is not None and j.enqueued_at >= before - 1 for j in listed)
    assert [j.data["n"] for j in await queue.jobs("waiting", limit=2)] == [4, 1]


async def test_delayed_jobs_are_listed_soonest_first_with_their_due_time(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    now = time.time()
    late = await queue.enqueue("late", start_delay=600)
    soon = await queue.enqueue("soon", start_delay=300, priority=2)
    listed = await queue.jobs("delayed")
    assert [(j.id, j.data, j.priority) for j in listed] == [(soon, "soon", 2), (late, "late", 0)]
    assert listed[0].due_at is not None and abs(listed[0].due_at - (now + 300)) < 5
    assert await queue.jobs("waiting") == []


async def test_jobs_waiting_to_retry_show_their_error_attempts_and_group(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)

    async def fail(job: streamq.Job[Any]) -> None:
        raise RuntimeError(f"boom on {job.data}")

    await queue.consume(fail, backoff=600, consumer_group="workers")
    job_id = await queue.enqueue("x")

    async def retrying() -> bool:
        return len(await queue.jobs("retrying")) == 1

    await wait_until(retrying)
    [retry] = await queue.jobs("retrying")
    assert (retry.id, retry.data, retry.attempts, retry.group) == (job_id, "x", 1, "workers")
    assert retry.error is not None and "RuntimeError: boom on x" in retry.error
    assert retry.due_at is not None and retry.due_at > time.time() + 500


async def test_groups_show_their_consumers(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    assert await queue.groups() == []
    release = anyio.Event()

    async def hold(job: streamq.Job[Any]) -> None:
        await release.wait()

    consumer = await queue.consume(hold, consumer_group="g1")
    await queue.enqueue(1)

    async def held() -> bool:
        groups = await queue.groups()
        return len(groups) == 1 and groups[0].pending == 1

    await wait_until(held)
    [group] = await queue.groups()
    assert group.name == "g1"
    assert [(c.name, c.pending) for c in group.consumers] == [(consumer.name, 1)]
    assert group.consumers[0].idle < 30
    assert group.lag in (0, None)  # None before Redis 7
    release.set()

    [summary] = await overview(qm, [queue_name])
    assert (summary.name, [g.name for g in summary.groups]) == (queue_name, ["g1"])


async def test_one_dead_letter_by_id(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)

    async def fail(job: streamq.Job[Any]) -> None:
        raise ValueError("no good")

    await queue.consume(fail, max_retries=0)
    job_id = await queue.enqueue({"k": "v"})
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(job_id, timeout=10)
    letter = await queue.dead_letter(job_id)
    assert letter is not None
    assert (letter.job_id, letter.data, letter.attempts) == (job_id, {"k": "v"}, 1)
    assert "ValueError: no good" in letter.error
    assert await queue.dead_letter("not-dead") is None


async def test_recurring_schedules_are_listed(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    await queue.schedule_recurring("hourly", {"r": 1}, 3600, start_delay=60)
    await queue.schedule_recurring("nightly", "n", cron="0 3 * * *", tz="Europe/Paris", priority=3)
    listed = {s.job_id: s for s in await queue.recurring_schedules()}
    hourly, nightly = listed["hourly"], listed["nightly"]
    assert (hourly.interval_seconds, hourly.cron, hourly.data) == (3600.0, None, {"r": 1})
    assert abs(hourly.next_run_at - (time.time() + 60)) < 5
    assert (nightly.cron, nightly.tz, nightly.priority, nightly.data) == (
        "0 3 * * *",
        "Europe/Paris",
        3,
        "n",
    )
    assert nightly.interval_seconds is None


async def test_an_undecodable_entry_is_listed_with_its_raw_bytes(
    qm: streamq.QueueManager, redis: aioredis.Redis, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue("fine")
    await redis.xadd(f"streamq:{{{queue_name}}}:stream", {"j": "odd", "p": b"\xc1garbage"})
    await redis.xadd(f"streamq:{{{queue_name}}}:stream", {"x": "no job id"})
    listed = await queue.jobs("waiting")
    # The stream's entries come first: the staged backlog waits behind them.
    assert [j.data for j in listed] == [b"\xc1garbage", b"", "fine"]
    assert (listed[0].id, listed[0].enqueued_at) == ("odd", None)
    assert listed[1].id.startswith("entry-")


async def test_bad_listing_arguments_are_clear_errors(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    with pytest.raises(ValueError, match=r"waiting, delayed, retrying.*dead_letters"):
        await queue.jobs("dead")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 1,000"):
        await queue.jobs("waiting", limit=5000)
    with pytest.raises(ValueError, match="limit"):
        await queue.jobs("waiting", limit=0)


async def test_active_and_recently_completed_jobs_are_listed(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    release = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> Any:
        if job.data == "holds":
            await release.wait()
        return {"done": job.data}

    await queue.consume(handle, concurrency=4)
    for n in range(3):
        await queue.wait_for(await queue.enqueue(n, job_id=f"c{n}"), timeout=5)
    held = await queue.enqueue("holds", job_id="held")
    await wait_until(lambda: _listed(queue, "active", ["held"]), what="the held job")
    [active] = await queue.jobs("active")
    assert (active.data, active.group, active.attempts) == ("holds", queue_name, 1)
    assert active.enqueued_at is not None and active.result is None

    completed = await queue.jobs("completed")
    assert [j.id for j in completed] == ["c2", "c1", "c0"]  # newest first
    assert completed[0].result == {"done": 2} and completed[0].data is None
    assert completed[0].finished_at is not None and completed[0].enqueued_at is not None
    assert [j.id for j in await queue.jobs("completed", limit=2)] == ["c2", "c1"]
    release.set()
    await queue.wait_for(held, timeout=5)
    assert await queue.jobs("active") == []
    assert [j.id for j in await queue.jobs("completed")] == ["held", "c2", "c1", "c0"]


async def _listed(queue: streamq.Queue[Any], state: Any, ids: list[str]) -> bool:
    return [j.id for j in await queue.jobs(state)] == ids

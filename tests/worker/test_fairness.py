"""Fair queues: jobs of different fairness keys start round-robin, priority orders a key's own,
delayed and retried jobs go back to their key, and an empty key leaves nothing in Redis."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

import streamq

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]

#: For the long ones: the order of starts is decided in Redis, not by the event loop or the
#: server's version (the short tests cover those).
one_loop = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@pytest.mark.newest_servers
@one_loop
async def test_one_tenants_backlog_does_not_delay_anothers_jobs(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    """Tenant A enqueues 20,000 jobs, then tenant B 10: with one consumer at concurrency 1,
    B's jobs all start within the next 30 starts."""
    queue = qm.get_queue(queue_name)
    starts: list[str] = []
    enough = anyio.Event()

    async def handle(job: streamq.Job[str]) -> None:
        starts.append(job.data)
        if starts.count("B") == 10:
            enough.set()

    await queue.consume(handle, concurrency=1)
    await queue.enqueue_many(["A"] * 20_000, fairness_key="tenant-a")
    before_b = len(starts)
    for _ in range(10):
        await queue.enqueue("B", fairness_key="tenant-b")
    with anyio.fail_after(30):
        await enough.wait()
    last_b = max(i for i, who in enumerate(starts) if who == "B")
    print(f"fairness: B enqueued after {before_b} starts; its 10th started at {last_b}")
    assert last_b < before_b + 30
    stats = await queue.stats()
    assert stats.fairness_keys == 1 and stats.waiting > 19_000


@pytest.mark.newest_servers
@one_loop
async def test_every_100_consecutive_starts_serve_every_tenant_with_waiting_work(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    tenants = [f"t{n:02}" for n in range(50)]
    for tenant in tenants:
        await queue.enqueue_many([tenant] * 200, fairness_key=tenant)
    stats = await queue.stats()
    assert (stats.fairness_keys, stats.waiting) == (50, 10_000)
    starts: list[str] = []
    await queue.consume(lambda job: starts.append(job.data), concurrency=1)
    await wait_until(lambda: len(starts) == 10_000, timeout=60, what="every job")
    last_start = {tenant: max(i for i, t in enumerate(starts) if t == tenant) for tenant in tenants}
    for begin in range(0, len(starts) - 100, 50):
        window = set(starts[begin : begin + 100])
        waiting = {t for t in tenants if last_start[t] >= begin + 100}
        assert waiting <= window, (begin, sorted(waiting - window))


async def test_priority_orders_a_keys_own_jobs_not_other_keys(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue_many(["a-low-1", "a-low-2"], fairness_key="a")
    await queue.enqueue("a-urgent", fairness_key="a", priority=10)
    await queue.enqueue_many(["b-1", "b-2", "b-3"], fairness_key="b")
    starts: list[str] = []
    await queue.consume(lambda job: starts.append(job.data), concurrency=1, prefetch=0)
    await wait_until(lambda: len(starts) == 6, what="every job")
    assert starts == ["a-urgent", "b-1", "a-low-1", "b-2", "a-low-2", "b-3"]


async def test_jobs_without_a_key_take_turns_as_a_key_of_their_own(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue_many([f"plain-{n}" for n in range(3)], priority=1)  # staged: no window
    await queue.enqueue_many([f"a-{n}" for n in range(3)], fairness_key="a")
    starts: list[str] = []
    await queue.consume(lambda job: starts.append(job.data), concurrency=1, prefetch=0)
    await wait_until(lambda: len(starts) == 6, what="every job")
    assert starts == ["plain-0", "a-0", "plain-1", "a-1", "plain-2", "a-2"]


async def test_delayed_and_retried_jobs_go_back_to_their_key(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    tries: dict[str, int] = {}

    async def handle(job: streamq.Job[str]) -> str:
        tries[job.data] = job.attempt
        if job.data == "flaky" and job.attempt == 1:
            raise ValueError("once")
        return job.data

    await queue.consume(handle, backoff=0.05)
    later = await queue.enqueue("later", fairness_key="a", start_delay=0.2)
    flaky = await queue.enqueue("flaky", fairness_key="a")
    assert await queue.wait_for(flaky, timeout=10) == "flaky"
    assert await queue.wait_for(later, timeout=10) == "later"
    assert tries == {"flaky": 2, "later": 1}
    info = await queue.get_job(later)
    assert info is not None and info.state == "completed"


@pytest.mark.newest_servers
@one_loop
async def test_keys_that_come_and_go_leave_nothing_behind(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    """Tenants with a few jobs each come and go for a few seconds while a consumer keeps up;
    some of their staged jobs are cancelled. Afterwards Redis holds nothing for any key."""
    queue = qm.get_queue(queue_name)
    done: list[str] = []
    await queue.consume(lambda job: done.append(job.id), concurrency=5)
    enqueued: list[str] = []
    cancelled = 0
    deadline = time.monotonic() + 3
    n = 0
    while time.monotonic() < deadline:
        key = f"tenant-{n}"
        ids = await queue.enqueue_many(range(3), fairness_key=key)
        enqueued += ids
        if n % 7 == 0 and await queue.cancel(ids[-1]):
            cancelled += 1
        n += 1
    await wait_until(lambda: len(done) + cancelled >= len(enqueued), timeout=20, what="all jobs")

    async def settled() -> bool:
        # The last acknowledgements go in batches, and cancelled entries read ahead are
        # acknowledged without running: until then some are still active or waiting.
        stats = await queue.stats()
        return (stats.waiting, stats.active, stats.fairness_keys) == (0, 0, 0)

    await wait_until(settled, timeout=10, what="the queue to be empty")
    left = [k async for k in redis.scan_iter(match=f"streamq:{{{queue_name}}}:*")]
    fair = sorted(k.decode() for k in left if b"fair" in k or b"kstaged" in k)
    print(f"fairness: {n} keys came and went ({cancelled} cancels); left: {fair}")
    assert fair == []


async def test_a_cancelled_keyed_job_leaves_its_key(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue("x", fairness_key="only")
    assert (await queue.stats()).fairness_keys == 1
    assert await queue.cancel(job_id)
    stats = await queue.stats()
    assert (stats.fairness_keys, stats.waiting) == (0, 0)


async def test_a_bad_fairness_key_is_refused_and_nothing_is_written(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    for bad, match in (
        ("", "non-empty"),
        ("a b", "whitespace"),
        ("k" * 201, "at most 200"),
        (3, "str"),
    ):
        with pytest.raises(streamq.InvalidArgument, match=match):
            await queue.enqueue("x", fairness_key=bad)  # type: ignore[arg-type]
        with pytest.raises(streamq.InvalidArgument, match=match):
            await queue.enqueue_many(["x"], fairness_key=bad)  # type: ignore[arg-type]
    assert (await queue.stats()).waiting == 0


async def test_flow_steps_take_their_fairness_keys_turns(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    """A tenant's fan-in of 20 children and another tenant's 2-step flow: the second tenant's
    step starts among the first ones, not after the 20."""
    work, report = f"{queue_name}-work", f"{queue_name}-report"
    starts: list[str] = []
    await qm.get_queue(report).consume(lambda job: job.data)
    big = streamq.group(
        *(streamq.Step(work, f"big-{n}", fairness_key="big") for n in range(20)),
        then=streamq.Step(report, "big done", fairness_key="big"),
    )
    await qm.enqueue_flow(big)
    small = streamq.Step(
        report, "small done", children=[streamq.Step(work, "small-0", fairness_key="small")]
    )
    small_id = await qm.enqueue_flow(small)
    await qm.get_queue(work).consume(lambda job: starts.append(job.data), concurrency=1)
    assert await qm.get_queue(report).wait_for(small_id, timeout=10) == "small done"
    assert starts.index("small-0") <= 2, starts
    with pytest.raises(streamq.InvalidArgument, match="whitespace"):
        streamq.Step(work, 1, fairness_key="a b")

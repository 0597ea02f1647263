"""Per-key limits of fair queues: ``consume(per_key_concurrency=N, per_key_rate_limit=(n, s))``
hold across every consumer of a group, a dead consumer's slots come back, broadcast groups keep
their own counts, and keys under limits leave nothing in Redis once empty."""

from __future__ import annotations

import random
import signal
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from typing import Any, cast

import anyio
import pytest

import streamq
from streamq.store.keys import QueueKeys

from ..helpers import wait_until
from .spawned import SpawnWorker, next_start, spawn_worker

__all__ = ("spawn_worker",)

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]

one_loop = pytest.mark.parametrize("anyio_backend", ["asyncio"])


class Running:
    """How many jobs of each key run at once, counted in Redis by the handlers (whatever process
    or manager they run in), and the most seen."""

    def __init__(self, redis: Any, queue_name: str) -> None:
        self._redis = redis
        self._key = f"test:{{{queue_name}}}:running"
        self.peak: dict[str, int] = defaultdict(int)

    async def start(self, name: str) -> None:
        now = await self._redis.hincrby(self._key, name, 1)
        self.peak[name] = max(self.peak[name], now)

    async def end(self, name: str) -> None:
        await self._redis.hincrby(self._key, name, -1)


async def fair_state(redis: Any, queue_name: str) -> list[str]:
    """The queue's keys of fair-queue bookkeeping that exist."""
    found = [k async for k in redis.scan_iter(match=f"streamq:{{{queue_name}}}:*")]
    marks = (b"fair", b"kstaged", b"kact", b"kmoves", b"kstarts")
    return sorted(k.decode() for k in found if any(m in k for m in marks))


async def test_per_key_concurrency_holds_across_three_managers(
    redis_url: str, queue_name: str, redis: Any
) -> None:
    """Three managers at concurrency 10 each, per_key_concurrency=2: no key ever runs more than
    2 jobs at once (each reaches 2), while jobs without a key run many at once."""
    running = Running(redis, queue_name)
    done: list[str] = []
    keys = [f"tenant-{n}" for n in range(4)]

    async def handle(job: streamq.Job[str]) -> None:
        await running.start(job.data)
        await anyio.sleep(random.uniform(0.01, 0.03))
        await running.end(job.data)
        done.append(job.id)

    async with AsyncExitStack() as stack:
        managers = [
            await stack.enter_async_context(streamq.QueueManager(redis_url)) for _ in range(3)
        ]
        for manager in managers:
            await manager.get_queue(queue_name).consume(
                handle, concurrency=10, per_key_concurrency=2
            )
        queue = managers[0].get_queue(queue_name)
        for key in keys:
            await queue.enqueue_many([key] * 20, fairness_key=key)
        await queue.enqueue_many(["no key"] * 60)
        await wait_until(lambda: len(done) == 140, timeout=30, what="every job")
        print(f"fair limits: peaks {dict(running.peak)}")
        assert {key: running.peak[key] for key in keys} == dict.fromkeys(keys, 2)
        assert running.peak["no key"] > 2
        await assert_no_fair_state(redis, queue_name)


async def assert_no_fair_state(redis: Any, queue_name: str) -> None:
    """Within a few seconds (the last acknowledgements go in batches) nothing of the fair-queue
    bookkeeping is left but the live consumers' registration of their limits."""
    deadline = time.monotonic() + 10
    while True:
        left = await fair_state(redis, queue_name)
        left = [k for k in left if not k.endswith((":fair:limits", ":fair:limits:by"))]
        if not left or time.monotonic() > deadline:
            break
        await anyio.sleep(0.05)
    # Counted entries say which path forgot to count them off.
    counted = {k: await redis.zrange(k, 0, -1) for k in left if ":kact:" in k}
    assert left == [], counted


@one_loop
@pytest.mark.slow
async def test_a_killed_workers_per_key_slots_come_back_after_the_visibility_timeout(
    qm: streamq.QueueManager, queue_name: str, redis: Any, spawn_worker: SpawnWorker
) -> None:
    """A worker runs key K's 2 jobs (its limit) and is SIGKILLed: K's other jobs stay held
    back until the dead worker's 2 are reclaimed after the visibility timeout and finished, and
    K never runs more than 2 at once."""
    queue = qm.get_queue(queue_name)
    worker = spawn_worker("hang", vt=1.0, per_key_concurrency=2)
    assert await redis.blpop([f"test:{queue_name}:ready"], timeout=20) is not None
    ids = await queue.enqueue_many(range(5), fairness_key="k")
    started = {(await next_start(redis, queue_name))[0] for _ in range(2)}
    assert started == set(ids[:2])

    async def held_back() -> bool:
        # K is at its limit: its other 3 jobs wait in its set, not in the window.
        full = await redis.zscore(f"streamq:{{{queue_name}}}:fair:full", "k")
        return full is not None and await redis.xlen(f"streamq:{{{queue_name}}}:stream") == 2

    await wait_until(held_back, timeout=10, what="key k held back at its concurrency")
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)

    running = Running(redis, queue_name)
    done: list[tuple[str, int]] = []

    async def handle(job: streamq.Job[int]) -> None:
        await running.start("k")
        await anyio.sleep(0.05)
        await running.end("k")
        done.append((job.id, job.attempt))

    began = time.monotonic()
    await queue.consume(handle, concurrency=10, visibility_timeout=1.0, per_key_concurrency=2)
    await wait_until(lambda: len(done) == 5, timeout=20, what="every job of k")
    took = time.monotonic() - began
    print(f"fair limits: k's jobs done {done} in {took:.1f}s")
    assert sorted(job_id for job_id, _ in done) == sorted(ids)
    # The killed worker's two ran again (they had started, so this is their second attempt).
    assert {job_id for job_id, attempt in done if attempt == 2} == started
    # The new consumer (1 s of the dead one's silence): + the two finished.
    assert took >= 0.9
    assert running.peak["k"] == 2


@pytest.mark.slow
@one_loop
async def test_a_per_key_rate_limit_holds_for_three_keys_while_jobs_without_a_limit_run_freely(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    """per_key_rate_limit=(5, 1.0): 3 keys of 15 jobs each start at most 5 per second each,
    all at once, while 3,000 jobs without a key (no limit) all run before the keys are through."""
    queue = qm.get_queue(queue_name)
    starts: dict[str, list[float]] = defaultdict(list)
    keys = ["k1", "k2", "k3"]
    # The permits, by the server's clock, as the start logs hold them (each start stays there
    # for the period, 1 s: read every 50 ms, none is missed). The handlers' own clock would
    # add how late each one runs after its permit, which a loaded machine stretches.
    logs = {key: QueueKeys("streamq", queue_name).key_starts(queue_name, key) for key in keys}
    permits: dict[str, dict[bytes, float]] = defaultdict(dict)

    async def read_logs() -> None:
        while True:
            for key, log in logs.items():
                logged = await qm.redis.zrange(log, 0, -1, withscores=True)
                permits[key].update(cast("list[tuple[bytes, float]]", logged))
            await anyio.sleep(0.05)

    async def handle(job: streamq.Job[str]) -> None:
        starts[job.data].append(time.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_logs)
        await queue.consume(handle, concurrency=10, per_key_rate_limit=(5, 1.0))
        for key in keys:
            await queue.enqueue_many([key] * 15, fairness_key=key)
        await queue.enqueue_many(["free"] * 3000)
        total = 3 * 15 + 3000
        await wait_until(lambda: sum(map(len, starts.values())) == total, timeout=30, what="all")
        await anyio.sleep(0.1)  # a last read of the logs
        tg.cancel_scope.cancel()
    free = starts["free"]
    for key in keys:
        granted = sorted(permits[key].values())  # server ms
        assert len(granted) == 15, granted
        closest = min(granted[i + 5] - granted[i] for i in range(len(granted) - 5))
        s = starts[key]
        span = s[-1] - s[0]
        print(f"fair limits: {key}: 15 starts over {span:.2f}s, 6 permits within {closest} ms")
        assert closest >= 1000
        assert span < 2.0 + 1.0  # served at its rate: 15 jobs at 5/s take just over 2 s
        assert max(free) < s[-1]
    print(f"fair limits: 3,000 unlimited jobs in {max(free) - min(free):.2f}s")


@pytest.mark.slow
async def test_broadcast_groups_keep_their_own_per_key_counts(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    """Two groups read every job, one with per_key_concurrency=1, the other 2: each group's
    count holds, and a retry in one group (its own entry) does not count in the other."""
    queue = qm.get_queue(queue_name)
    running = Running(redis, queue_name)
    done: dict[str, list[str]] = defaultdict(list)
    failed_once: set[str] = set()

    def handler(group: str) -> Any:
        async def handle(job: streamq.Job[str]) -> None:
            name = f"{group}/{job.data}"
            await running.start(name)
            await anyio.sleep(random.uniform(0.005, 0.02))
            await running.end(name)
            if group == "two" and job.data == "a" and job.id not in failed_once:
                failed_once.add(job.id)
                raise RuntimeError("once")
            done[group].append(job.id)

        return handle

    await queue.consume(handler("one"), consumer_group="one", per_key_concurrency=1, backoff=0.01)
    await queue.consume(handler("two"), consumer_group="two", per_key_concurrency=2, backoff=0.01)
    for key in ("a", "b"):
        await queue.enqueue_many([key] * 10, fairness_key=key)
    await wait_until(
        lambda: len(done["one"]) == len(done["two"]) == 20, timeout=30, what="both groups"
    )
    print(f"fair limits: broadcast peaks {dict(running.peak)}")
    assert running.peak["one/a"] == running.peak["one/b"] == 1
    assert running.peak["two/a"] <= 2 and running.peak["two/b"] <= 2
    assert len(failed_once) == 10
    await assert_no_fair_state(redis, queue_name)


async def test_keys_held_back_run_when_the_limits_go(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    """Jobs held back by per_key_concurrency=1 run as soon as no consumer sets the limit any
    more (the held-back key takes turns again)."""
    queue = qm.get_queue(queue_name)
    release = anyio.Event()
    running = Running(redis, queue_name)
    done: list[str] = []

    async def handle(job: streamq.Job[int]) -> None:
        await running.start("k")
        await release.wait()
        await running.end("k")
        done.append(job.id)

    limited = await queue.consume(handle, per_key_concurrency=1, concurrency=5)
    await queue.enqueue_many(range(4), fairness_key="k")
    await wait_until(lambda: running.peak["k"] == 1, what="the first job")
    await wait_until(
        lambda: _zscore(redis, f"streamq:{{{queue_name}}}:fair:full", "k"), what="k held back"
    )
    assert running.peak["k"] == 1
    await queue.consume(handle, concurrency=5)  # no limit
    release.set()
    await limited.stop()
    await wait_until(lambda: len(done) == 4, what="every job")
    assert await fair_state(redis, queue_name) == []


async def _zscore(redis: Any, key: str, member: str) -> bool:
    return await redis.zscore(key, member) is not None


@pytest.mark.slow
@pytest.mark.newest_servers
@one_loop
async def test_a_count_left_by_a_lost_entry_is_repaired(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    """An entry counted against a key that is no longer in the stream (what a path that forgot
    to say so would leave) holds the key back only until the scheduler's check finds it."""
    queue = qm.get_queue(queue_name)
    done: list[str] = []
    await redis.zadd(f"streamq:{{{queue_name}}}:kact:{queue_name}", {"k\t1-1": 0})
    await queue.consume(lambda job: done.append(job.id), per_key_concurrency=1)
    began = time.monotonic()
    await queue.enqueue_many(range(3), fairness_key="k")
    await wait_until(lambda: len(done) == 3, timeout=20, what="k's jobs")
    took = time.monotonic() - began
    print(f"fair limits: the lost entry was found after {took:.1f}s")
    assert took > 1  # it was held back first
    await assert_no_fair_state(redis, queue_name)


async def test_bad_per_key_limits_are_refused(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"per_key_concurrency": 0}, "per_key_concurrency"),
        ({"per_key_concurrency": "2"}, "per_key_concurrency"),
        ({"per_key_rate_limit": (5,)}, r"per_key_rate_limit must be \(max_jobs, per_seconds\)"),
        ({"per_key_rate_limit": (5, 0)}, "per_key_rate_limit's per_seconds"),
        ({"per_key_rate_limit": (0, 1.0)}, "per_key_rate_limit's max_jobs"),
    ]
    for kwargs, message in cases:
        with pytest.raises(streamq.InvalidArgument, match=message):
            await queue.consume(lambda job: None, **kwargs)

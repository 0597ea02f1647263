"""Fair queues under per-key limits for a minute (``make chaos``, or ``STREAMQ_CHAOS=full``; 15 s
in ``make test``, whose whole run must stay within CI's budget), on the newest standalone server
only (the other servers and the cluster run the shorter tests of ``test_fair_limits.py``)."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import anyio
import pytest

import streamq

from ..helpers import wait_until
from .test_fair_limits import Running, assert_no_fair_state

pytestmark = [pytest.mark.anyio, pytest.mark.newest_servers, pytest.mark.chaos]

SECONDS = 60.0 if os.environ.get("STREAMQ_CHAOS") == "full" else 15.0


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_keys_that_come_and_go_under_limits_for_a_minute_leave_nothing_behind(
    qm: streamq.QueueManager, queue_name: str, redis: Any, redis_url: str
) -> None:
    """For 60 s (15 s in the short run) tenants come and go (a few jobs each, some cancelled)
    on two managers' consumers with per_key_concurrency=2 and per_key_rate_limit=(20, 1.0): no
    key ever runs more than 2 at once, and afterwards Redis holds nothing for any tenant."""
    queue = qm.get_queue(queue_name)
    running = Running(redis, queue_name)
    done: list[str] = []

    async def handle(job: streamq.Job[str]) -> None:
        await running.start(job.data)
        await anyio.sleep(random.uniform(0, 0.02))
        await running.end(job.data)
        done.append(job.id)

    limits: dict[str, Any] = {"per_key_concurrency": 2, "per_key_rate_limit": (20, 1.0)}
    async with streamq.QueueManager(redis_url) as other:
        await queue.consume(handle, concurrency=8, **limits)
        await other.get_queue(queue_name).consume(handle, concurrency=8, **limits)
        count = {"enqueued": 0, "cancelled": 0}
        n = 0

        def owed() -> int:
            return count["enqueued"] - count["cancelled"] - len(done)

        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            key = f"tenant-{n}"
            ids = await queue.enqueue_many([key] * random.randint(1, 6), fairness_key=key)
            count["enqueued"] += len(ids)
            if n % 7 == 0 and await queue.cancel(ids[-1]):
                count["cancelled"] += 1
            n += 1
            # About as fast as the consumers run them: tenants come and go, backlogs stay short.
            await wait_until(lambda: owed() < 200, timeout=30, what="the consumers")
        await wait_until(lambda: owed() <= 0, timeout=30, what="every job")

        async def settled() -> bool:
            stats = await queue.stats()
            return (stats.waiting, stats.active, stats.fairness_keys) == (0, 0, 0)

        await wait_until(settled, timeout=10, what="the queue to be empty")
        await assert_no_fair_state(redis, queue_name)
    print(f"fair limits: {n} tenants came and went; jobs and cancels: {count}")
    assert max(running.peak.values()) == 2

"""Workflows under faults: worker processes SIGKILLed while a fan-in runs, and producers
SIGKILLed while they enqueue flows."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import streamq

from ..helpers import wait_until
from .spawned import SpawnWorker, spawn_worker

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.newest_servers,
    # The event loop is not what these test (the other flow tests run on both).
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
]

__all__ = ("spawn_worker",)  # the fixture

PRODUCER = Path(__file__).parent.parent / "tools" / "flow_producer.py"
CHILDREN = 1000


@pytest.mark.timeout(120)
async def test_a_fan_in_releases_its_parent_once_while_workers_are_sigkilled(
    qm: streamq.QueueManager, queue_name: str, redis: Any, spawn_worker: SpawnWorker
) -> None:
    """Workers run the children and relay their finishes; one is SIGKILLed every 0.5-1 s (and
    another started), so children are reclaimed, and outbox items are taken by relays that die
    before they delete them (another claims them)."""
    parent_queue = f"{queue_name}-parent"
    workers = [spawn_worker("flow", vt=1.0) for _ in range(2)]
    root_id = await qm.enqueue_flow(
        streamq.Step(
            parent_queue,
            "report",
            children=[streamq.Step(queue_name, i) for i in range(CHILDREN)],
        )
    )
    kills = 0
    deadline = time.monotonic() + 60
    while await redis.scard(f"test:{queue_name}:done") < CHILDREN:
        assert time.monotonic() < deadline, "the children did not all complete"
        await anyio.sleep(random.uniform(0.5, 1.0))
        victim = workers.pop(random.randrange(len(workers)))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        kills += 1
        workers.append(spawn_worker("flow", vt=1.0))

    async def parent_ran() -> bool:
        return bool(await redis.llen(f"test:{queue_name}:parent"))

    # An item a killed relay held is claimed after 10 s.
    await wait_until(parent_ran, timeout=30, what="the parent to run")
    await anyio.sleep(1.5)  # a second release would have run by now
    runs = [r.decode() for r in await redis.lrange(f"test:{queue_name}:parent", 0, -1)]
    print(f"flow fan-in: {CHILDREN} children, {kills} workers SIGKILLed, parent runs: {runs}")
    assert [run.split(":")[0] for run in runs] == [root_id] * len(runs)
    # Released once: any other run is a redelivery of that one job (attempt > 1).
    assert sum(run.split(":")[1] == "1" for run in runs) == 1
    assert all(run.endswith(f":{CHILDREN}") for run in runs), "every child's result"
    info = await qm.get_queue(parent_queue).get_job(root_id)
    assert info is not None and info.state == "completed"
    for child in info.children[:20]:
        child_info = await qm.get_queue(queue_name).get_job(child.id)
        assert child_info is not None and child_info.state == "completed"


@pytest.mark.timeout(120)
async def test_a_flow_half_written_by_a_sigkilled_producer_is_finished_or_undone(
    redis_url: str, queue_name: str, redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Producers enqueueing flows of 7 steps over 3 queues are SIGKILLed at random moments;
    afterwards every flow they began is either whole (every step exists, and it runs) or
    absent (no step exists)."""
    queues = [f"{queue_name}-{i}" for i in range(3)]
    for round_ in range(6):
        producer = _start_producer(redis_url, queue_name, round_ * 10_000)
        try:
            await wait_until(
                _began(redis, queue_name, round_), timeout=15, what="the producer to start"
            )
            await anyio.sleep(random.uniform(0.05, 0.3))
        finally:
            producer.send_signal(signal.SIGKILL)
            producer.wait(10)
    begun = sorted(int(n) for n in await redis.lrange(f"test:{queue_name}:begun", 0, -1))
    async with streamq.QueueManager(redis_url, flow_sweep_after=1, shutdown_grace=5) as qm:
        for name in queues:
            await qm.get_queue(name).consume(lambda job: job.data)

        async def nothing_being_created() -> bool:
            for name in queues:
                if await redis.zcard(f"streamq:{{{name}}}:flows:creating"):
                    return False
            return True

        await wait_until(nothing_being_created, timeout=20, what="the sweep")
        whole, absent = [], []
        for n in begun:
            root_id = f"{queue_name}-flow-{n}"
            ids = [(queues[0], root_id)] + [
                (queues[2 if i in (2, 4, 6) else 1], f"{root_id}-{i}") for i in range(1, 7)
            ]
            found = [await redis.exists(f"streamq:{{{q}}}:job:{job_id}") for q, job_id in ids]
            if all(found):
                whole.append(root_id)
            else:
                assert not any(found), f"flow {n} is half there: {found}"
                absent.append(root_id)
        swept = [r.getMessage() for r in caplog.records if "its producer stopped" in r.getMessage()]
        print(
            f"killed producers: {len(begun)} flows begun, {len(whole)} whole, {len(absent)}"
            f" absent; the sweep undid {sum('undone' in m for m in swept)} and finished"
            f" {sum('released' in m for m in swept)}"
        )
        root_queue = qm.get_queue(queues[0])
        for root_id in whole:
            assert await root_queue.wait_for(root_id, timeout=20) == 0


def _start_producer(redis_url: str, queue_name: str, first: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(PRODUCER), redis_url, queue_name, str(first)],
        stdin=subprocess.DEVNULL,
    )


def _began(redis: Any, queue_name: str, round_: int) -> Any:
    async def check() -> bool:
        last = await redis.lindex(f"test:{queue_name}:begun", -1)
        return last is not None and int(last) >= round_ * 10_000

    return check

"""The fair-queue scenario: the processing rate with 1, 100, 10,000 and 100,000 fairness keys
holding waiting jobs, and under per-key limits, against jobs without a key, and the Redis memory
each waiting job takes."""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio

import streamq

from .measure import RedisMeter, Result
from .scenarios import manager, queue_name

__all__ = ("scenario_fairness",)

#: The fairness keys of each run (None: jobs without a key), and the consumer's per-key limits:
#: one that holds each key back most of the time (1 running of 100 keys' long backlogs, with 10
#: workers), and both limits where they rarely bind (the bookkeeping's cost alone).
VARIANTS: tuple[tuple[int | None, dict[str, Any]], ...] = (
    (None, {}),
    (1, {}),
    (100, {}),
    (10_000, {}),
    (100_000, {}),
    (100, {"per_key_concurrency": 1}),
    (10_000, {"per_key_concurrency": 2, "per_key_rate_limit": (1000, 1.0)}),
)
#: Keys enqueued at once.
PRODUCERS = 50


async def scenario_fairness(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    # Up to 5 keys per job asked for (--jobs 20000, the default, runs them all); a run with more
    # keys than jobs has a job per key.
    chosen = [(keys, limits) for keys, limits in VARIANTS if keys is None or keys <= 5 * args.jobs]
    return [await _run(url, args, meter, keys, limits) for keys, limits in chosen]


async def _run(
    url: str, args: argparse.Namespace, meter: RedisMeter, keys: int | None, limits: dict[str, Any]
) -> Result:
    jobs = max(args.jobs, keys or 0)
    async with manager(url, args) as qm:
        queue = qm.get_queue(queue_name("fairness"))
        memory_before = await _used_memory(qm)
        if keys is None:
            # Staged like the keyed ones (a priority: no fast path into the stream).
            await queue.enqueue_many(range(jobs), priority=1)
        else:
            await _enqueue_keyed(queue, jobs, keys)
        per_job = (await _used_memory(qm) - memory_before) / jobs
        left = [jobs]
        finished = anyio.Event()

        async def run(job: streamq.Job[Any]) -> None:
            left[0] -= 1
            if not left[0]:
                finished.set()

        await meter.start()
        start = time.perf_counter()
        await queue.consume(run, concurrency=args.concurrency, **limits)
        with anyio.fail_after(600):
            await finished.wait()
        seconds = time.perf_counter() - start
        label = "no fairness key" if keys is None else f"{keys:,} keys"
        if "per_key_rate_limit" in limits:
            label += ", both per-key limits"
        elif limits:
            label += f", per-key concurrency {limits['per_key_concurrency']}"
        result = Result("fairness", label, jobs, seconds, jobs / seconds)
        result.extra["memory_per_waiting_job"] = per_job
        return await meter.finish(result)


async def _enqueue_keyed(queue: streamq.Queue[Any], jobs: int, keys: int) -> None:
    per_key, extra = divmod(jobs, keys)
    limiter = anyio.Semaphore(PRODUCERS)

    async def one(key: int) -> None:
        async with limiter:
            count = per_key + (1 if key < extra else 0)
            await queue.enqueue_many(range(count), fairness_key=f"tenant-{key}")

    async with anyio.create_task_group() as tg:
        for key in range(keys):
            tg.start_soon(one, key)


async def _used_memory(qm: streamq.QueueManager) -> int:
    info = await qm.redis.info("memory")
    return int(info["used_memory"])

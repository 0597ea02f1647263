"""A first throughput measurement of the core path (the full benchmark is `python -m streamq.bench`).

    .venv/bin/python benchmarks/core_throughput.py [--jobs 20000] [--concurrency 10]

Enqueues N no-op jobs one at a time (sequential awaits), N with enqueue_many, then processes N
with one consumer, and reports Redis commands per job from INFO commandstats deltas: the
top-level commands are the round trips; the rest run inside the Lua scripts.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio
import redis.asyncio as aioredis

import streamq
from streamq.localserver import local_redis

TOP_LEVEL = {"evalsha", "eval", "xreadgroup", "xgroup|create", "blpop", "info", "ping"}


async def commandstats(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    cpu = await client.info("cpu")
    calls["cpu_us"] = round((cpu["used_cpu_user"] + cpu["used_cpu_sys"]) * 1e6)
    return calls


def per_job(before: dict[str, int], after: dict[str, int], jobs: int) -> dict[str, float]:
    return {
        name: (after[name] - before.get(name, 0)) / jobs
        for name in sorted(after)
        if after[name] - before.get(name, 0) > 0 and name != "info"
    }


def show(title: str, rate: float, calls: dict[str, float]) -> None:
    cpu = calls.pop("cpu_us", 0.0)
    trips = sum(v for k, v in calls.items() if k in TOP_LEVEL)
    inner = ", ".join(f"{k} {v:.2f}" for k, v in calls.items() if k not in TOP_LEVEL)
    top = ", ".join(f"{k} {v:.3f}" for k, v in calls.items() if k in TOP_LEVEL)
    print(f"{title:<28} {rate:>10,.0f} jobs/s   redis-server CPU {cpu:.1f} us/job   "
          f"round trips/job {trips:.3f} ({top})")  # fmt: skip
    print(f"{'':<28} inside scripts per job: {inner}")


async def main(url: str, jobs: int, concurrency: int) -> None:
    stats_client = aioredis.Redis.from_url(url, protocol=2)
    # The floor to compare with: bare XADD round trips from the same client library.
    start = time.perf_counter()
    for n in range(jobs):
        await stats_client.xadd("bench-raw-xadd", {"n": n})
    print(f"{'bare XADD (redis-py)':<28} {jobs / (time.perf_counter() - start):>10,.0f} jobs/s")
    await stats_client.delete("bench-raw-xadd")

    async with streamq.QueueManager(url) as qm:
        queue = qm.get_queue(f"bench-{time.time_ns()}")

        before = await commandstats(stats_client)
        start = time.perf_counter()
        for n in range(jobs):
            await queue.enqueue(n)
        rate = jobs / (time.perf_counter() - start)
        show("enqueue (one at a time)", rate, per_job(before, await commandstats(stats_client), jobs))

        before = await commandstats(stats_client)
        start = time.perf_counter()
        await queue.enqueue_many(range(jobs))
        rate = jobs / (time.perf_counter() - start)
        show("enqueue_many", rate, per_job(before, await commandstats(stats_client), jobs))

        total = 2 * jobs
        finished = anyio.Event()
        count = 0

        async def noop(job: streamq.Job[Any]) -> None:
            nonlocal count
            count += 1
            if count == total:
                finished.set()

        before = await commandstats(stats_client)
        start = time.perf_counter()
        consumer = await queue.consume(noop, concurrency=concurrency)
        await finished.wait()
        rate = total / (time.perf_counter() - start)
        await consumer.stop()
        show(f"process (concurrency {concurrency})", rate,
             per_job(before, await commandstats(stats_client), total))  # fmt: skip
    await stats_client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    with local_redis() as url:
        anyio.run(main, url, args.jobs, args.concurrency, backend_options={"use_uvloop": True})

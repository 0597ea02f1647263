"""Scheduling figures: delayed-job lateness on an idle consumer, and enqueue throughput by path.

    .venv/bin/python benchmarks/scheduling.py [--delayed 300] [--jobs 5000]

Lateness: jobs with delays spread over 50-550 ms are enqueued by one manager while another,
idle, consumes; lateness is the handler's start less (enqueue time + delay), so it slightly
overstates (by the enqueue round trip). Throughput: N jobs one at a time through each path, the
producer alone (the fast path is given a window with room, as a consumer keeping up would).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

import anyio

import streamq
from streamq.localserver import local_redis


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def lateness(url: str, jobs: int) -> list[float]:
    late: list[float] = []
    done = anyio.Event()

    async def handle(job: streamq.Job[float]) -> None:
        late.append(time.time() * 1000 - (job.enqueued_at * 1000 + job.data))
        if len(late) == jobs:
            done.set()

    async with streamq.QueueManager(url) as consumer, streamq.QueueManager(url) as producer:
        name = f"bench-delay-{time.time_ns()}"
        await consumer.get_queue(name, float).consume(handle, concurrency=50)
        queue = producer.get_queue(name, float)
        for _ in range(jobs):
            delay_ms = random.uniform(50, 550)
            await queue.enqueue(delay_ms, start_delay=delay_ms / 1000)
            await anyio.sleep(random.uniform(0, 0.01))  # spread them out: an idle consumer
        with anyio.fail_after(60):
            await done.wait()
    return late


async def enqueue_rate(url: str, jobs: int, room: bool, **options: Any) -> float:
    """Enqueue rate alone. ``room``: give the queue a group and a window with room (as a live
    consumer that keeps up would), so default-priority jobs take the fast path."""
    async with streamq.QueueManager(url) as qm:
        queue = qm.get_queue(f"bench-enqueue-{time.time_ns()}")
        if room:
            client = qm._connected().client
            await client.xgroup_create(queue._keys.stream, "bench", id="0", mkstream=True)
            await client.hset(queue._keys.window, mapping={"total": 10**9})
        start = time.perf_counter()
        for n in range(jobs):
            await queue.enqueue(n, **options)
        return jobs / (time.perf_counter() - start)


async def main(url: str, delayed: int, jobs: int) -> None:
    late = await lateness(url, delayed)
    print(f"delayed-job lateness over {delayed} jobs (ms):"
          f" p50 {percentile(late, 50):.1f}  p90 {percentile(late, 90):.1f}"
          f"  p99 {percentile(late, 99):.1f}  max {max(late):.1f}  min {min(late):.1f}")  # fmt: skip
    rates = {}
    for label, room, options in [
        ("default priority (fast path)", True, {}),
        ("priority=5 (staged)", True, {"priority": 5}),
        ("start_delay=60 (delayed)", True, {"start_delay": 60}),
        ("no consumer yet (staged)", False, {}),
    ]:
        runs = [await enqueue_rate(url, jobs, room, **options) for _ in range(3)]
        rates[label] = statistics.median(runs)
    fast = rates["default priority (fast path)"]
    for label, rate in rates.items():
        print(f"enqueue one at a time, {label:<30} {rate:8,.0f} jobs/s  ({rate / fast:.0%})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delayed", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    with local_redis() as url:
        anyio.run(main, url, args.delayed, args.jobs, backend_options={"use_uvloop": True})

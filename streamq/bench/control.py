"""The job-control scenario: ``call`` round trips to an idle consumer, and how long a running
handler takes to stop after ``cancel`` returns (asked from another manager)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio

import streamq

from .measure import RedisMeter, Result, percentile
from .scenarios import manager, queue_name

__all__ = ("scenario_control",)

#: Cancels measured (each of a handler that would otherwise run for a minute).
CANCELS = 100


async def scenario_control(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    calls = max(100, min(args.jobs, 2000))
    async with manager(url, args) as consumer_side, manager(url, args) as producer_side:
        name = queue_name("control")
        stopped: dict[str, float] = {}
        running: dict[str, anyio.Event] = {}
        done: dict[str, anyio.Event] = {}

        async def handle(job: streamq.Job[Any]) -> Any:
            if job.data != "long":
                return job.data
            running[job.id].set()
            try:
                await anyio.sleep(60)
            finally:
                stopped[job.id] = time.perf_counter()
                done[job.id].set()

        await consumer_side.get_queue(name).consume(handle, concurrency=args.concurrency)
        queue = producer_side.get_queue(name)
        for n in range(20):  # warm up: scripts loaded, connections open
            await queue.call(n, timeout=10)
        await meter.start()
        start = time.perf_counter()
        round_trips = []
        for n in range(calls):
            asked = time.perf_counter()
            await queue.call(n, timeout=10)
            round_trips.append(time.perf_counter() - asked)
        seconds = time.perf_counter() - start
        call = await meter.finish(
            Result(
                "control",
                "call, idle consumer",
                calls,
                seconds,
                calls / seconds,
                extra=_milliseconds(round_trips),
            )
        )
        latencies = []
        for n in range(CANCELS):
            job_id = f"long-{n}"
            running[job_id], done[job_id] = anyio.Event(), anyio.Event()
            await queue.enqueue("long", job_id=job_id)
            with anyio.fail_after(10):
                await running[job_id].wait()
            asked = time.perf_counter()
            await queue.cancel(job_id)
            with anyio.fail_after(10):
                await done[job_id].wait()
            latencies.append(stopped[job_id] - asked)
        cancel = Result(
            "control",
            "cancel of a running handler",
            CANCELS,
            sum(latencies),
            CANCELS / sum(latencies),
            extra=_milliseconds(latencies),
        )
    return [call, cancel]


def _milliseconds(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
    }

"""The workflow scenario: a fan-in of many children into one parent and many short chains,
against the same number of plain jobs, each timed from the first enqueue to the last finish."""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio

import streamq

from .measure import RedisMeter, Result
from .scenarios import manager, queue_name

__all__ = ("scenario_flows",)

#: Steps per chain.
CHAIN = 10
#: Chains enqueued at once.
PRODUCERS = 50


async def scenario_flows(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    steps = max(CHAIN, min(args.jobs, 10_000) // CHAIN * CHAIN)
    return [
        await _plain(url, args, meter, steps),
        await _fan_in(url, args, meter, steps),
        await _chains(url, args, meter, steps),
    ]


async def _plain(url: str, args: argparse.Namespace, meter: RedisMeter, jobs: int) -> Result:
    async with manager(url, args) as qm:
        queue = qm.get_queue(queue_name("flows-plain"))
        done = _Counter(jobs)
        await queue.consume(done.handle, concurrency=args.concurrency)
        await meter.start()
        start = time.perf_counter()
        await queue.enqueue_many(range(jobs))
        await done.wait()
        return await meter.finish(_result("plain jobs", jobs, time.perf_counter() - start))


async def _fan_in(url: str, args: argparse.Namespace, meter: RedisMeter, jobs: int) -> Result:
    children = jobs - 1
    async with manager(url, args) as qm:
        child_queue, parent_queue = queue_name("flows-child"), queue_name("flows-parent")
        done = _Counter(1)

        async def parent(job: streamq.Job[Any]) -> None:
            assert len(await job.children_results()) == children
            done.handle(job)

        await qm.get_queue(child_queue).consume(lambda job: job.data, concurrency=args.concurrency)
        await qm.get_queue(parent_queue).consume(parent)
        flow = streamq.group(
            *(streamq.Step(child_queue, n) for n in range(children)),
            then=streamq.Step(parent_queue, "sum"),
        )
        await meter.start()
        start = time.perf_counter()
        await qm.enqueue_flow(flow)
        await done.wait()
        return await meter.finish(
            _result(f"fan-in of {children:,} children", jobs, time.perf_counter() - start)
        )


async def _chains(url: str, args: argparse.Namespace, meter: RedisMeter, jobs: int) -> Result:
    chains = jobs // CHAIN
    async with manager(url, args) as qm:
        names = [queue_name("flows-chain-a"), queue_name("flows-chain-b")]
        done = _Counter(chains)

        async def step(job: streamq.Job[int]) -> int:
            if job.data == CHAIN - 1:
                done.handle(job)
            return job.data

        for name in names:
            await qm.get_queue(name).consume(step, concurrency=args.concurrency)
        flows = [
            streamq.chain(*(streamq.Step(names[i % 2], i) for i in range(CHAIN)))
            for _ in range(chains)
        ]
        limiter = anyio.Semaphore(PRODUCERS)

        async def enqueue(flow: streamq.Step) -> None:
            async with limiter:
                await qm.enqueue_flow(flow)

        await meter.start()
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for flow in flows:
                tg.start_soon(enqueue, flow)
        await done.wait()
        return await meter.finish(
            _result(f"{chains:,} chains of {CHAIN}", jobs, time.perf_counter() - start)
        )


def _result(label: str, jobs: int, seconds: float) -> Result:
    return Result("flows", label, jobs, seconds, jobs / seconds)


class _Counter:
    def __init__(self, total: int) -> None:
        self._left = total
        self._done = anyio.Event()

    def handle(self, job: streamq.Job[Any]) -> Any:
        self._left -= 1
        if self._left == 0:
            self._done.set()
        return job.data

    async def wait(self) -> None:
        with anyio.fail_after(600):
            await self._done.wait()

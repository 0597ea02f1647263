"""The workload every adapter runs, with only the library calls left to each adapter.

Standard library only: this module is imported by adapters running in each peer's own venv
(the adapter's folder is on ``sys.path`` because the adapter is run as a script).

An adapter subclasses :class:`Adapter` and calls :func:`main`. Phases, in this order:

1. ``enqueue``: ``--jobs`` sequential awaited single enqueues into queue ``A`` (no worker running).
2. ``bulk``: ``--jobs`` jobs in one call of the library's bulk API into queue ``B`` (skipped,
   ``null``, when the adapter has none).
3. ``process``: one worker at ``--concurrency`` consumes the ``--jobs`` jobs already in queue ``A``;
   the time runs from just before the worker is created to the handler call of the last job.
   redis-server's CPU time (``INFO cpu``, user + sys) over the same span, per job, is
   ``process_redis_us``.
4. ``latency``: a worker on an empty queue ``C``; after a short warm-up, ``--rate`` jobs/s for
   ``--seconds`` are enqueued one at a time, each carrying ``time.perf_counter()``; the handler
   records ``perf_counter() - payload`` when it starts (same process, same clock).

Every worker here runs **in the adapter's process**, on the same event loop as the producer (as
``python -m streamq.bench`` does); uvloop is used when the venv has it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

OnJob = Callable[[Any], None]

QUEUE_ENQUEUE = "bench-a"
QUEUE_BULK = "bench-b"
QUEUE_LATENCY = "bench-c"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Adapter:
    """One library's calls. ``bulk`` stays ``None`` where the library has no bulk enqueue."""

    library = "?"
    version = "?"
    has_bulk = False

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.concurrency = concurrency

    async def setup(self) -> None:
        """Connect the producer side."""

    async def teardown(self) -> None:
        """Close the producer side."""

    async def prepare(self, queue: str) -> None:
        """Anything the queue needs before jobs are enqueued into it (untimed)."""

    async def enqueue(self, queue: str, payload: Any) -> None:
        """One awaited single enqueue of a job carrying ``payload`` (a number)."""
        raise NotImplementedError

    async def enqueue_bulk(self, queue: str, payloads: list[Any]) -> None:
        raise NotImplementedError

    async def start_worker(self, queue: str, on_job: OnJob) -> Any:
        """Start one worker at ``self.concurrency`` whose no-op handler calls ``on_job(payload)``
        as it starts; return whatever :meth:`stop_worker` needs."""
        raise NotImplementedError

    async def stop_worker(self, worker: Any) -> None:
        raise NotImplementedError

    async def remaining(self, queue: str) -> int | None:
        """Jobs of ``queue`` not finished yet according to Redis (a sanity check), if cheap."""
        return None


async def cancel_and_wait(task: asyncio.Task[Any], timeout: float = 30.0) -> None:
    """Cancel a worker's task and wait for it to end, cancelling again if a library swallowed
    the cancellation; raises if it is still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=max(0.0, min(1.0, deadline - time.monotonic())))
        if not task.done() and time.monotonic() >= deadline:
            raise RuntimeError(f"the worker task did not stop within {timeout:.0f} s")
    if not task.cancelled() and task.exception() is not None:
        log(f"the worker task ended with {task.exception()!r}")


async def stop(adapter: Adapter, worker: Any) -> None:
    # asyncio.timeout, not wait_for: the worker is stopped in this task (anyio needs that).
    try:
        async with asyncio.timeout(90):
            await adapter.stop_worker(worker)
    except TimeoutError:
        raise RuntimeError("stopping the worker took longer than 90 s") from None


class Counter:
    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.last = 0.0
        self.event = asyncio.Event()

    def hit(self, _payload: Any = None) -> None:
        self.count += 1
        if self.count >= self.target:
            self.last = time.perf_counter()
            self.event.set()

    async def wait(self, timeout: float, what: str) -> None:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(
                f"{what}: only {self.count} of {self.target} jobs after {timeout:.0f} s"
            ) from None


async def redis_cpu_seconds(url: str) -> float:
    """redis-server's CPU time so far (``INFO cpu``), over a bare socket: every peer's venv has
    its own Redis client, and this module uses none of them."""
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 6379)
    try:
        writer.write(b"*2\r\n$4\r\nINFO\r\n$3\r\ncpu\r\n")
        header = await reader.readline()  # $<length>
        body = await reader.readexactly(int(header[1:]) + 2)
    finally:
        writer.close()
        await writer.wait_closed()
    fields = dict(line.split(":", 1) for line in body.decode().splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


async def workload(adapter: Adapter, args: argparse.Namespace) -> dict[str, Any]:
    jobs = args.jobs
    timeout = max(120.0, jobs / 100)
    phases = set(args.phases.split(","))
    result: dict[str, Any] = {
        "library": adapter.library, "version": adapter.version,
        "enqueue": None, "bulk": None, "process": None, "process_redis_us": None,
        "p50_ms": None, "p99_ms": None,
    }  # fmt: skip
    await adapter.setup()
    try:
        if "enqueue" in phases or "process" in phases:
            await adapter.prepare(QUEUE_ENQUEUE)
            start = time.perf_counter()
            for n in range(jobs):
                await adapter.enqueue(QUEUE_ENQUEUE, n)
            seconds = time.perf_counter() - start
            if "enqueue" in phases:
                result["enqueue"] = jobs / seconds
            log(f"{adapter.library}: enqueue {jobs / seconds:,.0f}/s")

        if "bulk" in phases and adapter.has_bulk:
            await adapter.prepare(QUEUE_BULK)
            payloads = list(range(jobs))
            start = time.perf_counter()
            await adapter.enqueue_bulk(QUEUE_BULK, payloads)
            seconds = time.perf_counter() - start
            result["bulk"] = jobs / seconds
            log(f"{adapter.library}: bulk {jobs / seconds:,.0f}/s")

        if "process" in phases:
            counter = Counter(jobs)
            cpu_before = await redis_cpu_seconds(adapter.url)
            start = time.perf_counter()
            worker = await adapter.start_worker(QUEUE_ENQUEUE, counter.hit)
            try:
                await counter.wait(timeout, "process")
                cpu = await redis_cpu_seconds(adapter.url) - cpu_before
            finally:
                await stop(adapter, worker)
            seconds = counter.last - start
            result["process"] = jobs / seconds
            result["process_redis_us"] = cpu * 1e6 / jobs
            left = await adapter.remaining(QUEUE_ENQUEUE)
            log(f"{adapter.library}: process {jobs / seconds:,.0f}/s ({counter.count} handled,"
                f" {'?' if left is None else left} left unfinished in Redis)")  # fmt: skip
            if left:
                raise RuntimeError(f"process: {left} jobs still unfinished in Redis")

        if "latency" in phases:
            n_jobs = max(100, round(args.rate * args.seconds))
            latencies: list[float] = []
            counter = Counter(n_jobs)

            def on_job(sent: Any) -> None:
                latencies.append(time.perf_counter() - float(sent))
                counter.hit()

            await adapter.prepare(QUEUE_LATENCY)
            worker = await adapter.start_worker(QUEUE_LATENCY, on_job)
            try:
                await asyncio.sleep(args.warmup)  # the worker is idle and listening
                start = time.perf_counter()
                for n in range(n_jobs):
                    delay = start + n / args.rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await adapter.enqueue(QUEUE_LATENCY, time.perf_counter())
                offered = n_jobs / (time.perf_counter() - start)
                await counter.wait(timeout, "latency")
            finally:
                await stop(adapter, worker)
            ms = [v * 1000 for v in latencies]
            result["p50_ms"] = percentile(ms, 50)
            result["p99_ms"] = percentile(ms, 99)
            log(f"{adapter.library}: latency p50 {result['p50_ms']:.2f} ms, p99"
                f" {result['p99_ms']:.2f} ms, max {max(ms):.2f} ms ({n_jobs} jobs,"
                f" {offered:.0f}/s offered)")  # fmt: skip
    finally:
        await adapter.teardown()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the common queue workload on one library.")
    parser.add_argument("--url", required=True, help="Redis URL (a throwaway server)")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rate", type=float, default=400.0, help="offered jobs/s (latency)")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds the latency worker idles before the first job")  # fmt: skip
    parser.add_argument("--phases", default="enqueue,bulk,process,latency")
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    return parser.parse_args(argv)


def main(make: Callable[[str, int], Adapter], argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    adapter = make(args.url, args.concurrency)
    loop_name = "asyncio"
    runner: Callable[..., Any] = asyncio.run
    if args.uvloop:
        try:
            import uvloop

            runner, loop_name = uvloop.run, "uvloop"
        except ImportError:
            pass
    log(f"{adapter.library} {adapter.version} on {loop_name}")
    result = runner(workload(adapter, args))
    result["loop"] = loop_name
    print(json.dumps(result), flush=True)
    return 0

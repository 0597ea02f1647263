"""The single-queue scenarios of ``python -m streamq.bench``; each returns result rows.

They run against one server or a Redis Cluster alike (a queue's keys all live on one primary).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

import streamq
from streamq.store.keys import QueueKeys
from streamq.store.serialization import Codec

from .measure import RedisMeter, Result, percentile

__all__ = (
    "BENCH_PREFIX",
    "RUNNERS",
    "Runner",
    "drain",
    "drain_in_workers",
    "give_room",
    "manager",
    "queue_name",
    "worker",
)


@functools.cache
def _metrics() -> streamq.Hooks:
    """The one :class:`PrometheusMetrics` of this process (its metric names register once)."""
    from prometheus_client import CollectorRegistry

    from streamq.ops.metrics import PrometheusMetrics

    return PrometheusMetrics(CollectorRegistry())


@functools.cache
def _tracing() -> streamq.Hooks:
    """OpenTelemetry hooks on the SDK, spans batched to an exporter that drops them: what a
    traced service pays, less its exporter's network."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError as exc:
        message = f"--otel needs opentelemetry-sdk: pip install opentelemetry-sdk ({exc})"
        raise SystemExit(message) from exc

    from streamq.ops.otel import OpenTelemetryHooks

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return OpenTelemetryHooks(tracer_provider, meter_provider)


def manager(url: str, args: argparse.Namespace) -> streamq.QueueManager:
    """A manager for a scenario: with ``--metrics``, Prometheus metrics count its jobs, with
    ``--otel`` OpenTelemetry traces them (so their cost shows in the figures); ``--keep-events``
    sets its lifecycle events."""
    hooks = ([_metrics()] if args.metrics else []) + ([_tracing()] if args.otel else [])
    return streamq.QueueManager(url, hooks=hooks, keep_events=args.keep_events)


#: Every queue (and stream) the benchmark makes is named so: removed when it ends.
BENCH_PREFIX = "bench-"


def queue_name(scenario: str) -> str:
    return f"{BENCH_PREFIX}{scenario}-{time.time_ns()}"


async def give_room(qm: streamq.QueueManager, queue: streamq.Queue[Any]) -> None:
    """A group and a window with room, as a consumer keeping up would make: the fast path."""
    client = qm.redis
    keys = QueueKeys(qm.prefix, queue.name)
    await client.xgroup_create(keys.stream, "bench", id="0", mkstream=True)
    await client.hset(keys.window, mapping={"total": 10**9})


async def scenario_enqueue(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    jobs, results = args.jobs, list[Result]()
    async with manager(url, args) as qm:
        # The reference: the same entries written by bare XADDs through redis-py, one at a time.
        client = qm.redis
        queue = qm.get_queue(queue_name("enqueue"))
        stream = queue_name("xadd")
        codec: Codec[Any] = Codec(queue.name, Any, qm.max_payload_bytes)  # as the queue writes
        payload = codec.encode(0, enqueued_at=time.time(), priority=0)
        await meter.start()
        start = time.perf_counter()
        for n in range(jobs):
            await client.xadd(stream, {"j": str(n), "p": payload})
        seconds = time.perf_counter() - start
        bare = await meter.finish(
            Result("enqueue", "bare XADD, redis-py (reference)", jobs, seconds, jobs / seconds)
        )
        await client.delete(stream)

        await give_room(qm, queue)
        await meter.start()
        start = time.perf_counter()
        for n in range(jobs):
            await queue.enqueue(n)
        seconds = time.perf_counter() - start
        one = await meter.finish(Result("enqueue", "one at a time", jobs, seconds, jobs / seconds))
        one.extra["vs_bare_xadd"] = one.rate / bare.rate
        results += (bare, one)

        queue = qm.get_queue(queue_name("enqueue"))
        await give_room(qm, queue)
        per_producer = jobs // args.producers

        async def produce() -> None:
            for n in range(per_producer):
                await queue.enqueue(n)

        await meter.start()
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(args.producers):
                tg.start_soon(produce)
        seconds = time.perf_counter() - start
        done = per_producer * args.producers
        results.append(
            await meter.finish(
                Result("enqueue", f"{args.producers} producers", done, seconds, done / seconds)
            )
        )

        queue = qm.get_queue(queue_name("enqueue"))
        await give_room(qm, queue)
        await meter.start()
        start = time.perf_counter()
        await queue.enqueue_many(range(jobs))
        seconds = time.perf_counter() - start
        results.append(
            await meter.finish(Result("enqueue", "enqueue_many", jobs, seconds, jobs / seconds))
        )
    return results


async def drain(
    queues: Sequence[streamq.Queue[Any]],
    jobs: int,
    concurrency: int,
    on_start: Callable[[Any], None],
) -> float:
    """Consume ``jobs`` jobs from each queue with a no-op handler, one consumer per queue;
    seconds from start to the last one."""
    finished = anyio.Event()
    count, total = 0, jobs * len(queues)

    async def noop(job: streamq.Job[Any]) -> None:
        nonlocal count
        on_start(job)
        count += 1
        if count == total:
            finished.set()

    start = time.perf_counter()
    consumers = [await queue.consume(noop, concurrency=concurrency) for queue in queues]
    with anyio.fail_after(max(60.0, total / 500)):
        await finished.wait()
    seconds = time.perf_counter() - start
    for consumer in consumers:
        await consumer.stop()
    return seconds


async def scenario_process(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    results = []
    async with manager(url, args) as qm:
        queue = qm.get_queue(queue_name("process"))
        await queue.enqueue_many(range(args.jobs))
        await meter.start()
        seconds = await drain([queue], args.jobs, args.concurrency, lambda job: None)
        label = f"1 consumer, concurrency {args.concurrency}"
        results.append(
            await meter.finish(Result("process", label, args.jobs, seconds, args.jobs / seconds))
        )
        if args.processes > 1:
            results.append(await _process_in_workers(url, args, meter, qm))
    return results


async def _process_in_workers(
    url: str, args: argparse.Namespace, meter: RedisMeter, qm: streamq.QueueManager
) -> Result:
    """The same drain by ``--processes`` worker processes (each one consumer)."""
    queue = qm.get_queue(queue_name("process"))
    await queue.enqueue_many(range(args.jobs))
    jobs, seconds = await drain_in_workers(url, qm, [queue], args.jobs, args, meter)
    label = f"{args.processes} processes, concurrency {args.concurrency} each"
    return await meter.finish(Result("process", label, jobs, seconds, jobs / seconds))


async def drain_in_workers(
    url: str,
    qm: streamq.QueueManager,
    queues: Sequence[streamq.Queue[Any]],
    jobs: int,
    args: argparse.Namespace,
    meter: RedisMeter,
) -> tuple[int, float]:
    """Drain ``jobs`` jobs from each queue by ``--processes`` worker processes, each with one
    consumer per queue; starts ``meter`` once they are launched. Returns the jobs and seconds
    timed from the first completion (the processes' start-up is not the drain)."""
    # Queue names cannot hold whitespace: one argument carries them all.
    command = [
        sys.executable,
        "-m",
        "streamq.bench",
        "--worker",
        url,
        " ".join(q.name for q in queues),
        str(args.concurrency),
    ]
    workers = [await anyio.open_process(command) for _ in range(args.processes)]
    total = jobs * len(queues)
    try:
        await meter.start()
        client = qm.redis

        async def completed() -> int:  # the counters alone: a cheap poll
            return sum(
                [int(await client.get(QueueKeys(qm.prefix, q.name).completed) or 0) for q in queues]
            )

        with anyio.fail_after(max(120.0, total / 200)):
            await _poll_until(lambda n: n >= 1, completed, 0.005)
            start = time.perf_counter()
            done = await _poll_until(lambda n: n >= total, completed, 0.02)
        seconds = time.perf_counter() - start
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            await process.wait()
    return done - 1, seconds  # timed from the first completion


async def _poll_until(
    done: Callable[[int], bool], read: Callable[[], Awaitable[int]], interval: float
) -> int:
    """Read a value from other processes (here: Redis) until it satisfies ``done``."""
    while True:
        value = await read()
        if done(value):
            return value
        await anyio.sleep(interval)


async def worker(url: str, queue_names: str, concurrency: int) -> None:
    """A worker process for ``--processes``: consumes no-op jobs from the (space-separated)
    queues until SIGTERM."""
    import signal

    async def noop(job: streamq.Job[Any]) -> None:
        return None  # async, as in the one-process drain (a plain function runs in a thread)

    async with streamq.QueueManager(url) as qm:
        for name in queue_names.split():
            await qm.get_queue(name).consume(noop, concurrency=concurrency)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                return


async def scenario_priority(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Jobs of ten priorities enqueued first, then drained: everything goes through staging."""
    async with manager(url, args) as qm:
        queue = qm.get_queue(queue_name("priority"))
        per_level = args.jobs // 10
        for level in range(10):
            await queue.enqueue_many(range(per_level), priority=level)
        jobs = per_level * 10
        await meter.start()
        seconds = await drain([queue], jobs, args.concurrency, lambda job: None)
        label = f"staged, 10 priorities, concurrency {args.concurrency}"
        return [await meter.finish(Result("priority", label, jobs, seconds, jobs / seconds))]


async def scenario_latency(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Enqueue→start latency at an offered rate, to an otherwise idle consumer."""
    jobs = max(100, min(args.jobs, round(args.rate * args.seconds)))
    latencies: list[float] = []
    async with (
        manager(url, args) as consumer_side,
        manager(url, args) as producer_side,
    ):
        name = queue_name("latency")
        finished = anyio.Event()

        async def handle(job: streamq.Job[float]) -> None:
            latencies.append(time.perf_counter() - job.data)
            if len(latencies) == jobs:
                finished.set()

        await consumer_side.get_queue(name, float).consume(handle, concurrency=args.concurrency)
        queue = producer_side.get_queue(name, float)
        await meter.start()
        start = time.perf_counter()
        for n in range(jobs):
            # Paced to the offered rate; perf_counter is shared by both sides of this process.
            await anyio.sleep(max(0.0, start + n / args.rate - time.perf_counter()))
            await queue.enqueue(time.perf_counter())
        with anyio.fail_after(60):
            await finished.wait()
        seconds = time.perf_counter() - start
    ms = [v * 1000 for v in latencies]
    result = Result(
        "latency",
        f"{args.rate:g} jobs/s offered",
        jobs,
        seconds,
        jobs / seconds,
        extra={
            "p50_ms": percentile(ms, 50),
            "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99),
            "p99.9_ms": percentile(ms, 99.9),
            "max_ms": max(ms),
        },
    )
    return [await meter.finish(result)]


async def scenario_delayed(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Lateness of delayed jobs (start less due time), enqueued by another manager."""
    jobs = min(args.jobs, 300)
    late: list[float] = []
    async with manager(url, args) as consumer_side, manager(url, args) as producer:
        name = queue_name("delayed")
        finished = anyio.Event()

        async def handle(job: streamq.Job[float]) -> None:
            late.append(time.time() * 1000 - (job.enqueued_at * 1000 + job.data))
            if len(late) == jobs:
                finished.set()

        await consumer_side.get_queue(name, float).consume(handle, concurrency=50)
        queue = producer.get_queue(name, float)
        await meter.start()
        start = time.perf_counter()
        for _ in range(jobs):
            delay_ms = random.uniform(50, 550)
            await queue.enqueue(delay_ms, start_delay=delay_ms / 1000)
            await anyio.sleep(random.uniform(0, 0.005))
        with anyio.fail_after(60):
            await finished.wait()
        seconds = time.perf_counter() - start
    result = Result(
        "delayed",
        "lateness, 50-550 ms delays",
        jobs,
        seconds,
        jobs / seconds,
        extra={
            "p50_ms": percentile(late, 50),
            "p99_ms": percentile(late, 99),
            "max_ms": max(late),
            "min_ms": min(late),
        },
    )
    return [await meter.finish(result)]


async def scenario_mixed(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Producers and a consumer at once: default, prioritised and slightly delayed jobs."""
    jobs = args.jobs
    async with manager(url, args) as consumer_side, manager(url, args) as producer:
        name = queue_name("mixed")
        finished = anyio.Event()
        count = 0

        async def handle(job: streamq.Job[Any]) -> None:
            nonlocal count
            count += 1
            if count == jobs:
                finished.set()

        await consumer_side.get_queue(name).consume(handle, concurrency=args.concurrency)
        queue = producer.get_queue(name)
        await meter.start()
        start = time.perf_counter()
        for n in range(jobs):
            kind = n % 10
            if kind < 7:
                await queue.enqueue(n)
            elif kind < 9:
                await queue.enqueue(n, priority=kind)
            else:
                await queue.enqueue(n, start_delay=0.01)
        with anyio.fail_after(max(60.0, jobs / 500)):
            await finished.wait()
        seconds = time.perf_counter() - start
    label = "70% default, 20% priority, 10% delayed"
    return [await meter.finish(Result("mixed", label, jobs, seconds, jobs / seconds))]


def _rss_mb() -> float:
    """This process's resident memory now (Linux), in MiB."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


async def scenario_memory(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """A long run through one consumer at default settings: its RSS and Redis's used memory
    after 10 % of the jobs, at most after that and at the end (finished records are bounded by
    ``keep_finished``, so Redis should stay flat), and the longest the stream got (it should
    stay within what consumers hold plus the window)."""
    jobs, batch = args.jobs, 1000
    samples: dict[str, float] = {}
    longest = 0
    async with manager(url, args) as qm:
        queue = qm.get_queue(queue_name("memory"))
        client = qm.redis
        stream = QueueKeys(qm.prefix, queue.name).stream
        done = 0
        progress = anyio.Event()
        redis_peak = 0.0

        async def noop(job: streamq.Job[Any]) -> None:
            nonlocal done, progress
            done += 1
            if done % batch == 0 or done == jobs:
                progress.set()
                progress = anyio.Event()

        await queue.consume(noop, concurrency=args.concurrency)
        await meter.start()
        start = time.perf_counter()
        for sent in range(0, jobs, batch):
            while sent - done > 20 * batch:  # a bounded backlog: the producer waits
                await progress.wait()
            await queue.enqueue_many(range(min(batch, jobs - sent)))
            longest = max(longest, int(await client.xlen(stream)))
            if "rss_at_10pct_mb" not in samples and done >= jobs // 10:
                samples["rss_at_10pct_mb"] = _rss_mb()
                samples["redis_at_10pct_mb"] = await _redis_used_mb(client)
            elif "rss_at_10pct_mb" in samples and sent % (jobs // 20 or 1) < batch:
                redis_peak = max(redis_peak, await _redis_used_mb(client))
        with anyio.fail_after(max(120.0, jobs / 500)):
            while done < jobs:
                await progress.wait()
        seconds = time.perf_counter() - start
        samples["rss_at_end_mb"] = _rss_mb()
        samples["redis_at_end_mb"] = await _redis_used_mb(client)
        samples["redis_peak_after_10pct_mb"] = max(redis_peak, samples["redis_at_end_mb"])
        samples["queue_memory_mb"] = (await queue.stats()).memory_bytes / 2**20
    samples["longest_stream"] = longest
    samples["in_flight_plus_window"] = 2 * (2 * args.concurrency)
    label = f"{jobs:,} jobs through one consumer"
    result = Result("memory", label, jobs, seconds, jobs / seconds, extra=samples)
    return [await meter.finish(result)]


async def _redis_used_mb(client: Any) -> float:
    """Redis's ``used_memory`` in MiB (summed over the nodes of a cluster)."""
    info = await client.info("memory")
    if "used_memory" in info:
        return float(info["used_memory"]) / 2**20
    return sum(float(node["used_memory"]) for node in info.values()) / 2**20


#: A scenario: ``(url, args, meter)`` to its result rows.
Runner = Callable[[str, argparse.Namespace, RedisMeter], Awaitable[list[Result]]]

RUNNERS: dict[str, Runner] = {
    "enqueue": scenario_enqueue,
    "process": scenario_process,
    "latency": scenario_latency,
    "delayed": scenario_delayed,
    "priority": scenario_priority,
    "mixed": scenario_mixed,
    "memory": scenario_memory,
}

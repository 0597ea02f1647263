"""``python -m streamq.bench``: streamq's throughput and latency against a real Redis.

Uses ``--url``, else ``$STREAMQ_REDIS_URL``, else a throwaway local ``redis-server``. Every
scenario reports jobs per second and what each job cost Redis (commands, round trips and
redis-server CPU from INFO deltas). ``--json`` prints one JSON document for machines.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import redis.asyncio as aioredis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import streamq
from streamq.localserver import local_redis

__all__ = ("main",)

SCENARIOS = ("enqueue", "process", "latency", "delayed", "priority", "mixed", "memory")
#: Run when no --scenario is given (``memory`` is long: ask for it).
DEFAULT_SCENARIOS = SCENARIOS[:-1]


_READS = "total_reads_processed"


@dataclass
class Result:
    scenario: str
    label: str
    jobs: int
    seconds: float
    #: Jobs per second.
    rate: float
    #: Per processed job: redis-server CPU (µs), commands, round trips.
    redis_cpu_us: float = 0.0
    commands: float = 0.0
    round_trips: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class RedisMeter:
    """INFO deltas around a measured piece of work."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._before: tuple[float, dict[str, int]] = (0.0, {})

    async def _snapshot(self) -> tuple[float, dict[str, int]]:
        cpu = await self._client.info("cpu")
        stats = await self._client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        # Socket reads the server processed: requests that came in one round trip each (the
        # commands inside scripts are in commandstats but are no round trips).
        calls[_READS] = int((await self._client.info("stats"))["total_reads_processed"])
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls

    async def start(self) -> None:
        self._before = await self._snapshot()

    async def finish(self, result: Result) -> Result:
        cpu, calls = await self._snapshot()
        cpu_before, calls_before = self._before
        delta = {k: v - calls_before.get(k, 0) for k, v in calls.items() if k != "info"}
        jobs = max(result.jobs, 1)
        # Less the meter's own INFO requests (three at each end).
        reads = delta.pop(_READS) - 3
        result.redis_cpu_us = (cpu - cpu_before) * 1e6 / jobs
        result.commands = sum(delta.values()) / jobs
        result.round_trips = reads / jobs
        return result


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _queue_name(scenario: str) -> str:
    return f"bench-{scenario}-{time.time_ns()}"


async def _give_room(qm: streamq.QueueManager, queue: streamq.Queue[Any]) -> None:
    """A group and a window with room, as a consumer keeping up would make: the fast path."""
    client = qm._connected().client
    await client.xgroup_create(queue._keys.stream, "bench", id="0", mkstream=True)
    await client.hset(queue._keys.window, mapping={"total": 10**9})


async def scenario_enqueue(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    jobs, results = args.jobs, list[Result]()
    async with streamq.QueueManager(url) as qm:
        # The reference: the same entries written by bare XADDs through redis-py, one at a time.
        client = qm._connected().client
        queue = qm.get_queue(_queue_name("enqueue"))
        stream = _queue_name("xadd")
        payload = queue._codec.encode(0, enqueued_at=time.time(), priority=0)
        await meter.start()
        start = time.perf_counter()
        for n in range(jobs):
            await client.xadd(stream, {"j": str(n), "p": payload})
        seconds = time.perf_counter() - start
        bare = await meter.finish(
            Result("enqueue", "bare XADD, redis-py (reference)", jobs, seconds, jobs / seconds)
        )
        await client.delete(stream)

        await _give_room(qm, queue)
        await meter.start()
        start = time.perf_counter()
        for n in range(jobs):
            await queue.enqueue(n)
        seconds = time.perf_counter() - start
        one = await meter.finish(Result("enqueue", "one at a time", jobs, seconds, jobs / seconds))
        one.extra["vs_bare_xadd"] = one.rate / bare.rate
        results += (bare, one)

        queue = qm.get_queue(_queue_name("enqueue"))
        await _give_room(qm, queue)
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
        results.append(await meter.finish(
            Result("enqueue", f"{args.producers} producers", done, seconds, done / seconds)
        ))  # fmt: skip

        queue = qm.get_queue(_queue_name("enqueue"))
        await _give_room(qm, queue)
        await meter.start()
        start = time.perf_counter()
        await queue.enqueue_many(range(jobs))
        seconds = time.perf_counter() - start
        results.append(await meter.finish(
            Result("enqueue", "enqueue_many", jobs, seconds, jobs / seconds)
        ))  # fmt: skip
    return results


async def _drain(
    queue: streamq.Queue[Any], jobs: int, concurrency: int, on_start: Callable[[Any], None]
) -> float:
    """Consume ``jobs`` jobs with a no-op handler; seconds from start to the last one."""
    finished = anyio.Event()
    count = 0

    async def noop(job: streamq.Job[Any]) -> None:
        nonlocal count
        on_start(job)
        count += 1
        if count == jobs:
            finished.set()

    start = time.perf_counter()
    consumer = await queue.consume(noop, concurrency=concurrency)
    with anyio.fail_after(max(60.0, jobs / 500)):
        await finished.wait()
    seconds = time.perf_counter() - start
    await consumer.stop()
    return seconds


async def scenario_process(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    results = []
    async with streamq.QueueManager(url) as qm:
        queue = qm.get_queue(_queue_name("process"))
        await queue.enqueue_many(range(args.jobs))
        await meter.start()
        seconds = await _drain(queue, args.jobs, args.concurrency, lambda job: None)
        label = f"1 consumer, concurrency {args.concurrency}"
        results.append(await meter.finish(
            Result("process", label, args.jobs, seconds, args.jobs / seconds)
        ))  # fmt: skip
        if args.processes > 1:
            results.append(await _process_in_workers(url, args, meter, qm))
    return results


async def _process_in_workers(
    url: str, args: argparse.Namespace, meter: RedisMeter, qm: streamq.QueueManager
) -> Result:
    """The same drain by ``--processes`` worker processes (each one consumer)."""
    queue = qm.get_queue(_queue_name("process"))
    await queue.enqueue_many(range(args.jobs))
    command = [sys.executable, "-m", "streamq.bench", "--worker", url, queue.name,
               str(args.concurrency)]  # fmt: skip
    workers = [await anyio.open_process(command) for _ in range(args.processes)]
    try:
        await meter.start()
        client = qm._connected().client

        async def completed() -> int:  # the counter alone: a cheap poll
            return int(await client.get(queue._keys.completed) or 0)

        with anyio.fail_after(max(120.0, args.jobs / 200)):
            await _poll_until(lambda n: n >= 1, completed, 0.005)
            start = time.perf_counter()
            done = await _poll_until(lambda n: n >= args.jobs, completed, 0.02)
        seconds = time.perf_counter() - start
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            await worker.wait()
    label = f"{args.processes} processes, concurrency {args.concurrency} each"
    jobs = done - 1  # timed from the first completion
    return await meter.finish(Result("process", label, jobs, seconds, jobs / seconds))


async def _poll_until(
    done: Callable[[int], bool], read: Callable[[], Awaitable[int]], interval: float
) -> int:
    """Read a value from other processes (here: Redis) until it satisfies ``done``."""
    while True:
        value = await read()
        if done(value):
            return value
        await anyio.sleep(interval)


async def _worker(url: str, queue_name: str, concurrency: int) -> None:
    """A worker process for ``--processes``: consumes no-op jobs until SIGTERM."""
    import signal

    async def noop(job: streamq.Job[Any]) -> None:
        return None  # async, as in the one-process drain (a plain function runs in a thread)

    async with streamq.QueueManager(url) as qm:
        await qm.get_queue(queue_name).consume(noop, concurrency=concurrency)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                return


async def scenario_priority(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Jobs of ten priorities enqueued first, then drained: everything goes through staging."""
    async with streamq.QueueManager(url) as qm:
        queue = qm.get_queue(_queue_name("priority"))
        per_level = args.jobs // 10
        for level in range(10):
            await queue.enqueue_many(range(per_level), priority=level)
        jobs = per_level * 10
        await meter.start()
        seconds = await _drain(queue, jobs, args.concurrency, lambda job: None)
        label = f"staged, 10 priorities, concurrency {args.concurrency}"
        return [await meter.finish(Result("priority", label, jobs, seconds, jobs / seconds))]


async def scenario_latency(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Enqueue→start latency at an offered rate, to an otherwise idle consumer."""
    jobs = max(100, min(args.jobs, round(args.rate * args.seconds)))
    latencies: list[float] = []
    async with (
        streamq.QueueManager(url) as consumer_side,
        streamq.QueueManager(url) as producer_side,
    ):
        name = _queue_name("latency")
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
        "latency", f"{args.rate:g} jobs/s offered", jobs, seconds, jobs / seconds,
        extra={
            "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "p99.9_ms": percentile(ms, 99.9), "max_ms": max(ms),
        },
    )  # fmt: skip
    return [await meter.finish(result)]


async def scenario_delayed(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Lateness of delayed jobs (start less due time), enqueued by another manager."""
    jobs = min(args.jobs, 300)
    late: list[float] = []
    async with streamq.QueueManager(url) as consumer_side, streamq.QueueManager(url) as producer:
        name = _queue_name("delayed")
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
        "delayed", "lateness, 50-550 ms delays", jobs, seconds, jobs / seconds,
        extra={
            "p50_ms": percentile(late, 50), "p99_ms": percentile(late, 99), "max_ms": max(late),
            "min_ms": min(late),
        },
    )  # fmt: skip
    return [await meter.finish(result)]


async def scenario_mixed(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Producers and a consumer at once: default, prioritised and slightly delayed jobs."""
    jobs = args.jobs
    async with streamq.QueueManager(url) as consumer_side, streamq.QueueManager(url) as producer:
        name = _queue_name("mixed")
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
    """A long run through one consumer: its RSS after 10 % of the jobs and at the end, and the
    longest the stream got (it should stay within what consumers hold plus the window)."""
    jobs, batch = args.jobs, 1000
    samples: dict[str, float] = {}
    longest = 0
    async with streamq.QueueManager(url) as qm:
        queue = qm.get_queue(_queue_name("memory"))
        client = qm._connected().client
        done = 0
        progress = anyio.Event()

        async def noop(job: streamq.Job[Any]) -> None:
            nonlocal done, progress
            done += 1
            if done % batch == 0:
                progress.set()
                progress = anyio.Event()

        await queue.consume(noop, concurrency=args.concurrency)
        await meter.start()
        start = time.perf_counter()
        for sent in range(0, jobs, batch):
            while sent - done > 20 * batch:  # a bounded backlog: the producer waits
                await progress.wait()
            await queue.enqueue_many(range(min(batch, jobs - sent)))
            longest = max(longest, int(await client.xlen(queue._keys.stream)))
            if "rss_at_10pct_mb" not in samples and done >= jobs // 10:
                samples["rss_at_10pct_mb"] = _rss_mb()
        with anyio.fail_after(max(120.0, jobs / 500)):
            while done < jobs:
                await progress.wait()
        seconds = time.perf_counter() - start
        samples["rss_at_end_mb"] = _rss_mb()
    samples["longest_stream"] = longest
    samples["in_flight_plus_window"] = 2 * (2 * args.concurrency)
    label = f"{jobs:,} jobs through one consumer"
    result = Result("memory", label, jobs, seconds, jobs / seconds, extra=samples)
    return [await meter.finish(result)]


RUNNERS: dict[str, Callable[[str, argparse.Namespace, RedisMeter], Awaitable[list[Result]]]] = {
    "enqueue": scenario_enqueue,
    "process": scenario_process,
    "latency": scenario_latency,
    "delayed": scenario_delayed,
    "priority": scenario_priority,
    "mixed": scenario_mixed,
    "memory": scenario_memory,
}


async def environment(client: aioredis.Redis, args: argparse.Namespace) -> dict[str, Any]:
    server = await client.info("server")
    config = await client.config_get("appendonly")
    config.update(await client.config_get("appendfsync"))
    config.update(await client.config_get("save"))
    return {
        "streamq": streamq.__version__,
        "python": platform.python_version(),
        **{name.replace("-", "_"): _version_of(name) for name in _LIBRARIES},
        "event_loop": "uvloop" if args.uvloop else "asyncio",
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "redis_server": server.get("redis_version"),
        "redis_config": {k: str(v) for k, v in config.items()},
        "jobs": args.jobs,
        "concurrency": args.concurrency,
    }


_LIBRARIES = ("redis", "hiredis", "msgspec", "anyio", "uvloop")


def _version_of(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


async def run(url: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, protocol=2)
    try:
        env = await environment(client, args)
        meter = RedisMeter(client)
        results: list[Result] = []
        with Progress(console=console, transient=True, disable=args.json) as progress:
            task = progress.add_task("benchmark", total=len(args.scenario) * args.repeat)
            for _ in range(args.repeat):
                for scenario in args.scenario:
                    progress.update(task, description=scenario)
                    results += await RUNNERS[scenario](url, args, meter)
                    progress.advance(task)
    finally:
        await client.aclose()
    return {"environment": env, "results": [asdict(r) for r in _medians(results)]}


def _medians(results: list[Result]) -> list[Result]:
    """One row per (scenario, label): the median run by rate."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.scenario, r.label), []).append(r)
    rows = []
    for runs in groups.values():
        middle = statistics.median_low([r.rate for r in runs])
        rows.append(next(r for r in runs if r.rate == middle))
    return rows


def show(report: dict[str, Any], console: Console) -> None:
    env = report["environment"]
    console.print(
        f"streamq {env['streamq']} · Python {env['python']} ({env['event_loop']}) · redis-py"
        f" {env['redis']} (hiredis {env['hiredis']}) · Redis {env['redis_server']}"
        f" · {env['cpu']} x {env['cpus']}"
    )
    table = Table(title="streamq benchmark (medians)")
    for column in ("scenario", "what", "jobs", "jobs/s", "Redis µs/job", "cmds/job",
                   "round trips/job", "details"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("scenario", "what") else "right")
    for r in report["results"]:
        details = "  ".join(f"{k} {v:.2f}" for k, v in r["extra"].items())
        table.add_row(
            r["scenario"], r["label"], f"{r['jobs']:,}", f"{r['rate']:,.0f}",
            f"{r['redis_cpu_us']:.1f}", f"{r['commands']:.2f}", f"{r['round_trips']:.3f}", details,
        )  # fmt: skip
    console.print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streamq.bench",
        description="Measure streamq's throughput and latency against a real Redis.",
    )
    parser.add_argument("--url", help="Redis URL (default: $STREAMQ_REDIS_URL, else a "
                        "throwaway local redis-server)")  # fmt: skip
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="scenario to run (repeatable; default: all but memory)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per scenario")
    parser.add_argument("--concurrency", type=int, default=10, help="consumer concurrency")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="also drain with this many worker processes (process scenario)",
    )
    parser.add_argument("--worker", nargs=3, metavar=("URL", "QUEUE", "CONCURRENCY"),
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--producers", type=int, default=8, help="concurrent producers")
    parser.add_argument("--rate", type=float, default=400.0, help="offered jobs/s (latency)")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (median)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false",
                        help="plain asyncio instead of uvloop")  # fmt: skip
    args = parser.parse_args(argv)
    args.scenario = args.scenario or list(DEFAULT_SCENARIOS)
    for name in ("jobs", "concurrency", "producers", "repeat", "processes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        url, queue_name, concurrency = args.worker
        anyio.run(_worker, url, queue_name, int(concurrency), backend_options=_loop_options(True))
        return 0
    # Wide enough for the table when the output is a file or a pipe.
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 160)
    options = _loop_options(args.uvloop)
    args.uvloop = bool(options)
    try:
        with local_redis(args.url) as url:
            report = anyio.run(run, url, args, console, backend_options=options)
    except streamq.StreamqError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report, console)
    return 0


def _loop_options(uvloop: bool) -> dict[str, Any]:
    if not uvloop:
        return {}
    try:
        import uvloop as _  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


if __name__ == "__main__":
    sys.exit(main())

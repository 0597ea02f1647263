"""The command line of ``python -m streamq.bench``: arguments, the run, the table."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from typing import Any, cast

import anyio
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import streamq
from streamq.client.manager import DEFAULT_KEEP_EVENTS
from streamq.ops.eventloop import backend_options
from streamq.store.keys import registry_key

from .control import scenario_control
from .fairness import scenario_fairness
from .flows import scenario_flows
from .measure import RedisMeter, Result, environment, is_cluster_url, open_target, server_url
from .scenarios import BENCH_PREFIX, RUNNERS, Runner, worker
from .shards import scenario_shards

__all__ = ("main",)

SCENARIOS = (
    "enqueue",
    "process",
    "latency",
    "delayed",
    "priority",
    "mixed",
    "control",
    "flows",
    "fairness",
    "memory",
    "shards",
)
#: Run when no --scenario is given (``fairness`` and ``memory`` are long: ask for them;
#: ``shards`` needs a cluster).
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s not in ("fairness", "memory", "shards"))
#: Run with --cluster when no --scenario is given: one queue on one primary, then six on three.
CLUSTER_SCENARIOS = ("enqueue", "process", "shards")

_RUNNERS: dict[str, Runner] = {
    **RUNNERS,
    "shards": scenario_shards,
    "control": scenario_control,
    "flows": scenario_flows,
    "fairness": scenario_fairness,
}


async def run(url: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    started = time.time()
    async with open_target(url) as target:
        env = await environment(target, args)
        meter = RedisMeter(target)
        results: list[Result] = []
        with Progress(console=console, transient=True, disable=args.json) as progress:
            task = progress.add_task("benchmark", total=len(args.scenario) * args.repeat)
            try:
                for _ in range(args.repeat):
                    for scenario in args.scenario:
                        progress.update(task, description=scenario)
                        results += await _RUNNERS[scenario](url, args, meter)
                        progress.advance(task)
            finally:
                progress.update(task, description="removing the benchmark's queues")
                with anyio.CancelScope(shield=True):
                    await _remove_queues(url, since=started)
    return {"environment": env, "results": [asdict(r) for r in _medians(results)]}


async def _remove_queues(url: str, since: float) -> None:
    """Delete the queues this run made (a user's Redis keeps nothing of the benchmark)."""
    async with streamq.QueueManager(url) as qm:
        made = await qm.redis.zrangebyscore(registry_key(qm.prefix), since - 1, "+inf")
        for name in cast("list[bytes]", made):
            if name.startswith(BENCH_PREFIX.encode()):
                await qm.get_queue(name.decode()).delete(force=True)


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
    cluster = env.get("cluster")
    shape = (
        f" (Cluster: {cluster['primaries']} primaries, {cluster['replicas']} replicas)"
        if cluster
        else ""
    )
    console.print(
        f"streamq {env['streamq']} · Python {env['python']} ({env['event_loop']}) · redis-py"
        f" {env['redis']} (hiredis {env['hiredis']}) · {env['server']}{shape}"
        f" · {env['cpu']} x {env['cpus']}"
        + (" · with PrometheusMetrics" if env.get("metrics") else "")
        + (" · with OpenTelemetry" if env.get("otel") else "")
    )
    table = Table(title="streamq benchmark (medians)")
    for column in (
        "scenario",
        "what",
        "jobs",
        "jobs/s",
        "Redis µs/job",
        "cmds/job",
        "round trips/job",
        "details",
    ):
        table.add_column(column, justify="left" if column in ("scenario", "what") else "right")
    for r in report["results"]:
        details = "  ".join(f"{k} {v:.2f}" for k, v in r["extra"].items())
        table.add_row(
            r["scenario"],
            r["label"],
            f"{r['jobs']:,}",
            f"{r['rate']:,.0f}",
            f"{r['redis_cpu_us']:.1f}",
            f"{r['commands']:.2f}",
            f"{r['round_trips']:.3f}",
            details,
        )
    console.print(table)
    if any("primaries" in r for r in report["results"]):
        console.print(_primaries_table(report["results"]))


def _primaries_table(results: list[dict[str, Any]]) -> Table:
    """The shards rows, primary by primary (per job of that primary's queues)."""
    table = Table(title="shards: per primary")
    for column in (
        "what",
        "primary",
        "queues",
        "jobs",
        "CPU % of a core",
        "Redis µs/job",
        "cmds/job",
        "round trips/job",
        "replicas µs/job",
    ):
        table.add_column(column, justify="left" if column in ("what", "primary") else "right")
    for r in results:
        for p in r.get("primaries", ()):
            table.add_row(
                r["label"],
                p["primary"],
                str(len(p["queues"])),
                f"{p['jobs']:,}",
                f"{p['cpu_pct']:.0f}",
                f"{p['redis_cpu_us']:.1f}",
                f"{p['commands']:.2f}",
                f"{p['round_trips']:.3f}",
                f"{p['replicas_cpu_us']:.1f}" if p["replicas"] else "-",
            )
    return table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streamq.bench",
        description="Measure streamq's throughput and latency against a real Redis.",
    )
    parser.add_argument(
        "--url", help="Redis URL (default: $STREAMQ_REDIS_URL, else a throwaway local redis-server)"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run against a Redis Cluster: --url or $STREAMQ_REDIS_URL if it is a"
        " redis+cluster:// URL, else a throwaway local cluster (3 primaries, 1 replica each);"
        f" default scenarios {', '.join(CLUSTER_SCENARIOS)}",
    )
    parser.add_argument(
        "--cluster-replicas",
        type=int,
        default=1,
        metavar="N",
        help="replicas per primary of the throwaway cluster (default 1;"
        " 0 leaves replication's cost out)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="scenario to run (repeatable; default: all but memory and shards;"
        " shards needs --cluster)",
    )
    parser.add_argument(
        "--jobs", type=int, default=20_000, help="jobs per scenario (shards: per queue)"
    )
    parser.add_argument("--concurrency", type=int, default=10, help="consumer concurrency")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="also drain with this many worker processes (process and shards scenarios)",
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("URL", "QUEUES", "CONCURRENCY"), help=argparse.SUPPRESS
    )
    parser.add_argument("--producers", type=int, default=8, help="concurrent producers")
    parser.add_argument("--rate", type=float, default=400.0, help="offered jobs/s (latency)")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (median)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="attach streamq.ops.metrics.PrometheusMetrics to every manager (in"
        " this process), to see what the metrics cost",
    )
    parser.add_argument(
        "--otel",
        action="store_true",
        help="attach streamq.ops.otel.OpenTelemetryHooks (the SDK, spans batched and dropped)"
        " to every manager, to see what tracing costs",
    )
    parser.add_argument(
        "--keep-events",
        type=int,
        default=DEFAULT_KEEP_EVENTS,
        metavar="N",
        help="each manager's keep_events: lifecycle events kept per queue (0: none written,"
        f" default {DEFAULT_KEEP_EVENTS:,})",
    )
    parser.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="plain asyncio instead of uvloop"
    )
    args = parser.parse_args(argv)
    found = os.environ.get("STREAMQ_REDIS_URL")
    if args.cluster:
        if args.url and not is_cluster_url(args.url):
            parser.error("--cluster needs a redis+cluster://host:port[,host:port...] --url")
        # A standalone server in the environment is not what --cluster asks for.
        args.url = args.url or (found if is_cluster_url(found) else None)
    elif is_cluster_url(args.url or found):
        args.cluster, args.url = True, args.url or found
    args.scenario = args.scenario or list(CLUSTER_SCENARIOS if args.cluster else DEFAULT_SCENARIOS)
    if "shards" in args.scenario and not args.cluster:
        parser.error("the shards scenario needs a Redis Cluster: add --cluster")
    if args.keep_events < 0:
        parser.error("--keep-events must be at least 0")
    for name in ("jobs", "concurrency", "producers", "repeat", "processes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.cluster_replicas < 0:
        parser.error("--cluster-replicas must be at least 0")
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        url, queue_names, concurrency = args.worker
        anyio.run(worker, url, queue_names, int(concurrency), backend_options=backend_options(True))
        return 0
    # Wide enough for the table when the output is a file or a pipe.
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 160)
    options = backend_options(args.uvloop)
    args.uvloop = bool(options)
    try:
        with server_url(args.url, args.cluster, args.cluster_replicas) as url:
            report = anyio.run(run, url, args, console, backend_options=options)
    except streamq.StreamqError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report, console)
    return 0

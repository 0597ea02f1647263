"""What the benchmark measures with: result rows, the server or cluster under test, and the
INFO deltas (redis-server CPU, commands, round trips) around a measured piece of work."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import RedisError

import streamq
from streamq.errors import StreamqError
from streamq.testing.localcluster import LocalCluster
from streamq.testing.localserver import local_redis
from streamq.transport.connection import CLUSTER_SCHEME

__all__ = (
    "Node",
    "RedisMeter",
    "Result",
    "Shard",
    "Target",
    "Usage",
    "environment",
    "is_cluster_url",
    "open_target",
    "percentile",
    "server_url",
)

_READS = "total_reads_processed"
#: INFO requests the meter sends to each node per snapshot (cpu, commandstats, stats).
_METER_READS = 3


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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- the server or cluster under test ------------------------------------------------------


@dataclass
class Node:
    """One redis-server, reached directly (never through a cluster client) for INFO."""

    address: str
    client: aioredis.Redis


@dataclass
class Shard:
    """A primary, its replicas and the slot ranges it serves (a standalone server is one shard
    serving every slot)."""

    primary: Node
    replicas: list[Node]
    slots: list[tuple[int, int]]

    def owns(self, key: str) -> bool:
        slot = key_slot(key.encode())
        return any(first <= slot <= last for first, last in self.slots)


@dataclass
class Target:
    url: str
    cluster: bool
    shards: list[Shard]

    @property
    def primaries(self) -> list[Node]:
        return [s.primary for s in self.shards]

    @property
    def replicas(self) -> list[Node]:
        return [r for s in self.shards for r in s.replicas]

    def shard_of(self, key: str) -> Shard:
        for shard in self.shards:
            if shard.owns(key):
                return shard
        raise StreamqError(f"no primary serves the slot of {key!r}: is every slot assigned?")


def is_cluster_url(url: str | None) -> bool:
    return url is not None and urlsplit(url).scheme == CLUSTER_SCHEME


@contextlib.contextmanager
def server_url(url: str | None, cluster: bool, replicas: int = 1) -> Iterator[str]:
    """``url``, else a throwaway local server, or with ``cluster`` a throwaway local cluster of
    3 primaries with ``replicas`` replicas each."""
    if not cluster or url:
        with local_redis(url) as found:
            yield found
        return
    with LocalCluster(primaries=3, replicas=replicas) as local:
        yield local.url


@contextlib.asynccontextmanager
async def open_target(url: str) -> AsyncIterator[Target]:
    nodes: list[Node] = []
    try:
        if not is_cluster_url(url):
            nodes.append(Node(url, aioredis.Redis.from_url(url, protocol=2)))
            yield Target(url, False, [Shard(nodes[0], [], [(0, 16383)])])
            return
        yield Target(url, True, await _cluster_shards(url, nodes))
    finally:
        for node in nodes:
            await node.client.aclose()


async def _cluster_shards(url: str, opened: list[Node]) -> list[Shard]:
    """The cluster's primaries and slot ranges (CLUSTER SLOTS, from the first seed node that
    answers) and each primary's replicas (its INFO replication: CLUSTER SLOTS hides replicas
    that have not received any data yet)."""
    parts = urlsplit(url)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None

    def node(host: str, port: int) -> Node:
        client = aioredis.Redis(
            host=host, port=port, username=username, password=password, protocol=2
        )
        opened.append(Node(f"{host}:{port}", client))
        return opened[-1]

    seeds = parts.netloc.rpartition("@")[2].split(",")
    slot_map: list[Any] = []
    for seed in seeds:
        seed_host, _, seed_port = seed.strip().rpartition(":")
        try:
            slot_map = await node(seed_host.strip("[]"), int(seed_port)).client.cluster("SLOTS")
            break
        except (OSError, RedisError):
            continue
    if not slot_map:
        raise StreamqError(f"no node of {seeds} answered CLUSTER SLOTS")
    by_primary: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for first, last, (host, port, *_), *_ in slot_map:
        by_primary.setdefault((host.decode(), int(port)), []).append((int(first), int(last)))
    shards = []
    for (host, port), slots in sorted(by_primary.items()):
        primary = node(host, port)
        info = await primary.client.info("replication")
        replicas = [
            node(str(v["ip"]), int(v["port"]))
            for k, v in info.items()
            if k.startswith("slave") and isinstance(v, dict)
        ]
        shards.append(Shard(primary, replicas, sorted(slots)))
    return shards


# -- INFO deltas ---------------------------------------------------------------------------


@dataclass
class Usage:
    """One node's work between two snapshots."""

    cpu_seconds: float = 0.0
    commands: int = 0
    round_trips: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        self.cpu_seconds += other.cpu_seconds
        self.commands += other.commands
        self.round_trips += other.round_trips
        return self


_Snapshot = tuple[float, dict[str, int]]


class RedisMeter:
    """INFO deltas on every node of the target around a measured piece of work. A row's figures
    are the primaries' (summed on a cluster, idle ones included: what the cluster spent); the
    replicas' CPU goes into its ``replicas_cpu_us``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._nodes = [*target.primaries, *target.replicas]
        self._before: dict[str, _Snapshot] = {}

    @staticmethod
    async def _snapshot(client: aioredis.Redis) -> _Snapshot:
        cpu = await client.info("cpu")
        stats = await client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        # Socket reads the server processed: requests that came in one round trip each (the
        # commands inside scripts are in commandstats but are no round trips).
        calls[_READS] = int((await client.info("stats"))[_READS])
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls

    async def start(self) -> None:
        self._before = {n.address: await self._snapshot(n.client) for n in self._nodes}

    async def usage(self) -> dict[str, Usage]:
        """Each node's work since :meth:`start`, by address."""
        usage = {}
        for node in self._nodes:
            cpu, calls = await self._snapshot(node.client)
            cpu_before, calls_before = self._before[node.address]
            delta = {k: v - calls_before.get(k, 0) for k, v in calls.items() if k != "info"}
            # Less the meter's own INFO requests (at each end).
            reads = delta.pop(_READS) - _METER_READS
            usage[node.address] = Usage(cpu - cpu_before, sum(delta.values()), reads)
        return usage

    async def finish(self, result: Result) -> Result:
        return self.fill(result, await self.usage())

    def fill(self, result: Result, usage: dict[str, Usage]) -> Result:
        jobs = max(result.jobs, 1)
        primaries = Usage()
        for node in self.target.primaries:
            primaries += usage[node.address]
        result.redis_cpu_us = primaries.cpu_seconds * 1e6 / jobs
        result.commands = primaries.commands / jobs
        result.round_trips = primaries.round_trips / jobs
        if self.target.replicas:
            replicas = sum(usage[n.address].cpu_seconds for n in self.target.replicas)
            result.extra["replicas_cpu_us"] = replicas * 1e6 / jobs
        return result


# -- the environment -----------------------------------------------------------------------


async def environment(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    client = target.primaries[0].client
    server = await client.info("server")
    config = await client.config_get("appendonly")
    config.update(await client.config_get("appendfsync"))
    config.update(await client.config_get("save"))
    env = {
        "streamq": streamq.__version__,
        "python": platform.python_version(),
        **{name.replace("-", "_"): _version_of(name) for name in _LIBRARIES},
        "event_loop": "uvloop" if args.uvloop else "asyncio",
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "redis_server": server.get("redis_version"),
        # Valkey answers redis_version with the Redis release it is compatible with.
        "server": (
            f"Valkey {server['valkey_version']}"
            if "valkey_version" in server
            else f"Redis {server.get('redis_version')}"
        ),
        "redis_config": {k: str(v) for k, v in config.items()},
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "metrics": args.metrics,
        "otel": args.otel,
    }
    if target.cluster:
        env["cluster"] = {"primaries": len(target.primaries), "replicas": len(target.replicas)}
    return env


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

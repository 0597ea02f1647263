"""The ``shards`` scenario: queues spread evenly over a Redis Cluster's primaries, drained at
once, with what each primary (and its replicas) spent per job."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from redis.crc import key_slot

import streamq
from streamq.errors import StreamqError
from streamq.store.keys import QueueKeys

from .measure import RedisMeter, Result, Target, Usage
from .scenarios import drain, drain_in_workers, manager, queue_name

__all__ = ("PrimaryUsage", "ShardsResult", "place_queues", "scenario_shards")

QUEUES_PER_PRIMARY = 2
#: Names tried before giving up on a primary that serves too few slots to be hit.
_MAX_TRIES = 1_000_000


@dataclass
class PrimaryUsage:
    """One primary's part of a ``shards`` run; per-job figures are per job of its queues."""

    primary: str
    replicas: list[str]
    queues: list[str]
    jobs: int
    #: redis-server's CPU over the drain, in % of one core (100 = that primary is saturated).
    cpu_pct: float
    redis_cpu_us: float
    commands: float
    round_trips: float
    replicas_cpu_us: float


@dataclass
class ShardsResult(Result):
    primaries: list[PrimaryUsage] = field(default_factory=list)


def place_queues(target: Target, prefix: str, per_primary: int) -> dict[str, list[str]]:
    """Fresh queue names, ``per_primary`` for each primary, chosen by where their keys' hash tag
    falls in the cluster's slot map (names alone say nothing about their slots)."""
    placement: dict[str, list[str]] = {s.primary.address: [] for s in target.shards}
    base = queue_name("shards")
    for n in range(_MAX_TRIES):
        name = f"{base}-{n}"
        names = placement[target.shard_of(QueueKeys(prefix, name).stream).primary.address]
        if len(names) < per_primary:
            names.append(name)
        if all(len(found) == per_primary for found in placement.values()):
            return placement
    raise StreamqError(f"found no queue names hashing to every primary in {_MAX_TRIES} tries")


async def _fill(
    qm: streamq.QueueManager, target: Target, placement: dict[str, list[str]], jobs: int
) -> list[streamq.Queue[int]]:
    """``jobs`` jobs in each queue, then a check that each primary holds its queues' keys."""
    queues = []
    for shard in target.shards:
        for name in placement[shard.primary.address]:
            queue = qm.get_queue(name, int)
            await queue.enqueue_many(range(jobs))
            slot = key_slot(QueueKeys(qm.prefix, name).stream.encode())
            held = await shard.primary.client.cluster("COUNTKEYSINSLOT", slot)
            if not held:
                raise StreamqError(f"queue {name!r} is not on {shard.primary.address} as planned")
            queues.append(queue)
    return queues


def _result(
    meter: RedisMeter,
    label: str,
    timed: tuple[int, float],
    usage: dict[str, Usage],
    placement: dict[str, list[str]],
    jobs_per_queue: int,
) -> ShardsResult:
    jobs, seconds = timed
    result = ShardsResult("shards", label, jobs, seconds, jobs / seconds)
    meter.fill(result, usage)
    for shard in meter.target.shards:
        names = placement[shard.primary.address]
        own = usage[shard.primary.address]
        served = max(jobs_per_queue * len(names), 1)
        replicas = sum(usage[r.address].cpu_seconds for r in shard.replicas)
        result.primaries.append(
            PrimaryUsage(
                primary=shard.primary.address,
                replicas=[r.address for r in shard.replicas],
                queues=names,
                jobs=jobs_per_queue * len(names),
                cpu_pct=own.cpu_seconds / seconds * 100,
                redis_cpu_us=own.cpu_seconds * 1e6 / served,
                commands=own.commands / served,
                round_trips=own.round_trips / served,
                replicas_cpu_us=replicas * 1e6 / served,
            )
        )
    return result


async def scenario_shards(url: str, args: argparse.Namespace, meter: RedisMeter) -> list[Result]:
    """Two queues per primary, ``--jobs`` jobs each, drained by one consumer per queue in this
    process (and, with ``--processes``, again by that many worker processes)."""
    target = meter.target
    if not target.cluster:
        raise StreamqError("the shards scenario needs a Redis Cluster: add --cluster")
    shape = f"{QUEUES_PER_PRIMARY * len(target.shards)} queues on {len(target.shards)} primaries"
    results: list[Result] = []
    async with manager(url, args) as qm:
        placement = place_queues(target, qm.prefix, QUEUES_PER_PRIMARY)
        queues = await _fill(qm, target, placement, args.jobs)
        await meter.start()
        seconds = await drain(queues, args.jobs, args.concurrency, lambda job: None)
        timed = (args.jobs * len(queues), seconds)
        label = f"{shape}, 1 process"
        results.append(_result(meter, label, timed, await meter.usage(), placement, args.jobs))
        if args.processes > 1:
            placement = place_queues(target, qm.prefix, QUEUES_PER_PRIMARY)
            queues = await _fill(qm, target, placement, args.jobs)
            timed = await drain_in_workers(url, qm, queues, args.jobs, args, meter)
            label = f"{shape}, {args.processes} processes"
            usage = await meter.usage()
            results.append(_result(meter, label, timed, usage, placement, args.jobs))
    return results

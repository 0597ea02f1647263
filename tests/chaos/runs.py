"""What the handlers recorded (:mod:`tests.chaos.handlers`), read back by the tests."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import anyio
import redis.asyncio as aioredis

import streamq

from .handlers import finishes_key, starts_key

__all__ = ("Run", "Runs", "job_states", "read_runs")


@dataclass(frozen=True)
class Run:
    job_id: str
    pid: int
    #: When it started, by the Redis server's clock (unix ms).
    started_ms: int


@dataclass
class Runs:
    #: Every run's start, by job, in order.
    started: dict[str, list[Run]]
    #: The PIDs of the runs that returned, by job, in order.
    finished: dict[str, list[int]]

    def count(self, job_id: str) -> int:
        return len(self.started.get(job_id, ()))

    @property
    def reruns(self) -> int:
        """Runs beyond each job's first."""
        return sum(len(runs) - 1 for runs in self.started.values())

    def reruns_by_pid(self) -> dict[int, int]:
        """The runs that had to be run again (all of a job's runs but its last), by the PID of
        the process that had them."""
        counts: dict[int, int] = defaultdict(int)
        for runs in self.started.values():
            for run in runs[:-1]:
                counts[run.pid] += 1
        return dict(counts)

    @property
    def acks_lost(self) -> int:
        """Runs again after a run that returned: its process died before the completion was
        written."""
        return sum(len(self.finished.get(job_id, ())) - 1 for job_id in self.finished)

    def unexplained_reruns(self, killed: set[int]) -> list[str]:
        """Jobs run again although no earlier run's process was killed (nothing but a dead
        consumer justifies a second run)."""
        return [
            job_id
            for job_id, runs in self.started.items()
            if len(runs) > 1 and not all(run.pid in killed for run in runs[:-1])
        ]


async def read_runs(client: aioredis.Redis, queue: str) -> Runs:
    started: dict[str, list[Run]] = defaultdict(list)
    for raw in await client.lrange(starts_key(queue), 0, -1):
        job_id, pid, ms = _text(raw).split()
        started[job_id].append(Run(job_id, int(pid), int(ms)))
    finished: dict[str, list[int]] = defaultdict(list)
    for raw in await client.lrange(finishes_key(queue), 0, -1):
        job_id, pid = _text(raw).split()
        finished[job_id].append(int(pid))
    return Runs(dict(started), dict(finished))


async def job_states(queue: streamq.Queue[Any], ids: list[str]) -> dict[str, str]:
    """Every job's state (``"unknown"`` when streamq has no record), a few hundred lookups at a
    time (they share the manager's pipelined lane)."""
    states: dict[str, str] = {}
    limiter = anyio.CapacityLimiter(200)

    async def look(job_id: str) -> None:
        async with limiter:
            info = await queue.get_job(job_id)
        states[job_id] = "unknown" if info is None else info.state

    async with anyio.create_task_group() as tg:
        for job_id in ids:
            tg.start_soon(look, job_id)
    return states


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw

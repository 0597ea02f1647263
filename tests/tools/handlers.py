"""Handlers for the tests of ``python -m streamq worker`` (imported by the worker processes).

A job's result is the worker's PID, so a test can tell which process ran it.
"""

from __future__ import annotations

import os

import anyio
import msgspec

import streamq


class Nap(msgspec.Struct):
    seconds: float


async def report_pid(job: streamq.Job[int]) -> int:
    return os.getpid()


async def nap(job: streamq.Job[Nap]) -> int:
    """Sleeps ``job.data.seconds`` (a job that is still running when the worker is stopped)."""
    await anyio.sleep(job.data.seconds)
    return os.getpid()


def sync_report_pid(job: streamq.Job[int]) -> int:
    return os.getpid()


NOT_A_FUNCTION = 42


class AClass:
    """Not a handler: calling it would make an instance per job."""

    def __init__(self, job: streamq.Job[int]) -> None:
        self.job = job


def takes_nothing() -> None:
    """Not a handler: it cannot be given the job."""


async def fail_on_negative(job: streamq.Job[int]) -> int:
    """Returns its number, and fails on a negative one (for the dead letters)."""
    if job.data < 0:
        raise ValueError(f"negative: {job.data}")
    return job.data


async def count_down(job: streamq.Job[int]) -> int:
    """Enqueues the next number down through the job's manager, until 0."""
    assert job.manager is not None
    if job.data > 0:
        await job.manager.get_queue(job.queue, int).enqueue(job.data - 1, job_id=f"n{job.data - 1}")
    return job.data


async def note_startup(qm: streamq.QueueManager) -> None:
    await qm.redis.rpush(f"hooks:{os.getpid()}", f"startup {qm.instance_id}")


def note_shutdown(qm: streamq.QueueManager) -> None:
    """A plain function: called as it is (it cannot await), from the worker's event loop."""
    import redis

    with redis.Redis.from_url(os.environ["STREAMQ_REDIS_URL"]) as client:
        client.rpush(f"hooks:{os.getpid()}", "shutdown")

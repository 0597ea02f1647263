"""Worker processes (``tests/tools/worker.py``) for the tests that kill them, and what they
report starting."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

__all__ = ("SpawnWorker", "next_start", "spawn_worker")

WORKER = Path(__file__).parent.parent / "tools" / "worker.py"
SpawnWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn_worker(redis_url: str, queue_name: str) -> Iterator[SpawnWorker]:
    """Start worker processes; any still alive at the end are killed by their PID."""
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(
        mode: str,
        vt: float = 1.0,
        max_retries: int = 3,
        group: str = "",
        global_concurrency: int = 0,
        per_key_concurrency: int = 0,
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                redis_url,
                queue_name,
                mode,
                str(vt),
                str(max_retries),
                group,
                str(global_concurrency),
                str(per_key_concurrency),
            ],
            stdin=subprocess.DEVNULL,
        )
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)


async def next_start(
    redis: aioredis.Redis, queue_name: str, timeout: float = 15
) -> tuple[str, int]:
    """The (job id, attempt) a worker process reported starting."""
    reply = await redis.blpop([f"test:{queue_name}:started"], timeout=timeout)
    assert reply is not None, f"no worker started a job within {timeout}s"
    value = reply[1]
    text = value.decode() if isinstance(value, bytes) else value
    job_id, attempt, _pid = text.rsplit(":", 2)
    return job_id, int(attempt)

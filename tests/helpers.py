"""Small helpers shared by the tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

import streamq


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await anyio.sleep(0.02)


class Producer:
    """Enqueues numbered jobs (id ``job-<n>``, data ``n``) through failovers and reshardings:
    each is tried again until Redis acknowledges it (the same id, so a retry adds nothing).
    ``acknowledged`` holds what Redis acknowledged, ``acknowledged_at`` when; ``refused``
    counts the tries that failed."""

    def __init__(self, queue: streamq.Queue[Any], pause: float = 0.1) -> None:
        self.queue = queue
        self.pause = pause
        self.acknowledged: set[int] = set()
        self.acknowledged_at: dict[int, float] = {}
        self.refused = 0

    async def produce(self, n: int) -> None:
        while True:
            try:
                await self.queue.enqueue(n, job_id=f"job-{n}")
            except (RedisError, streamq.StreamqError, OSError):
                self.refused += 1
                await anyio.sleep(self.pause)
            else:
                self.acknowledged.add(n)
                self.acknowledged_at[n] = time.monotonic()
                return

    async def produce_all(
        self, numbers: Iterable[int], producers: int = 1, pace: float = 0.0
    ) -> None:
        """``producers`` at a time, each taking the next number in turn (and pausing ``pace``
        seconds after each)."""
        pending = iter(numbers)

        async def producer() -> None:
            for n in pending:
                await self.produce(n)
                if pace:
                    await anyio.sleep(pace)

        async with anyio.create_task_group() as tg:
            for _ in range(producers):
                tg.start_soon(producer)


async def pause_redis(client: aioredis.Redis, milliseconds: int) -> None:
    """CLIENT PAUSE ALL on the server, or on every node of a cluster (a cluster client would
    send it to one node, not always the one holding the queue)."""
    if isinstance(client, RedisCluster):
        await client.client_pause(milliseconds, all=True, target_nodes=RedisCluster.ALL_NODES)
    else:
        await client.client_pause(milliseconds, all=True)


async def unpause_redis(client: aioredis.Redis) -> None:
    if isinstance(client, RedisCluster):
        await client.client_unpause(target_nodes=RedisCluster.ALL_NODES)
    else:
        await client.client_unpause()


def run_example(code: str, redis_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a README example as a user would, as a script against the suite's server."""
    example = tmp_path / "example.py"
    example.write_text(code)
    return subprocess.run(
        [sys.executable, str(example)],
        env={"STREAMQ_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

"""One instance of an app that keeps a local copy in sync over a broadcast (README, "A
broadcast"), for the fault suite:

    python -m tests.chaos.instance QUEUE INSTANCE_ID GROUP_IDLE_TIMEOUT

It consumes QUEUE (``int`` jobs) in a group of its own, ``sync:<instance id>``, until SIGTERM.
Each job's number goes into the group's bitmap ``chaos:{QUEUE}:got:<group>`` and the group's
counter ``chaos:{QUEUE}:count:<group>`` (pipelined every 0.1 s), so that the test tells jobs
missed (bits unset) from jobs received twice (count above the bits).
"""

from __future__ import annotations

import os
import signal
import sys

import anyio
import redis.asyncio as aioredis

import streamq
from streamq.ops.eventloop import run
from streamq.transport.connection import URL_ENV

__all__ = ("CONCURRENCY", "count_key", "got_key")

FLUSH_EVERY = 0.1
CONCURRENCY = 32


def got_key(queue: str, group: str) -> str:
    return f"chaos:{{{queue}}}:got:{group}"


def count_key(queue: str, group: str) -> str:
    return f"chaos:{{{queue}}}:count:{group}"


async def main(queue_name: str, instance_id: str, idle_timeout: float) -> None:
    client = aioredis.Redis.from_url(os.environ[URL_ENV])
    received: list[int] = []

    async def apply(job: streamq.Job[int]) -> None:
        received.append(job.data)

    async def flush() -> None:
        batch = received[:]
        del received[: len(batch)]
        if batch:
            pipe = client.pipeline(transaction=False)
            for n in batch:
                pipe.setbit(got_key(queue_name, group), n, 1)
            pipe.incrby(count_key(queue_name, group), len(batch))
            await pipe.execute()

    async def flush_often() -> None:
        while True:
            await anyio.sleep(FLUSH_EVERY)
            await flush()

    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with (
            streamq.QueueManager(instance_id=instance_id, group_idle_timeout=idle_timeout) as qm,
            anyio.create_task_group() as tg,
        ):
            group = f"sync:{qm.instance_id}"
            tg.start_soon(flush_often)
            await qm.get_queue(queue_name, int).consume(
                apply, consumer_group=group, concurrency=CONCURRENCY
            )
            print(f"instance {os.getpid()}: consuming in group {group}", flush=True)
            async for _ in signals:
                break
            await qm.stop_consumers()
            tg.cancel_scope.cancel()
    await flush()
    await client.aclose()


if __name__ == "__main__":
    run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]))

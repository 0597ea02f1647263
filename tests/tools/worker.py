"""A worker process for the tests that kill workers.

    python tests/tools/worker.py URL QUEUE MODE VISIBILITY_TIMEOUT MAX_RETRIES [GROUP]

Each job it starts is reported by RPUSH of ``job_id:attempt:pid`` to ``test:{QUEUE}:started``.
MODE ``hang`` then sleeps until the process is killed; MODE ``die`` exits at once (a poison job).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio

import streamq
from streamq.transport.connection import connect


async def main(
    url: str, queue_name: str, mode: str, vt: float, max_retries: int, group: str
) -> None:
    marker = await connect(url)  # a cluster client for a redis+cluster:// URL
    async with streamq.QueueManager(url) as qm:

        async def handle(job: streamq.Job[Any]) -> None:
            await marker.rpush(
                f"test:{queue_name}:started", f"{job.id}:{job.attempt}:{os.getpid()}"
            )
            if mode == "die":
                os._exit(17)
            await anyio.sleep(3600)

        await qm.get_queue(queue_name).consume(
            handle, visibility_timeout=vt, max_retries=max_retries, consumer_group=group or None
        )
        await marker.rpush(f"test:{queue_name}:ready", os.getpid())
        await anyio.sleep_forever()


if __name__ == "__main__":
    url, queue_name, mode, vt, max_retries = sys.argv[1:6]
    group = sys.argv[6] if len(sys.argv) > 6 else ""
    anyio.run(main, url, queue_name, mode, float(vt), int(max_retries), group)

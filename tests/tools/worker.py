"""A worker process for the tests that kill workers.

    python tests/tools/worker.py URL QUEUE MODE VISIBILITY_TIMEOUT MAX_RETRIES [GROUP [GLOBAL
        [PER_KEY]]]

GLOBAL is the consumer's global_concurrency, PER_KEY its per_key_concurrency (0: none).

Each job it starts is reported by RPUSH of ``job_id:attempt:pid`` to ``test:{QUEUE}:started``.
MODE ``hang`` then sleeps until the process is killed; MODE ``die`` exits at once (a poison job);
MODE ``progress`` logs a line and sets its progress first; MODE ``checkpoint`` goes through
items 0..999 from ``job.resume_from`` (0 on a fresh job), checkpointing every 100, reports each
item in ``test:{QUEUE}:item`` and hangs at item 550. MODE ``flow`` runs the flow fan-in: each
job of QUEUE (a child) takes 20-80 ms and is added to ``test:{QUEUE}:done`` as it returns; it
also consumes ``QUEUE-parent``, whose jobs report ``job_id:attempt:number of children's
results`` to ``test:{QUEUE}:parent``.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import anyio

import streamq
from streamq.transport.connection import connect


async def main(
    url: str,
    queue_name: str,
    mode: str,
    vt: float,
    max_retries: int,
    group: str,
    most: int,
    per_key: int,
) -> None:
    marker = await connect(url)  # a cluster client for a redis+cluster:// URL
    async with streamq.QueueManager(url) as qm:

        async def handle(job: streamq.Job[Any]) -> None:
            await marker.rpush(
                f"test:{queue_name}:started", f"{job.id}:{job.attempt}:{os.getpid()}"
            )
            if mode == "die":
                os._exit(17)
            if mode == "progress":
                await job.log(f"started in {os.getpid()}")
                await job.set_progress({"done": 1, "of": 3})
                await marker.rpush(f"test:{queue_name}:progressed", job.id)
            if mode == "checkpoint":
                start = 0 if job.resume_from is None else job.resume_from
                await marker.rpush(f"test:{queue_name}:resumed", f"{job.attempt}:{start}")
                for item in range(start, 1000):
                    if item % 100 == 0:
                        await job.checkpoint(item)
                    await marker.set(f"test:{queue_name}:item", item)
                    if item == 550 and job.attempt == 1:
                        break
                else:
                    return
            await anyio.sleep(3600)

        async def child(job: streamq.Job[Any]) -> Any:
            await anyio.sleep(random.uniform(0.02, 0.08))
            await marker.sadd(f"test:{queue_name}:done", job.id)
            return job.data

        async def parent(job: streamq.Job[Any]) -> None:
            results = await job.children_results()
            await marker.rpush(
                f"test:{queue_name}:parent", f"{job.id}:{job.attempt}:{len(results)}"
            )

        if mode == "flow":
            await qm.get_queue(f"{queue_name}-parent").consume(parent, visibility_timeout=vt)
        await qm.get_queue(queue_name).consume(
            child if mode == "flow" else handle,
            visibility_timeout=vt,
            max_retries=max_retries,
            consumer_group=group or None,
            global_concurrency=most or None,
            per_key_concurrency=per_key or None,
        )
        await marker.rpush(f"test:{queue_name}:ready", os.getpid())
        await anyio.sleep_forever()


if __name__ == "__main__":
    url, queue_name, mode, vt, max_retries = sys.argv[1:6]
    group = sys.argv[6] if len(sys.argv) > 6 else ""
    most = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    per_key = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    anyio.run(main, url, queue_name, mode, float(vt), int(max_retries), group, most, per_key)

"""The common workload (see _common.py) on bullmq, the Python port of BullMQ; run with
.cache/peers/bullmq/venv/bin/python.

Producer: one ``bullmq.Queue(name, {"connection": url})`` per queue and ``await queue.add("noop",
{"p": payload})``; bulk is ``queue.addBulk([...])`` (one call). Worker: in-process,
``bullmq.Worker(name, processor, {"connection": url, "concurrency": N})``, which starts running
on the producer's event loop as it is created, with BullMQ's defaults otherwise (completed jobs
are kept, as ``removeOnComplete`` is off by default; locks, stalled-job checks).
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version
from typing import Any

from _common import Adapter, OnJob, main
from bullmq import Queue, Worker


class BullmqAdapter(Adapter):
    library = "bullmq"
    version = version("bullmq")
    has_bulk = True

    async def setup(self) -> None:
        self.queues: dict[str, Any] = {}

    async def teardown(self) -> None:
        for queue in self.queues.values():
            await queue.close()

    async def prepare(self, queue: str) -> None:
        if queue not in self.queues:
            self.queues[queue] = Queue(queue, {"connection": self.url})

    async def enqueue(self, queue: str, payload: Any) -> None:
        await self.queues[queue].add("noop", {"p": payload})

    async def enqueue_bulk(self, queue: str, payloads: list[Any]) -> None:
        await self.queues[queue].addBulk([{"name": "noop", "data": {"p": p}} for p in payloads])

    async def start_worker(self, queue: str, on_job: OnJob) -> Any:
        async def process(job: Any, token: str) -> None:
            on_job(job.data["p"])

        return Worker(queue, process, {"connection": self.url, "concurrency": self.concurrency})

    async def stop_worker(self, worker: Any) -> None:
        await asyncio.wait_for(worker.close(), 60)  # graceful: lets the active jobs finish

    async def remaining(self, queue: str) -> int | None:
        counts = await self.queues[queue].getJobCounts("waiting", "active", "delayed", "paused")
        return sum(int(v) for v in counts.values())


if __name__ == "__main__":
    sys.exit(main(BullmqAdapter))

"""The common workload (see _common.py) on saq; run with .cache/peers/saq/venv/bin/python.

Producer: ``RedisQueue.enqueue("noop", payload=...)`` on one ``saq.Queue.from_url(url,
name=...)`` per queue (saq has no bulk enqueue: ``Queue.map`` enqueues many but then waits for
their results, so ``bulk`` is null). Worker: in-process, ``saq.Worker(queue, functions=[noop],
concurrency=N).start()`` as a task on the producer's event loop, on its own ``Queue`` object (its
own connection pool), with saq's other defaults (blocking dequeue, no polling).
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version
from typing import Any

from _common import Adapter, OnJob, cancel_and_wait, main
from saq import Queue, Worker


class SaqAdapter(Adapter):
    library = "saq"
    version = version("saq")

    async def setup(self) -> None:
        self.queues: dict[str, Any] = {}

    async def _queue(self, name: str) -> Any:
        if name not in self.queues:
            queue = Queue.from_url(self.url, name=name)
            await queue.connect()
            self.queues[name] = queue
        return self.queues[name]

    async def teardown(self) -> None:
        for queue in self.queues.values():
            await queue.disconnect()

    async def prepare(self, queue: str) -> None:
        await self._queue(queue)

    async def enqueue(self, queue: str, payload: Any) -> None:
        await self.queues[queue].enqueue("noop", payload=payload)

    async def start_worker(self, queue: str, on_job: OnJob) -> Any:
        async def noop(ctx: Any, *, payload: Any) -> None:
            on_job(payload)

        q = Queue.from_url(self.url, name=queue)
        await q.connect()
        worker = Worker(q, functions=[("noop", noop)], concurrency=self.concurrency)
        task = asyncio.create_task(worker.start())
        return q, worker, task

    async def stop_worker(self, worker: Any) -> None:
        q, worker, task = worker
        # Let the last jobs' finishing writes land, as a graceful shutdown would.
        for _ in range(100):
            if await q.count("active") == 0:
                break
            await asyncio.sleep(0.05)
        await worker.stop()
        await cancel_and_wait(task)
        await q.disconnect()

    async def remaining(self, queue: str) -> int | None:
        return int(await self.queues[queue].count("incomplete"))


if __name__ == "__main__":
    sys.exit(main(SaqAdapter))

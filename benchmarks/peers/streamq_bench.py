"""The common workload (see _common.py) on streamq; run with the project's venv.

    .venv/bin/python benchmarks/peers/streamq_bench.py --url redis://127.0.0.1:PORT/0

Worker: in-process, ``queue.consume(handler, concurrency=N)`` on its own ``QueueManager`` (its
own connection), sharing the event loop with the producer. Only the public API is used: the
single enqueues go to a queue with no consumer registered yet (the staged path), as every peer's
enqueues also go to a queue no worker is reading; bulk is ``queue.enqueue_many`` (one call).
"""

from __future__ import annotations

import sys
from typing import Any

from _common import Adapter, OnJob, main

import streamq


class StreamqAdapter(Adapter):
    library = "streamq"
    version = streamq.__version__
    has_bulk = True

    async def setup(self) -> None:
        self.qm = streamq.QueueManager(self.url)
        await self.qm.__aenter__()

    async def teardown(self) -> None:
        await self.qm.__aexit__(None, None, None)

    async def enqueue(self, queue: str, payload: Any) -> None:
        await self.qm.get_queue(queue).enqueue(payload)

    async def enqueue_bulk(self, queue: str, payloads: list[Any]) -> None:
        await self.qm.get_queue(queue).enqueue_many(payloads)

    async def start_worker(self, queue: str, on_job: OnJob) -> Any:
        qm = streamq.QueueManager(self.url)
        await qm.__aenter__()

        async def handle(job: streamq.Job[Any]) -> None:
            on_job(job.data)

        consumer = await qm.get_queue(queue).consume(handle, concurrency=self.concurrency)
        return qm, consumer

    async def stop_worker(self, worker: Any) -> None:
        qm, consumer = worker
        try:
            await consumer.stop()
        finally:
            await qm.__aexit__(None, None, None)

    async def remaining(self, queue: str) -> int | None:
        s = await self.qm.get_queue(queue).stats()
        return s.waiting + s.active + s.delayed + s.retrying


if __name__ == "__main__":
    sys.exit(main(StreamqAdapter))

"""The common workload (see _common.py) on streaq; run with .cache/peers/streaq/venv/bin/python.

streaq's ``Worker`` object is both the producer and the consumer. Producer: one ``Worker`` per
queue, opened with ``async with``, and ``await noop.enqueue(payload)``; bulk is
``worker.enqueue_many([noop.enqueue(p) for p in payloads])`` (one call, one pipeline). Worker:
in-process, a second ``Worker(queue_name=..., concurrency=N, handle_signals=False)`` with the
same task registered, ``run_async()`` as a task on the producer's event loop (anyio on asyncio),
with streaq's other defaults (prefetch = concurrency, pickle, results kept 5 min).
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from importlib.metadata import version
from typing import Any

from _common import Adapter, OnJob, cancel_and_wait, main
from streaq import Worker


class StreaqAdapter(Adapter):
    library = "streaq"
    version = version("streaq")
    has_bulk = True

    async def setup(self) -> None:
        self.stack = AsyncExitStack()
        self.producers: dict[str, tuple[Any, Any]] = {}

    async def teardown(self) -> None:
        await self.stack.aclose()

    def _worker(self, queue: str, on_job: OnJob | None = None) -> tuple[Any, Any]:
        worker = Worker(
            redis_url=self.url, queue_name=queue, concurrency=self.concurrency,
            handle_signals=False,
        )  # fmt: skip

        @worker.task(name="noop")
        async def noop(payload: Any) -> None:
            if on_job is not None:
                on_job(payload)

        return worker, noop

    async def prepare(self, queue: str) -> None:
        if queue not in self.producers:
            worker, noop = self._worker(queue)
            await self.stack.enter_async_context(worker)
            self.producers[queue] = worker, noop

    async def enqueue(self, queue: str, payload: Any) -> None:
        await self.producers[queue][1].enqueue(payload)

    async def enqueue_bulk(self, queue: str, payloads: list[Any]) -> None:
        worker, noop = self.producers[queue]
        await worker.enqueue_many([noop.enqueue(p) for p in payloads])

    async def start_worker(self, queue: str, on_job: OnJob) -> Any:
        worker, _ = self._worker(queue, on_job)
        task = asyncio.create_task(worker.run_async())
        return worker, task

    async def stop_worker(self, worker: Any) -> None:
        worker, task = worker
        # Let the last jobs' finishing writes land, as a graceful shutdown would.
        for _ in range(100):
            if worker.running() == 0:
                break
            await asyncio.sleep(0.05)
        await cancel_and_wait(task)

    async def remaining(self, queue: str) -> int | None:
        return int(await self.producers[queue][0].queue_size())


if __name__ == "__main__":
    sys.exit(main(StreaqAdapter))

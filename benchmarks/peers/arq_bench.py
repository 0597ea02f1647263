"""The common workload (see _common.py) on arq; run with .cache/peers/arq/venv/bin/python.

Producer: ``ArqRedis.enqueue_job("noop", payload, _queue_name=...)`` (arq has no bulk enqueue:
``bulk`` is null). Worker: in-process, ``arq.worker.Worker(functions=[noop], max_jobs=N,
queue_name=..., handle_signals=False).async_run()`` as a task on the producer's event loop, with
arq's other defaults (so ``poll_delay=0.5`` s: an idle worker looks for new jobs twice a second,
which is what its latency shows; results kept for ``keep_result=3600`` s). ``--poll-delay S``
(not passed by run.py) overrides ``poll_delay`` to see arq with that knob turned.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import version
from typing import Any

from _common import Adapter, OnJob, cancel_and_wait, main
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func


class ArqAdapter(Adapter):
    library = "arq"
    version = version("arq")
    poll_delay: float | None = None

    async def setup(self) -> None:
        self.settings = RedisSettings.from_dsn(self.url)
        self.pool = await create_pool(self.settings)

    async def teardown(self) -> None:
        await self.pool.aclose()

    async def enqueue(self, queue: str, payload: Any) -> None:
        await self.pool.enqueue_job("noop", payload, _queue_name=queue)

    async def start_worker(self, queue: str, on_job: OnJob) -> Any:
        async def noop(ctx: dict[str, Any], payload: Any) -> None:
            on_job(payload)

        worker = Worker(
            functions=[func(noop, name="noop")],
            redis_settings=self.settings,
            queue_name=queue,
            max_jobs=self.concurrency,
            handle_signals=False,
            **({} if self.poll_delay is None else {"poll_delay": self.poll_delay}),
        )
        task = asyncio.create_task(worker.async_run())
        return worker, task

    async def stop_worker(self, worker: Any) -> None:
        worker, task = worker
        # Let the finishing pipelines of the last jobs run, as a graceful shutdown would.
        for _ in range(100):
            if not any(not t.done() for t in worker.tasks.values()):
                break
            await asyncio.sleep(0.05)
        await cancel_and_wait(task)
        await worker.close()

    async def remaining(self, queue: str) -> int | None:
        return int(await self.pool.zcard(queue))


if __name__ == "__main__":
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--poll-delay", type=float)
    known, rest = extra.parse_known_args()
    ArqAdapter.poll_delay = known.poll_delay
    if known.poll_delay is not None:
        ArqAdapter.version += f" (poll_delay={known.poll_delay:g})"
    sys.exit(main(ArqAdapter, rest))

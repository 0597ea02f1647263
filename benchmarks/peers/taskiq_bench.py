"""The common workload (see _common.py) on taskiq with taskiq-redis's Redis Streams broker; run
with .cache/peers/taskiq/venv/bin/python.

Producer: one ``taskiq_redis.RedisStreamBroker(url, queue_name=...)`` per queue, started (which
creates the consumer group, at ``$``: so before anything is enqueued), and ``await
noop.kiq(payload)`` (taskiq has no bulk enqueue: ``bulk`` is null). Worker: in-process, a second
broker for the same stream with the same task registered, run as ``taskiq worker`` runs each of
its worker processes: ``taskiq.receiver.Receiver(broker, max_async_tasks=N).listen(event)`` (as a
task on the producer's event loop), stopped by setting the event as the CLI does on SIGTERM.
(``taskiq.api.run_receiver_task`` stops only by cancellation, which once hung for minutes in a
full run: the receiver kept reading.) taskiq's defaults otherwise: no result backend, ack when
the task is done, ``xread_count=100``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

from _common import Adapter, OnJob, log, main
from taskiq.receiver import Receiver
from taskiq_redis import RedisStreamBroker


class TaskiqAdapter(Adapter):
    library = "taskiq"
    version = f"{version('taskiq')} (taskiq-redis {version('taskiq-redis')})"

    async def setup(self) -> None:
        self.producers: dict[str, tuple[Any, Any]] = {}

    async def teardown(self) -> None:
        for broker, _ in self.producers.values():
            await broker.shutdown()

    def _broker(self, queue: str, on_job: OnJob | None = None) -> tuple[Any, Any]:
        broker = RedisStreamBroker(self.url, queue_name=queue)

        async def noop(payload: Any) -> None:
            if on_job is not None:
                on_job(payload)

        return broker, broker.register_task(noop, task_name="noop")

    async def prepare(self, queue: str) -> None:
        if queue not in self.producers:
            broker, task = self._broker(queue)
            await broker.startup()
            self.producers[queue] = broker, task

    async def enqueue(self, queue: str, payload: Any) -> None:
        await self.producers[queue][1].kiq(payload)

    async def start_worker(self, queue: str, on_job: OnJob) -> Any:
        broker, _ = self._broker(queue, on_job)
        await broker.startup()
        broker.is_worker_process = True
        # As `taskiq worker` runs each worker process: a Receiver listening until an event.
        executor = ThreadPoolExecutor()
        receiver = Receiver(
            broker=broker, executor=executor, max_async_tasks=self.concurrency, run_startup=False
        )
        finish = asyncio.Event()
        task = asyncio.create_task(receiver.listen(finish))
        return broker, executor, finish, task

    async def stop_worker(self, worker: Any) -> None:
        broker, executor, finish, task = worker
        # Let the last acks land, as a graceful shutdown would.
        for _ in range(100):
            if await self._pending(broker) == 0:
                break
            await asyncio.sleep(0.05)
        finish.set()  # what `taskiq worker` does on SIGTERM/SIGINT
        # The receiver then cancels its pending read of the stream, but now and then (about one
        # stop in ten here) that cancellation is lost inside redis-py's blocking XREADGROUP and
        # the read loop goes on: cancel that read again until the receiver has stopped.
        deadline = time.monotonic() + 30
        while not task.done() and time.monotonic() < deadline:
            await asyncio.wait({task}, timeout=1)
            if task.done():
                break
            for other in asyncio.all_tasks():
                if other is not task and "async_generator_asend" in repr(other.get_coro()):
                    log("taskiq: the receiver's read of the stream is still running; cancelling it")
                    other.cancel()
        if not task.done():
            raise RuntimeError("taskiq: the receiver did not stop within 30 s")
        executor.shutdown(wait=False)
        await broker.shutdown()

    async def _pending(self, broker: Any) -> int:
        from redis.asyncio import Redis

        async with Redis(connection_pool=broker.connection_pool) as client:
            groups = await client.xinfo_groups(broker.queue_name)
        return sum(int(g["pending"]) + int(g.get("lag") or 0) for g in groups)

    async def remaining(self, queue: str) -> int | None:
        return await self._pending(self.producers[queue][0])


if __name__ == "__main__":
    sys.exit(main(TaskiqAdapter))

"""``python -m streamq.demo``: a work queue, a broadcast, a dead letter and scheduling at work.

Uses ``$STREAMQ_REDIS_URL`` or starts a throwaway ``redis-server`` on a free port.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections import Counter
from typing import Any

import anyio
import msgspec

import streamq
from streamq.testing.localserver import local_redis


class Document(msgspec.Struct):
    name: str
    text: str


class Invalidate(msgspec.Struct):
    key: str
    value: str


DOCUMENTS = [
    Document(f"doc-{n:02d}.txt", " ".join(f"word{(n * k) % 17}" for k in range(200)))
    for n in range(24)
]


async def work_queue(url: str) -> None:
    """Two instances share one group: each document is indexed exactly once, by one of them."""
    print("1. Work queue: 24 documents indexed by two instances sharing the group 'indexers'")
    done_by: Counter[str] = Counter()

    def indexer(instance: str) -> Any:
        async def index(job: streamq.Job[Document]) -> dict[str, Any]:
            words = job.data.text.split()
            await anyio.sleep(0.01)  # an I/O wait, so both instances get a share
            done_by[instance] += 1
            return {
                "words": len(words),
                "distinct": len(set(words)),
                "sha256": hashlib.sha256(job.data.text.encode()).hexdigest()[:12],
            }

        return index

    async with streamq.QueueManager(url) as a, streamq.QueueManager(url) as b:
        for name, qm in (("instance-a", a), ("instance-b", b)):
            await qm.get_queue("documents", Document).consume(
                indexer(name), consumer_group="indexers", concurrency=4
            )
        documents = a.get_queue("documents", Document)
        ids = await documents.enqueue_many(DOCUMENTS)
        results = [await documents.wait_for(job_id, timeout=30) for job_id in ids]
    for doc, result in list(zip(DOCUMENTS, results, strict=True))[:3]:
        print(f"   {doc.name}: {result}")
    print(f"   ... {len(results)} results; jobs per instance: {dict(sorted(done_by.items()))}\n")


async def broadcast(url: str) -> None:
    """Each instance has its own group, so every instance receives every invalidation."""
    print("2. Broadcast: three instances each keep a local cache in sync")
    caches: dict[str, dict[str, str]] = {}
    settled = anyio.Event()
    updates = {f"user:{n}": f"v{n}" for n in range(10)}

    def syncer(cache: dict[str, str]) -> Any:
        async def apply(job: streamq.Job[Invalidate]) -> None:
            cache[job.data.key] = job.data.value
            if all(len(c) == len(updates) for c in caches.values()):
                settled.set()

        return apply

    async with (
        streamq.QueueManager(url) as one,
        streamq.QueueManager(url) as two,
        streamq.QueueManager(url) as three,
    ):
        for qm in (one, two, three):
            cache = caches[qm.instance_id] = {}
            await qm.get_queue("cache-sync", Invalidate).consume(
                syncer(cache), consumer_group=f"cache-sync:{qm.instance_id}"
            )
        producer = one.get_queue("cache-sync", Invalidate)
        await producer.enqueue_many(Invalidate(k, v) for k, v in updates.items())
        with anyio.fail_after(30):
            await settled.wait()
    for instance, cache in caches.items():
        print(f"   {instance}: {len(cache)} keys, user:9 = {cache['user:9']}")
    print()


async def dead_letters(url: str) -> None:
    """A job that keeps failing lands in the dead letters and is replayed once fixed."""
    print("3. Retries and dead letters: a payment provider that is down, then back")
    provider_up = False

    async def charge(job: streamq.Job[dict[str, Any]]) -> str:
        if not provider_up:
            raise ConnectionError(f"payment provider unreachable (attempt {job.attempt})")
        return f"charged {job.data['cents']} cents"

    async with streamq.QueueManager(url) as qm:
        payments = qm.get_queue("payments")
        await payments.purge_dead()
        await payments.consume(charge, max_retries=2, backoff=0.05)
        job_id = await payments.enqueue({"cents": 1299})
        try:
            await payments.wait_for(job_id, timeout=30)
        except streamq.JobFailed as exc:
            print(f"   failed for good: {exc.error}")
        (letter,) = await payments.dead_letters()
        print(f"   dead letter: {letter.data} after {letter.attempts} attempts")
        provider_up = True
        await payments.retry_dead(job_id)
        print(f"   replayed: {await payments.wait_for(job_id, timeout=30)}\n")


async def scheduling(url: str) -> None:
    """Priorities across a backlog, a delayed job, a recurring health check."""
    print("4. Scheduling: a backlog, an urgent job, a delayed reminder, a recurring health check")
    order: list[str] = []
    checks: list[float] = []
    reminder_at: list[float] = []
    finished = anyio.Event()

    async def work(job: streamq.Job[str]) -> None:
        if job.data == "health-check":
            checks.append(time.monotonic())
        elif job.data == "reminder":
            reminder_at.append(time.monotonic())
        else:
            order.append(job.data)
            await anyio.sleep(0.002)
        if len(order) == 201 and len(checks) >= 4 and reminder_at:
            finished.set()

    async with streamq.QueueManager(url) as qm:
        queue = qm.get_queue(f"demo-scheduling-{time.time_ns()}", str)
        await queue.enqueue_many(f"report-{n}" for n in range(200))
        await queue.enqueue("URGENT", priority=100)
        start = time.monotonic()
        await queue.enqueue("reminder", start_delay=0.5)
        await queue.schedule_recurring("health", "health-check", interval_seconds=0.25)
        await queue.consume(work, concurrency=2)
        with anyio.fail_after(30):
            await finished.wait()
        await queue.cancel_recurring("health")
    print(f"   URGENT ran as job #{order.index('URGENT') + 1} of 201, ahead of the backlog")
    print(f"   the reminder delayed 0.5 s started after {reminder_at[0] - start:.3f} s")
    print(f"   the health check (every 0.25 s) ran {len(checks)} times, once per tick\n")


async def main(url: str) -> None:
    await work_queue(url)
    await broadcast(url)
    await dead_letters(url)
    await scheduling(url)


def run() -> None:
    logging.basicConfig(level=logging.CRITICAL)  # the dead-letter part fails on purpose
    with local_redis() as url:
        print(f"streamq demo against {url}\n")
        try:
            import uvloop  # noqa: F401

            backend_options = {"use_uvloop": True}
        except ImportError:
            backend_options = {}
        anyio.run(main, url, backend_options=backend_options)


if __name__ == "__main__":
    try:
        run()
    except streamq.StreamqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

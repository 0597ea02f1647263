"""The lifecycle event stream (``Queue.events``), read by other processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.testing.localserver import LocalRedis

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]

READER = Path(__file__).parent.parent / "tools" / "event_reader.py"


def _reader(url: str, queue: str, name: str, since: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(READER), url, queue, name, since, str(count)],
        stdin=subprocess.DEVNULL,
    )


async def _seen(redis: aioredis.Redis, queue: str, name: str) -> list[str]:
    raw = await redis.lrange(f"test:{queue}:events:{name}", 0, -1)
    return [r.decode() if isinstance(r, bytes) else r for r in raw]


async def test_two_readers_in_other_processes_see_every_event_in_order(
    qm: streamq.QueueManager, queue_name: str, redis_url: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[Any]) -> str:
        if job.data == "bad":
            raise ValueError(f"bad on attempt {job.attempt}")
        await job.set_progress(50)
        return "done"

    ok = await queue.enqueue("ok")
    bad = await queue.enqueue("bad")
    total = 4 + 5  # ok: enqueued started progress completed; bad: enqueued (started failed) x2 dead
    whole = _reader(redis_url, queue_name, "whole", "0", total)
    # The second reader stops after 3 events and starts again from the last one it saw.
    first_part = _reader(redis_url, queue_name, "parts", "0", 3)
    try:
        await queue.consume(handle, max_retries=1, backoff=0.01)
        assert await queue.wait_for(ok, timeout=10) == "done"
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for(bad, timeout=10)
        await anyio.to_thread.run_sync(first_part.wait, 20)
        parts = await _seen(redis, queue_name, "parts")
        assert len(parts) == 3
        rest = _reader(redis_url, queue_name, "parts", parts[-1].rsplit(":", 1)[1], total - 3)
        await anyio.to_thread.run_sync(rest.wait, 20)
        await anyio.to_thread.run_sync(whole.wait, 20)
    finally:
        for process in (whole, first_part):
            if process.poll() is None:
                process.kill()
    seen = await _seen(redis, queue_name, "whole")
    assert seen == await _seen(redis, queue_name, "parts"), "the restarted reader missed nothing"
    ids = [line.rsplit(":", 1)[1] for line in seen]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))

    def of(job_id: str) -> list[str]:
        return [f"{t}:{a}" for t, j, a, _ in (line.split(":") for line in seen) if j == job_id]

    assert of(ok) == ["enqueued:0", "started:1", "progress:1", "completed:1"]
    assert of(bad) == ["enqueued:0", "started:1", "failed:1", "started:2", "dead:2"]


async def test_events_carry_details_and_cancel(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    got: list[streamq.Event] = []
    started = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> Any:
        if job.data == "long":
            started.set()
            await anyio.sleep(30)
        if job.data == "again":
            raise streamq.Retry(delay=0.01, reason="not yet")
        if job.data == "never":
            raise streamq.Unrecoverable("no such customer")
        await job.set_progress({"half": True})
        return {"sum": 3}

    async def read() -> None:
        async for event in queue.events(since="0"):
            got.append(event)  # noqa: PERF401 - read as they come, until cancelled

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await queue.consume(handle)
        done = await queue.wait_for(await queue.enqueue("short"), timeout=10)
        assert done == {"sum": 3}
        for data in ("again", "never"):
            with pytest.raises(streamq.JobFailed):
                await queue.wait_for(await queue.enqueue(data, max_retries=1), timeout=10)
        long = await queue.enqueue("long")
        with anyio.fail_after(10):
            await started.wait()
        await queue.cancel(long)
        await wait_until(lambda: any(e.type == "cancelled" for e in got), timeout=5)
        tg.cancel_scope.cancel()
    by_type = {e.type: e for e in got}
    failures = [(e.type, e.attempt, e.detail) for e in got if e.type in ("failed", "dead")]
    assert failures == [
        ("failed", 1, "Retry: not yet (in 0.01s)"),
        ("dead", 2, "Retry: not yet (in 0.01s)"),
        ("dead", 1, "Unrecoverable: no such customer"),
    ]
    assert by_type["progress"].detail == {"half": True}
    assert by_type["completed"].detail == {"sum": 3}
    assert by_type["completed"].group == queue_name
    assert by_type["cancelled"].job_id == long and by_type["cancelled"].group is None
    assert all(e.at > 1.7e9 for e in got)
    with pytest.raises(streamq.InvalidArgument, match="event id"):
        queue.events(since="yesterday")


async def test_no_events_are_written_with_keep_events_0(
    redis_url: str, queue_name: str, redis: aioredis.Redis
) -> None:
    async with streamq.QueueManager(redis_url, keep_events=0) as qm:
        queue = qm.get_queue(queue_name)

        async def handle(job: streamq.Job[Any]) -> None:
            await job.set_progress(1)

        await queue.consume(handle)
        await queue.wait_for(await queue.enqueue(1), timeout=10)
    assert await redis.exists(f"streamq:{{{queue_name}}}:events") == 0


async def test_recurring_occurrences_and_replays_are_enqueued_events(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    got: list[streamq.Event] = []
    healthy = False

    async def handle(job: streamq.Job[Any]) -> str:
        if job.data == "flaky" and not healthy:
            raise streamq.Unrecoverable("not yet")
        return "ok"

    async def read() -> None:
        async for event in queue.events(since="0"):
            got.append(event)  # noqa: PERF401 - read as they come, until cancelled

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await queue.consume(handle)
        flaky = await queue.enqueue("flaky")
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for(flaky, timeout=10)
        healthy = True
        assert await queue.retry_dead(flaky) == 1
        assert await queue.wait_for(flaky, timeout=10) == "ok"
        await queue.schedule_recurring("tick", "tock", interval_seconds=60)

        def ticked() -> bool:
            return any(e.type == "completed" and e.job_id.startswith("tick@") for e in got)

        await wait_until(ticked, timeout=10, what="the first occurrence to run")
        tg.cancel_scope.cancel()
    of_flaky = [e.type for e in got if e.job_id == flaky]
    assert of_flaky == ["enqueued", "started", "dead", "enqueued", "started", "completed"]
    [tick] = {e.job_id for e in got if e.job_id.startswith("tick@")}
    assert [e.type for e in got if e.job_id == tick] == ["enqueued", "started", "completed"]


async def test_a_lost_server_ends_the_events_with_a_clear_error(queue_name: str) -> None:
    with LocalRedis() as server:
        async with streamq.QueueManager(server.url, socket_timeout=2.0) as qm:
            events = qm.get_queue(queue_name).events(since="0")
            server.stop()
            with pytest.raises(streamq.ConnectionFailed, match=r"queue '.*': events: .*since="):
                await events.__anext__()

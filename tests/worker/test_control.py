"""Job control: cancelling running jobs, progress and logs, checkpoints, pause and resume,
request/reply."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq

from ..helpers import wait_until
from .spawned import SpawnWorker, next_start, spawn_worker

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]

__all__ = ("spawn_worker",)  # the fixture


async def test_a_running_handler_is_cancelled_from_another_manager_and_not_retried(
    qm: streamq.QueueManager, queue_name: str, redis_url: str
) -> None:
    queue = qm.get_queue(queue_name)
    started = anyio.Event()
    stopped_at: list[float] = []
    runs: list[int] = []

    async def handle(job: streamq.Job[Any]) -> None:
        runs.append(job.attempt)
        started.set()
        try:
            await anyio.sleep(30)
        finally:
            stopped_at.append(time.monotonic())

    cancels: list[streamq.JobEvent] = []

    class Seen(streamq.Hooks):
        def on_cancel(self, event: streamq.JobEvent) -> None:
            cancels.append(event)

    qm.add_hooks(Seen())
    await queue.consume(handle, max_retries=3, backoff=0.01)
    job_id = await queue.enqueue("long import")
    with anyio.fail_after(10):
        await started.wait()
    async with streamq.QueueManager(redis_url) as other:
        asked = time.monotonic()
        assert await other.get_queue(queue_name).cancel(job_id) is True
        with pytest.raises(streamq.JobCancelled, match="was cancelled"):
            await other.get_queue(queue_name).wait_for(job_id, timeout=5)
    await wait_until(lambda: bool(stopped_at), timeout=5, what="the handler to stop")
    assert stopped_at[0] - asked < 0.5
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "cancelled"
    await wait_until(lambda: bool(cancels), timeout=5, what="the on_cancel hook")
    assert cancels[0].job_id == job_id and cancels[0].duration is not None
    await wait_until(_nothing_pending(queue), timeout=5, what="the entry to be acknowledged")
    await anyio.sleep(0.3)  # a retry would be due by now (backoff 0.01 s)
    assert runs == [1], "a cancelled job is not retried"
    assert await queue.dead_letters() == []
    assert await queue.cancel(job_id) is False, "cancelling a finished job changes nothing"
    assert (await queue.get_job(job_id)).state == "cancelled"  # type: ignore[union-attr]


def _nothing_pending(queue: streamq.Queue[Any]) -> Any:
    async def check() -> bool:
        stats = await queue.stats()
        return stats.active == 0 and stats.waiting == 0

    return check


async def test_a_plain_function_handler_sees_job_cancelled(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    started = threading.Event()
    saw: list[bool] = []

    def handle(job: streamq.Job[Any]) -> str:
        started.set()
        deadline = time.monotonic() + 10
        while not job.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        saw.append(job.cancelled)
        return "stopped early"

    await queue.consume(handle, max_retries=2, backoff=0.01)
    job_id = await queue.enqueue(1)
    await wait_until(started.is_set, timeout=10, what="the thread to start")
    assert await queue.cancel(job_id)
    await wait_until(lambda: bool(saw), timeout=5, what="the function to return")
    assert saw == [True]
    await wait_until(_nothing_pending(queue), timeout=5, what="the entry to be acknowledged")
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "cancelled" and info.result is None


async def test_a_job_cancelled_while_its_killed_worker_held_it_never_runs_again(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, spawn_worker: SpawnWorker
) -> None:
    queue = qm.get_queue(queue_name)
    worker = spawn_worker("hang", vt=1.0)
    job_id = await queue.enqueue({"report": 1})
    assert await next_start(redis, queue_name) == (job_id, 1)
    worker.kill()
    worker.wait(10)
    assert await queue.cancel(job_id) is True
    runs: list[str] = []

    async def handle(job: streamq.Job[Any]) -> None:
        runs.append(job.id)

    await queue.consume(handle, visibility_timeout=1.0)
    # The entry is reclaimed after the visibility timeout and acknowledged without a run.
    await wait_until(_nothing_pending(queue), timeout=10, what="the entry to be acknowledged")
    assert runs == []
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "cancelled"


async def test_cancel_reaches_a_handler_when_the_message_is_lost_through_the_heartbeat(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    started = anyio.Event()
    stopped = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> None:
        started.set()
        try:
            await anyio.sleep(30)
        finally:
            stopped.set()

    await queue.consume(handle, visibility_timeout=1.5)
    job_id = await queue.enqueue(1)
    with anyio.fail_after(10):
        await started.wait()
    # What cancel.lua does, without its message: the heartbeat (every 0.5 s here) finds it.
    await redis.hset(f"streamq:{{{queue_name}}}:job:{job_id}", "state", "cancelled")
    with anyio.fail_after(3):
        await stopped.wait()
    await wait_until(_nothing_pending(queue), timeout=5, what="the entry to be acknowledged")


async def test_cancel_of_a_waiting_job_before_any_consumer(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue(1)
    assert await queue.cancel(job_id) is True
    assert await queue.cancel(job_id) is False
    assert await queue.cancel("no-such-job") is False
    runs: list[str] = []

    async def handle(job: streamq.Job[Any]) -> None:
        runs.append(job.id)

    await queue.consume(handle)
    marker = await queue.enqueue(2)
    await queue.wait_for(marker, timeout=5)
    assert runs == [marker]


async def test_progress_and_logs_are_read_from_another_process(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, spawn_worker: SpawnWorker
) -> None:
    queue = qm.get_queue(queue_name)
    spawn_worker("progress")
    job_id = await queue.enqueue({"rows": 3})
    reply = await redis.blpop([f"test:{queue_name}:progressed"], timeout=15)
    assert reply is not None
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "active"
    assert info.progress == {"done": 1, "of": 3}
    (line,) = await queue.job_logs(job_id)
    assert line.startswith("started in ")
    assert await queue.job_logs("no-such-job") == []


async def test_logs_are_capped_and_expire_with_the_record(
    redis_url: str, queue_name: str, redis: aioredis.Redis
) -> None:
    async with streamq.QueueManager(redis_url, result_ttl=60) as qm:
        queue = qm.get_queue(queue_name)

        async def handle(job: streamq.Job[Any]) -> str:
            for n in range(1005):
                await job.log(f"line {n}")
            await job.set_progress(100)
            return "done"

        await queue.consume(handle)
        job_id = await queue.enqueue(1)
        assert await queue.wait_for(job_id, timeout=20) == "done"
        logs = await queue.job_logs(job_id)
        assert len(logs) == 1000 and logs[0] == "line 5" and logs[-1] == "line 1004"
        logs_key = f"streamq:{{{queue_name}}}:logs:{job_id}"
        assert 0 < await redis.ttl(logs_key) <= 60
        info = await queue.get_job(job_id)
        assert info is not None and info.progress == 100
        # Enqueued anew under the same id: the old log goes with the old record.
        await queue.enqueue(2, job_id=job_id)
        assert await queue.wait_for(job_id, timeout=20) == "done"
        assert len(await queue.job_logs(job_id)) == 1000


async def test_a_job_made_by_hand_can_call_the_job_methods(queue_name: str) -> None:
    job = streamq.Job(
        id="j", data=1, queue=queue_name, attempt=1, max_retries=0, priority=0, enqueued_at=0.0
    )
    await job.set_progress(1)
    await job.log("x")
    await job.checkpoint(3)
    assert job.cancelled is False and job.resume_from is None


async def test_a_killed_job_resumes_from_its_last_checkpoint(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, spawn_worker: SpawnWorker
) -> None:
    queue = qm.get_queue(queue_name)
    worker = spawn_worker("checkpoint", vt=1.0)
    job_id = await queue.enqueue("import")

    async def at_550() -> bool:
        return await redis.get(f"test:{queue_name}:item") in (b"550", "550")

    await wait_until(at_550, timeout=20, what="the worker to reach item 550")
    worker.kill()
    worker.wait(10)
    spawn_worker("checkpoint", vt=1.0)
    reply = await redis.blpop([f"test:{queue_name}:resumed"], timeout=15)
    assert reply is not None and reply[1] in (b"1:0", "1:0")
    reply = await redis.blpop([f"test:{queue_name}:resumed"], timeout=15)
    assert reply is not None and reply[1] in (b"2:500", "2:500")
    info = await queue.wait_for(job_id, timeout=20)
    assert info is None
    assert await redis.get(f"test:{queue_name}:item") in (b"999", "999")


async def test_a_retry_resumes_from_the_checkpoint(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    seen: list[Any] = []

    async def handle(job: streamq.Job[Any]) -> str:
        seen.append(job.resume_from)
        if job.attempt == 1:
            await job.checkpoint({"page": 7})
            raise streamq.Retry(delay=0.01)
        return "ok"

    await queue.consume(handle)
    job_id = await queue.enqueue(1)
    assert await queue.wait_for(job_id, timeout=10) == "ok"
    assert seen == [None, {"page": 7}]


async def test_pause_stops_starts_across_managers_and_resume_restarts_them(
    qm: streamq.QueueManager, queue_name: str, redis_url: str
) -> None:
    starts: list[float] = []

    async def handle(job: streamq.Job[Any]) -> None:
        starts.append(time.monotonic())

    async with streamq.QueueManager(redis_url) as second:
        for manager in (qm, second):
            await manager.get_queue(queue_name).consume(handle, concurrency=2)
        queue = qm.get_queue(queue_name)
        first = await queue.enqueue(0)
        await queue.wait_for(first, timeout=5)
        assert await queue.pause() is True
        assert await queue.pause() is False
        paused_at = time.monotonic()
        await anyio.sleep(0.5)  # the pause holds everywhere within this
        assert (await queue.stats()).paused
        ids = [await queue.enqueue(n) for n in range(1, 11)]
        await anyio.sleep(0.3)  # a window in which nothing may start
        assert len([s for s in starts if s > paused_at]) == 0, "no job starts while paused"
        assert (await queue.stats()).waiting == 10
        # A consumer started while the queue is paused honours it.
        async with streamq.QueueManager(redis_url) as third:
            await third.get_queue(queue_name).consume(handle)
            await anyio.sleep(0.3)
            assert len([s for s in starts if s > paused_at]) == 0
            resumed_at = time.monotonic()
            assert await queue.resume() is True
            for job_id in ids:
                await queue.wait_for(job_id, timeout=5)
        assert min(s for s in starts if s > paused_at) - resumed_at < 0.5
        assert not (await queue.stats()).paused


async def test_pause_holds_for_a_consumer_that_restarts(redis_url: str, queue_name: str) -> None:
    async with streamq.QueueManager(redis_url) as qm:
        queue = qm.get_queue(queue_name)
        await queue.pause()
        await queue.enqueue(1)
    runs: list[int] = []

    async def handle(job: streamq.Job[Any]) -> None:
        runs.append(job.data)

    async with streamq.QueueManager(redis_url) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(handle)
        await anyio.sleep(0.3)
        assert runs == []
        await queue.resume()
        await wait_until(lambda: runs == [1], timeout=5, what="the job to run after resume")


async def test_call_returns_the_result_and_raises_like_wait_for(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[Any]) -> Any:
        if job.data == "fail":
            raise streamq.Unrecoverable("bad request")
        if job.data == "slow":
            await anyio.sleep(5)
        return {"echo": job.data}

    await queue.consume(handle)
    assert await queue.call("hi", timeout=5) == {"echo": "hi"}
    with pytest.raises(streamq.JobFailed, match="bad request"):
        await queue.call("fail", timeout=5)
    with pytest.raises(TimeoutError):
        await queue.call("slow", timeout=0.2, job_id="slow")
    assert await queue.cancel("slow"), "a call that timed out leaves its job to run"
    with pytest.raises(streamq.InvalidArgument):
        await queue.call("x", timeout=-1)


async def test_global_concurrency_holds_across_managers(
    redis_url: str, queue_name: str, redis: aioredis.Redis
) -> None:
    running_key, most_key = f"test:{queue_name}:running", f"test:{queue_name}:most"

    async def handle(job: streamq.Job[Any]) -> None:
        # Recorded in Redis: the handlers of three managers count together.
        now = await redis.incr(running_key)
        if now > int(await redis.get(most_key) or 0):
            await redis.set(most_key, now)
        await anyio.sleep(0.05)
        await redis.decr(running_key)

    async with (
        streamq.QueueManager(redis_url) as a,
        streamq.QueueManager(redis_url) as b,
        streamq.QueueManager(redis_url) as c,
    ):
        for manager in (a, b, c):
            await manager.get_queue(queue_name).consume(
                handle, concurrency=10, global_concurrency=3
            )
        queue = a.get_queue(queue_name)
        ids = await queue.enqueue_many(range(60))
        started = time.monotonic()
        for job_id in ids:
            await queue.wait_for(job_id, timeout=30)
        elapsed = time.monotonic() - started
    assert int(await redis.get(most_key) or 0) == 3
    # 60 jobs of 50 ms, 3 at a time: about 1 s; waiting for a slot does not sit out a lapse.
    assert elapsed < 5


async def test_a_killed_holders_slot_comes_back_after_the_visibility_timeout(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, spawn_worker: SpawnWorker
) -> None:
    queue = qm.get_queue(queue_name)
    worker = spawn_worker("hang", vt=1.0, global_concurrency=1)
    held = await queue.enqueue("held")
    assert await next_start(redis, queue_name) == (held, 1)
    worker.kill()
    worker.wait(10)
    ran: list[Any] = []

    async def handle(job: streamq.Job[Any]) -> None:
        ran.append(job.data)

    await queue.consume(handle, visibility_timeout=1.0, global_concurrency=1)
    second = await queue.enqueue("second")
    # Both run: the killed worker's slot lapses, its job is reclaimed here.
    await queue.wait_for(second, timeout=10)
    await queue.wait_for(held, timeout=10)
    assert sorted(ran) == ["held", "second"]


async def test_cancels_that_race_a_plain_functions_start_never_strand_a_worker(
    qm: streamq.QueueManager, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A cancel that came before a thread took the call: the call never runs, and the worker
    used to wait for it to return, for ever (a worker lost per such cancel; the stop hung)."""
    queue = qm.get_queue(queue_name)
    done: list[str] = []
    consumer = await queue.consume(lambda job: done.append(job.id), concurrency=5)
    enqueued: list[str] = []
    cancelled = 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        ids = await queue.enqueue_many(range(3))
        enqueued += ids
        cancelled += await queue.cancel(ids[-1])
    await wait_until(lambda: len(done) + cancelled >= len(enqueued), timeout=20, what="all jobs")
    asked = time.monotonic()
    await consumer.stop(grace=5)
    print(
        f"{len(enqueued)} jobs, {cancelled} cancelled; stopped in {time.monotonic() - asked:.2f}s"
    )
    assert time.monotonic() - asked < 2
    assert not [r for r in caplog.records if "still running" in r.getMessage()]

"""Recovery: killed workers, slow handlers on live consumers, graceful stops, poison jobs."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any, cast

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.store.keys import QueueKeys

from ..helpers import wait_until
from .spawned import SpawnWorker, next_start, spawn_worker

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]

__all__ = ("spawn_worker",)  # the fixture


async def test_job_of_a_killed_worker_is_run_by_another_consumer(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, spawn_worker: SpawnWorker
) -> None:
    queue = qm.get_queue(queue_name)
    worker = spawn_worker("hang", vt=1.0)
    job_id = await queue.enqueue({"report": 1})
    assert await next_start(redis, queue_name) == (job_id, 1)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    killed_at = time.monotonic()

    attempts: list[int] = []

    async def handle(job: streamq.Job[Any]) -> str:
        attempts.append(job.attempt)
        return "recovered"

    await queue.consume(handle, visibility_timeout=1.0)
    assert await queue.wait_for(job_id, timeout=10) == "recovered"
    assert attempts == [2]
    assert time.monotonic() - killed_at < 4.0


async def test_slow_handler_on_a_live_consumer_runs_exactly_once(
    redis_url: str, queue_name: str
) -> None:
    runs: list[int] = []

    async def slow(job: streamq.Job[Any]) -> str:
        runs.append(job.attempt)
        await anyio.sleep(3)
        return "slow but fine"

    async with (
        streamq.QueueManager(redis_url) as first,
        streamq.QueueManager(redis_url) as second,
    ):
        await first.get_queue(queue_name).consume(slow, visibility_timeout=1.0)
        await second.get_queue(queue_name).consume(slow, visibility_timeout=1.0)
        queue = first.get_queue(queue_name)
        job_id = await queue.enqueue("x")
        assert await queue.wait_for(job_id, timeout=15) == "slow but fine"
    assert runs == [1]


async def test_stop_lets_a_running_job_finish(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    started = anyio.Event()
    finished: list[str] = []

    async def handle(job: streamq.Job[Any]) -> str:
        started.set()
        await anyio.sleep(0.5)
        finished.append(job.id)
        return "done"

    consumer = await queue.consume(handle)
    job_id = await queue.enqueue(1)
    with anyio.fail_after(5):
        await started.wait()
    await consumer.stop(grace=5)
    assert finished == [job_id]
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "completed" and info.result == "done"
    assert not consumer.running


async def test_stop_past_grace_hands_unfinished_jobs_back_at_once(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    started = anyio.Event()
    cancelled: list[str] = []

    async def hang(job: streamq.Job[Any]) -> None:
        started.set()
        try:
            await anyio.sleep(3600)
        except anyio.get_cancelled_exc_class():
            cancelled.append(job.id)
            raise

    # Visibility timeout of a minute: only the hand-back can make the job run again quickly.
    consumer = await queue.consume(hang, visibility_timeout=60, concurrency=1)
    job_id = await queue.enqueue("owed")
    waiting_id = await queue.enqueue("never started")
    with anyio.fail_after(5):
        await started.wait()
    await consumer.stop(grace=0.1)
    assert cancelled == [job_id]

    attempts: dict[str, int] = {}

    async def handle(job: streamq.Job[Any]) -> None:
        attempts[job.id] = job.attempt

    # max_retries=0: an interrupted run must not use up the only attempt.
    await queue.consume(handle, visibility_timeout=60, max_retries=0)
    await queue.wait_for(job_id, timeout=5)
    await queue.wait_for(waiting_id, timeout=5)
    # An interrupted run is not a failed attempt: both come back as attempt 1.
    assert attempts == {job_id: 1, waiting_id: 1}


async def test_a_stopped_consumer_leaves_its_group_and_its_hand_back_is_said_as_one(
    qm: streamq.QueueManager,
    queue_name: str,
    redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A consumer that handed a job back stayed listed in its group for good, and the next one
    logged the job as taken from a consumer that "stopped heart-beating (stopped, crashed or
    cut off)"."""
    caplog.set_level(logging.INFO, logger="streamq")
    queue = qm.get_queue(queue_name)
    stream = QueueKeys(qm.prefix, queue_name).stream
    started = anyio.Event()

    async def hang(job: streamq.Job[Any]) -> None:
        started.set()
        await anyio.sleep(3600)

    first = await queue.consume(hang, concurrency=1)
    job_id = await queue.enqueue("handed back")
    with anyio.fail_after(5):
        await started.wait()
    await first.stop(grace=0.1)
    assert first.name not in await _consumers(redis, stream, queue_name)

    second = await queue.consume(lambda job: "done", visibility_timeout=60)
    assert await queue.wait_for(job_id, timeout=5) == "done"
    taken = [r for r in caplog.records if f"{job_id!r} of queue" in r.getMessage()]
    taken = [r for r in taken if "reclaimed" in r.getMessage()]
    assert len(taken) == 1
    assert taken[0].levelno == logging.INFO
    assert "handed it back as it stopped" in taken[0].getMessage()
    assert "heart-beating" not in taken[0].getMessage()
    # Only the live consumer is listed once the hand-back is taken.
    await wait_until(
        lambda: _consumers_are(redis, stream, queue_name, [second.name]), what="one consumer"
    )
    await second.stop()
    assert await _consumers(redis, stream, queue_name) == []


async def _consumers(redis: aioredis.Redis, stream: str, group: str) -> list[str]:
    return sorted(c["name"].decode() for c in await redis.xinfo_consumers(stream, group))


async def _consumers_are(redis: aioredis.Redis, stream: str, group: str, names: list[str]) -> bool:
    return await _consumers(redis, stream, group) == sorted(names)


async def test_manager_exit_stops_consumers_gracefully(redis_url: str, queue_name: str) -> None:
    finished: list[str] = []
    started = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> None:
        started.set()
        await anyio.sleep(0.3)
        finished.append(job.id)

    async with streamq.QueueManager(redis_url) as qm:
        queue = qm.get_queue(queue_name)
        consumer = await queue.consume(handle)
        job_id = await queue.enqueue(1)
        with anyio.fail_after(5):
            await started.wait()
    assert finished == [job_id]
    assert not consumer.running


async def test_poison_job_that_kills_its_worker_ends_in_the_dead_letters(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, spawn_worker: SpawnWorker
) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue("poison")
    seen_attempts = []
    for _ in range(2):  # max_retries=1: two attempts, each killing its worker
        worker = spawn_worker("die", vt=1.0, max_retries=1)
        got_id, attempt = await next_start(redis, queue_name)
        assert got_id == job_id
        seen_attempts.append(attempt)
        assert worker.wait(10) == 17
    assert seen_attempts == [1, 2]

    spawn_worker("die", vt=1.0, max_retries=1)  # the third delivery must not run it
    await wait_until(lambda: _dead_count(queue), timeout=10, what="the poison job to be dead")
    (dead,) = await queue.dead_letters()
    assert dead.job_id == job_id
    assert dead.attempts == 2
    assert "delivered 3 times without finishing" in dead.error
    assert await redis.llen(f"test:{queue_name}:started") == 0, "it ran a third time"


async def test_deliveries_that_never_started_are_not_attempts(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, spawn_worker: SpawnWorker
) -> None:
    queue = qm.get_queue(queue_name)
    worker = spawn_worker("hang", vt=1.0, max_retries=1)
    job_id = await queue.enqueue("started once")
    assert await next_start(redis, queue_name) == (job_id, 1)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    # Then consumers that read it ahead and died before they started it: three deliveries
    # that ran nothing.
    stream = f"streamq:{{{queue_name}}}:stream"
    (pending,) = await redis.xpending_range(stream, queue_name, "-", "+", 1)
    await redis.xclaim(
        stream,
        queue_name,
        "read-ahead-and-died",
        0,
        [pending["message_id"]],
        idle=3_600_000,
        retrycount=3,
        justid=True,
    )
    attempts: list[int] = []

    async def handle(job: streamq.Job[Any]) -> str:
        attempts.append(job.attempt)
        return "ran"

    # Its one failed attempt leaves it one more (max_retries=1), however often it was delivered.
    await queue.consume(handle, visibility_timeout=1.0, max_retries=1)
    assert await queue.wait_for(job_id, timeout=10) == "ran"
    assert attempts == [2]


async def _dead_count(queue: streamq.Queue[Any]) -> bool:
    return (await queue.stats()).dead == 1


async def test_stopping_under_load_loses_no_job(qm: streamq.QueueManager, queue_name: str) -> None:
    """Stops cut reads short; what Redis already delivered goes back to the group at once."""
    queue = qm.get_queue(queue_name)
    ids = await queue.enqueue_many(range(400))
    runs: list[int] = []
    progress = anyio.Event()
    goal = 0

    async def handle(job: streamq.Job[int]) -> None:
        runs.append(job.data)
        if len(runs) >= goal:
            progress.set()
        await anyio.sleep(0.001)

    for _ in range(5):  # each round runs about 30 + 2 x concurrency jobs: 400 is plenty
        goal, progress = len(runs) + 30, anyio.Event()
        consumer = await queue.consume(handle, max_retries=0, visibility_timeout=60)
        with anyio.fail_after(10):
            await progress.wait()
        await consumer.stop(grace=5)
    await queue.consume(handle, max_retries=0, visibility_timeout=60)
    for job_id in ids:
        await queue.wait_for(job_id, timeout=10)
    assert sorted(set(runs)) == list(range(400))
    assert (await queue.stats()).dead == 0


async def test_handler_raising_cancelled_error_is_a_failure_not_a_dead_consumer(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[Any]) -> str:
        if job.data == "cancel-me":
            raise anyio.get_cancelled_exc_class()()
        return "fine"

    consumer = await queue.consume(handle, max_retries=0)
    bad = await queue.enqueue("cancel-me")
    with pytest.raises(streamq.JobFailed, match="CancelledError"):
        await queue.wait_for(bad, timeout=5)
    assert await queue.wait_for(await queue.enqueue("next"), timeout=5) == "fine"
    assert consumer.running


@pytest.mark.parametrize("backoff_result", ["raise", float("nan"), -1.0])
async def test_a_broken_backoff_falls_back_to_the_default(
    qm: streamq.QueueManager, queue_name: str, backoff_result: Any
) -> None:
    queue = qm.get_queue(queue_name)

    def backoff(attempt: int) -> float:
        if backoff_result == "raise":
            raise RuntimeError("broken backoff")
        return float(backoff_result)

    async def handle(job: streamq.Job[Any]) -> None:
        raise ValueError("fails")

    consumer = await queue.consume(handle, max_retries=1, backoff=backoff)
    job_id = await queue.enqueue(1)
    await wait_until(lambda: _is_state(queue, job_id, "retrying"), what="a scheduled retry")
    assert consumer.running
    with pytest.raises(streamq.JobFailed, match="fails"):
        await queue.wait_for(job_id, timeout=10)  # the default backoff: about a second


async def _is_state(queue: streamq.Queue[Any], job_id: str, state: str) -> bool:
    info = await queue.get_job(job_id)
    return info is not None and info.state == state


async def test_stop_does_not_hang_when_redis_is_gone(queue_name: str) -> None:
    from streamq.testing.localserver import LocalRedis

    server = LocalRedis().start()
    try:
        async with streamq.QueueManager(server.url, shutdown_grace=1) as qm:
            queue = qm.get_queue(queue_name)
            started = anyio.Event()

            async def handle(job: streamq.Job[Any]) -> None:
                started.set()
                await anyio.sleep(0.5)

            await queue.consume(handle)
            await queue.enqueue(1)
            with anyio.fail_after(5):
                await started.wait()
            server.stop()  # by its PID, while the job runs
            with anyio.fail_after(20):
                await qm.stop_consumers(grace=1)
    finally:
        server.stop()


async def test_consumers_gone_for_long_are_removed_from_the_group(
    qm: streamq.QueueManager,
    queue_name: str,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamq.worker import consumer as consumer_module

    monkeypatch.setattr(consumer_module, "PRUNE_CONSUMERS_AFTER", 0.5)
    stream = f"streamq:{{{queue_name}}}:stream"
    queue = qm.get_queue(queue_name)
    await redis.xgroup_create(stream, queue_name, id="0", mkstream=True)
    await redis.xadd(stream, {"j": "taken-by-a-consumer-that-went-away", "p": b"\xc0"})
    reply = await redis.xreadgroup(queue_name, "long-gone", {stream: ">"}, count=1)
    await redis.xack(stream, queue_name, cast("list[Any]", reply)[0][1][0][0])  # owes nothing

    async def members() -> set[str]:
        return {m["name"].decode() for m in await redis.xinfo_consumers(stream, queue_name)}

    assert await members() == {"long-gone"}
    live = await queue.consume(lambda job: None, visibility_timeout=0.4)
    await queue.wait_for(await queue.enqueue("makes the live consumer a member"), timeout=5)
    assert live.name in await members()

    async def gone_consumer_removed() -> bool:
        return "long-gone" not in await members()

    await wait_until(gone_consumer_removed, what="the gone consumer to be removed")
    # A live consumer may be removed too while it owes nothing (Redis < 7.2 does not count an
    # empty read as activity): harmless, its next read makes it a member again.
    assert await queue.wait_for(await queue.enqueue("still served"), timeout=5) is None


async def test_a_busy_consumer_still_reclaims_a_dead_consumers_jobs(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    stream = f"streamq:{{{queue_name}}}:stream"
    queue = qm.get_queue(queue_name)
    await redis.xgroup_create(stream, queue_name, id="0", mkstream=True)
    for n in range(3):
        await redis.xadd(stream, {"j": f"orphan-{n}", "p": _payload(f"orphan-{n}")})
    await redis.xreadgroup(queue_name, "died", {stream: ">"}, count=3)  # and never acks
    await queue.enqueue_many(f"backlog-{n}" for n in range(20_000))
    seen: list[str] = []

    async def handle(job: streamq.Job[str]) -> None:
        seen.append(job.data)
        await anyio.sleep(0.001)

    await queue.consume(handle, visibility_timeout=1.0)
    await wait_until(
        lambda: all(f"orphan-{n}" in seen for n in range(3)),
        timeout=8,
        what="the dead consumer's jobs to be reclaimed",
    )
    assert len(seen) < 20_000, "the backlog ran dry before the reclaim: not a busy consumer"


async def test_a_run_handed_back_by_a_graceful_stop_is_not_counted_as_a_death(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    # A job whose worker died ran again on B, which stopped gracefully mid-run: C took it as
    # a job that had killed two consumers and dead-lettered it without running it.
    keys = QueueKeys(qm.prefix, queue_name)
    queue = qm.get_queue(queue_name)
    await redis.xgroup_create(keys.stream, queue_name, id="0", mkstream=True)
    await redis.hset(keys.window, mapping={"total": 1000})  # room: straight into the stream
    job_id = await queue.enqueue("x")
    # A worker that read it and was killed running it: never acknowledged, never heart-beaten.
    assert await redis.xreadgroup(queue_name, "killed", {keys.stream: ">"}, count=1)
    attempts: list[int] = []
    started = anyio.Event()

    async def hang(job: streamq.Job[str]) -> None:
        attempts.append(job.attempt)
        started.set()
        await anyio.sleep_forever()

    b = await queue.consume(hang, max_retries=1, visibility_timeout=1)
    with anyio.fail_after(10):
        await started.wait()
    await b.stop(grace=0.2)  # cancels the run and hands the job back: no failure

    async def finish(job: streamq.Job[str]) -> str:
        attempts.append(job.attempt)
        return "done"

    await queue.consume(finish, max_retries=1, visibility_timeout=1)
    assert await queue.wait_for(job_id, timeout=10) == "done"
    assert attempts == [2, 2]
    assert await queue.dead_letters() == []


def _payload(data: Any) -> bytes:
    import msgspec

    return msgspec.msgpack.encode([time.time(), 0, None, None, data])

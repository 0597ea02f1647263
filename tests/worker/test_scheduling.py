"""Scheduling: priority staging, delays, dedup, cancel, recurring jobs, rate limits."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import msgspec
import pytest
import redis.asyncio as aioredis
from cronsim import CronSim

import streamq
from streamq.store.keys import QueueKeys
from streamq.store.serialization import RecurringDef
from streamq.worker.recurring import first_run_ms, next_run_ms

from ..helpers import pause_redis, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


async def server_ms(redis: aioredis.Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_priority_holds_across_a_backlog(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue_many(("low", n) for n in range(1000))
    high = [await queue.enqueue(("high", n), priority=100) for n in range(5)]
    started: list[str] = []
    done = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> None:
        started.append(job.id)
        if len(started) == 60:
            done.set()

    await queue.consume(handle, concurrency=1)
    with anyio.fail_after(20):
        await done.wait()
    assert set(high) <= set(started[:60]), [started.index(h) for h in high if h in started]


async def test_high_priority_overtakes_a_backlog_that_is_being_consumed(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    started: list[Any] = []

    async def handle(job: streamq.Job[Any]) -> None:
        started.append(job.data)
        await anyio.sleep(0.001)

    await queue.consume(handle, concurrency=4)
    await queue.enqueue_many(range(2000))
    await wait_until(lambda: len(started) >= 100, what="the backlog to be under way")
    urgent = await queue.enqueue("urgent", priority=100)
    at = len(started)
    await queue.wait_for(urgent, timeout=10)
    # Behind it: at most the window (2 x concurrency) and what was running.
    assert started.index("urgent") - at <= 2 * 4 + 4 + 4


async def test_due_retries_are_staged_by_priority_too(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    """Retries went straight into the stream when due: an urgent job started after 176 of
    them."""
    queue = qm.get_queue(queue_name)
    started: list[tuple[Any, int]] = []

    async def handle(job: streamq.Job[Any]) -> None:
        started.append((job.data, job.attempt))
        if job.data != "urgent" and job.attempt == 1:
            raise ValueError("first attempts fail")
        await anyio.sleep(0.002)

    await queue.enqueue_many(range(300))
    await queue.consume(handle, concurrency=1, backoff=1.0, max_retries=3)

    def retries() -> int:
        return sum(1 for _, attempt in started if attempt == 2)

    await wait_until(lambda: retries() >= 20, timeout=20, what="the retries to be under way")
    at, retried = len(started), retries()
    urgent = await queue.enqueue("urgent", priority=100)
    assert retried < 250, "most retries should still wait when the urgent job comes"
    await queue.wait_for(urgent, timeout=20)
    # Behind it: at most the window (2 x concurrency), what was running, and the read after.
    assert started.index(("urgent", 1)) - at <= 2 * 1 + 1 + 2


async def test_replayed_dead_letters_are_staged_by_priority_too(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    """retry_dead() put every dead job straight into the stream: an urgent job enqueued next
    started after all 300."""
    queue = qm.get_queue(queue_name)
    broken = True
    started: list[Any] = []

    async def handle(job: streamq.Job[Any]) -> None:
        started.append(job.data)
        if broken and job.data != "urgent":
            raise ValueError("a bug, fixed later")
        await anyio.sleep(0.002)

    await queue.enqueue_many(range(300), priority=-5)
    await queue.consume(handle, concurrency=1, max_retries=0)
    await wait_until(lambda: _dead_count(queue, 300), timeout=20, what="300 dead jobs")
    broken = False
    at = len(started)
    assert await queue.retry_dead() == 300
    urgent = await queue.enqueue("urgent", priority=100)
    await queue.wait_for(urgent, timeout=20)
    assert started.index("urgent") - at <= 2 * 1 + 1 + 2
    # The replayed jobs kept their own priority (-5): a job of default priority goes first too.
    plain = await queue.enqueue("plain")
    before = len(started)
    await queue.wait_for(plain, timeout=20)
    assert started.index("plain") - before <= 2 * 1 + 1 + 2
    await wait_until(lambda: len(started) == 600 + 2, timeout=20, what="every replay to run")
    assert sorted(d for d in started[300:] if isinstance(d, int)) == list(range(300))


async def _dead_count(queue: streamq.Queue[Any], dead: int) -> bool:
    return (await queue.stats()).dead == dead


async def test_fifo_within_a_priority_and_higher_first(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    for n in range(5):
        await queue.enqueue(("p1", n), priority=1)
        await queue.enqueue(("p5", n), priority=5)
        await queue.enqueue(("p-3", n), priority=-3)
        await queue.enqueue(("p0", n))
    started: list[Any] = []
    await queue.consume(lambda job: started.append(tuple(job.data)), concurrency=1)
    await wait_until(lambda: len(started) == 20, what="all jobs")
    expected = [(level, n) for level in ("p5", "p1", "p0", "p-3") for n in range(5)]
    assert started == expected


@pytest.mark.parametrize("delay", [0.3, 1.0])
async def test_delayed_jobs_never_start_early_and_start_close_to_due(
    redis_url: str, queue_name: str, redis: aioredis.Redis, delay: float
) -> None:
    started = anyio.Event()
    started_ms: list[int] = []

    async def handle(job: streamq.Job[Any]) -> None:
        started_ms.append(await server_ms(redis))
        started.set()

    # The consumer's manager is idle (its scheduler asleep); another process enqueues.
    async with (
        streamq.QueueManager(redis_url) as consumer_side,
        streamq.QueueManager(redis_url) as producer_side,
    ):
        await consumer_side.get_queue(queue_name).consume(handle)
        queue = producer_side.get_queue(queue_name)
        before = await server_ms(redis)
        job_id = await queue.enqueue("later", start_delay=delay)
        info = await queue.get_job(job_id)
        assert info is not None and info.state == "delayed"
        assert (await queue.stats()).delayed == 1
        with anyio.fail_after(delay + 5):
            await started.wait()
    lateness = started_ms[0] - (before + delay * 1000)
    assert lateness >= 0, f"started {-lateness} ms early"
    assert lateness < 500, f"started {lateness} ms late"


async def test_a_due_time_is_never_before_the_enqueue_plus_its_delay(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    """Due times were the server's millisecond rounded down plus the delay: a job could be
    promoted, and start, up to 1 ms before its delay ran out (the bench saw -0.27 ms)."""
    queue = qm.get_queue(queue_name)
    delayed = QueueKeys(qm.prefix, queue_name).delayed
    for n in range(50):
        seconds, micros = await redis.time()
        before_us = int(seconds) * 1_000_000 + int(micros)
        job_id = await queue.enqueue(n, start_delay=0.5)
        due_ms = await redis.zscore(delayed, job_id)
        assert due_ms is not None
        early_us = before_us + 500_000 - due_ms * 1000
        assert early_us <= 0, f"due {early_us} us before the enqueue plus its delay"


async def test_delayed_and_prioritised_together(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue("late-low", start_delay=0.2, priority=-1)
    await queue.enqueue("late-high", start_delay=0.2, priority=9)
    started: list[str] = []
    await queue.consume(lambda job: started.append(job.data), concurrency=1)
    await wait_until(lambda: len(started) == 2, what="both delayed jobs")
    assert sorted(started) == ["late-high", "late-low"]


async def test_fifty_concurrent_enqueues_of_one_id_run_the_job_once(
    redis_url: str, queue_name: str
) -> None:
    runs: list[Any] = []
    async with streamq.QueueManager(redis_url) as a, streamq.QueueManager(redis_url) as b:
        queues = [a.get_queue(queue_name), b.get_queue(queue_name)]
        ids: list[str] = []

        async def enqueue(n: int) -> None:
            ids.append(await queues[n % 2].enqueue(n, job_id="once"))

        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(enqueue, n)
        assert set(ids) == {"once"}
        await queues[0].consume(lambda job: runs.append(job.data))
        await queues[0].wait_for("once", timeout=5)
        await queues[0].wait_for(await queues[0].enqueue("sentinel"), timeout=5)
    assert len(runs) == 2 and "sentinel" in runs


async def test_dedup_holds_for_delayed_and_retrying_jobs(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue("first", job_id="d", start_delay=0.3)
    await queue.enqueue("second", job_id="d")
    attempts: list[tuple[str, int]] = []
    retrying = anyio.Event()

    async def handle(job: streamq.Job[str]) -> str:
        attempts.append((job.data, job.attempt))
        if job.attempt == 1:
            retrying.set()
            raise ValueError("once")
        return job.data

    await queue.consume(handle, backoff=0.3)
    with anyio.fail_after(5):
        await retrying.wait()
    await queue.enqueue("third", job_id="d")  # retrying: still unfinished
    assert await queue.wait_for("d", timeout=5) == "first"
    assert attempts == [("first", 1), ("first", 2)]


async def test_cancel_waiting_and_delayed_jobs(
    redis_url: str, queue_name: str, redis: aioredis.Redis
) -> None:
    async with streamq.QueueManager(redis_url) as qm:
        queue = qm.get_queue(queue_name)
        staged = await queue.enqueue("staged", priority=3)
        delayed = await queue.enqueue("delayed", start_delay=60)
        assert await queue.cancel(staged)
        assert await queue.cancel(delayed)
        assert not await queue.cancel(delayed), "already cancelled"
        assert not await queue.cancel("unknown")
        for job_id in (staged, delayed):
            info = await queue.get_job(job_id)
            assert info is not None and info.state == "cancelled"
            with pytest.raises(streamq.JobFailed, match="cancelled"):
                await queue.wait_for(job_id, timeout=1)
        stats = await queue.stats()
        assert (stats.waiting, stats.delayed) == (0, 0)

        # A job in the stream that no group was delivered yet can be cancelled too.
        release = anyio.Event()
        running = anyio.Event()
        seen: list[str] = []

        async def handle(job: streamq.Job[Any]) -> None:
            seen.append(job.data)
            running.set()
            await release.wait()

        await queue.consume(handle, concurrency=1, prefetch=1)
        busy = await queue.enqueue("busy")
        with anyio.fail_after(5):
            await running.wait()
        # The consumer reads one ahead of what it runs (prefetch=1): fill that slot first.
        buffered = await queue.enqueue("buffered")
        await wait_until(lambda: _active(queue, 2), what="the prefetch slot to be taken")
        in_window = await queue.enqueue("in the window")
        # Delivered and not yet started, running, undelivered: each is cancelled (the first
        # before the second frees the slot it waits for).
        assert await queue.cancel(buffered)
        assert await queue.cancel(busy)
        assert await queue.cancel(in_window)
        for job_id in (busy, buffered, in_window):
            with pytest.raises(streamq.JobCancelled):
                await queue.wait_for(job_id, timeout=5)
        release.set()
        assert await queue.enqueue("reused", job_id=staged) == staged
        await queue.wait_for(staged, timeout=5)
        assert seen == ["busy", "reused"], "the delivered job never started"


async def _active(queue: streamq.Queue[Any], n: int) -> bool:
    return (await queue.stats()).active == n


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # decided in Redis: one loop is enough
async def test_recurring_job_runs_once_per_tick_under_two_managers(
    redis_url: str, queue_name: str
) -> None:
    runs: list[str] = []

    async def handle(job: streamq.Job[Any]) -> None:
        runs.append(job.id)

    async with streamq.QueueManager(redis_url) as a, streamq.QueueManager(redis_url) as b:
        for qm in (a, b):
            queue = qm.get_queue(queue_name)
            await queue.consume(handle)
            await queue.schedule_recurring("health-check", {"ping": True}, 0.5)
        await anyio.sleep(3.1)
        assert await a.get_queue(queue_name).cancel_recurring("health-check")
        stopped_at = len(runs)
        await anyio.sleep(1.0)
        assert len(runs) == stopped_at, "it ran after cancel_recurring"
        assert not await a.get_queue(queue_name).cancel_recurring("health-check")

    ticks = [int(job_id.rsplit("@", 1)[1]) for job_id in runs]
    assert len(ticks) == len(set(ticks)), f"two runs in one tick: {runs}"
    assert 6 <= len(ticks) <= 8, ticks
    assert {b - a for a, b in itertools.pairwise(ticks)} == {500}


async def test_schedule_recurring_is_idempotent_and_replaces(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    assert await queue.schedule_recurring("nightly", {"v": 1}, cron="0 3 * * *")
    assert not await queue.schedule_recurring("nightly", {"v": 1}, cron="0 3 * * *")
    assert await queue.schedule_recurring("nightly", {"v": 2}, cron="0 3 * * *", tz="Asia/Tokyo")
    key = f"streamq:{{{queue_name}}}:recurring"
    assert await redis.zcard(key) == 1
    due_ms = int(await redis.zscore(key, "nightly") or 0)
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    expected = next(CronSim("0 3 * * *", now))
    assert due_ms == int(expected.timestamp() * 1000)


async def test_cron_occurrence_fires_once_then_moves_to_the_next(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    runs: list[streamq.Job[Any]] = []
    await queue.consume(runs.append)
    await queue.schedule_recurring("minutely", "tick", cron="* * * * *")
    key = f"streamq:{{{queue_name}}}:recurring"
    due = await server_ms(redis) - 1
    await redis.zadd(key, {"minutely": due})  # make the next occurrence due now...
    await redis.publish(f"streamq:{{{queue_name}}}:wake", "due")  # ...and say so
    await queue.schedule_recurring("minutely", "tick", cron="* * * * *")  # unchanged: no effect
    await wait_until(lambda: len(runs) == 1, what="one run")
    assert runs[0].id == f"minutely@{due}" and runs[0].data == "tick"
    next_due = int(await redis.zscore(key, "minutely") or 0)
    assert next_due % 60_000 == 0 and 0 < next_due - due <= 60_000


async def test_a_missed_occurrence_runs_once(redis_url: str, queue_name: str) -> None:
    async with streamq.QueueManager(redis_url) as producer:  # no consumer: no scheduler
        await producer.get_queue(queue_name).schedule_recurring("every-100ms", 1, 0.1)
        await anyio.sleep(1.0)  # ten ticks pass with nobody to fire them
    runs: list[float] = []
    async with streamq.QueueManager(redis_url) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(lambda job: runs.append(time.monotonic()))
        await wait_until(lambda: len(runs) >= 4, what="runs to resume")
        await queue.cancel_recurring("every-100ms")
    # The catch-up run, then the schedule's own ticks 100 ms apart (the next tick keeps the
    # phase, so it may come soon after the catch-up): never the ten missed ticks in a burst.
    assert sum(run - runs[0] < 0.09 for run in runs) <= 2, "the missed ticks ran one after another"
    assert runs[3] - runs[2] > 0.05


def test_cron_next_runs_match_the_library_in_time_zones() -> None:
    for tz, expression in [
        (None, "*/15 * * * *"),
        ("America/New_York", "30 2 * * *"),  # 02:30 does not exist on 2026-03-08 there
        ("Europe/Paris", "0 9 * * 1-5"),
        ("Asia/Kolkata", "45 23 31 12 *"),
    ]:
        definition = RecurringDef(None, expression, tz, 0, 0, msgspec.Raw(b"\xc0"))
        zone = ZoneInfo(tz) if tz else UTC
        start = datetime(2026, 3, 7, 12, 7, 30, tzinfo=UTC)
        expected = CronSim(expression, start.astimezone(zone))
        due = first_run_ms(definition, int(start.timestamp() * 1000))
        for _ in range(5):
            assert due == int(next(expected).timestamp() * 1000), (tz, expression)
            due = next_run_ms(definition, due, due)


def test_interval_next_run_keeps_its_phase_and_skips_missed_ticks() -> None:
    definition = RecurringDef(1000, None, None, 0, 0, msgspec.Raw(b"\xc0"))
    assert next_run_ms(definition, 10_000, 10_000) == 11_000
    assert next_run_ms(definition, 10_000, 15_500) == 16_000  # once, not five more times


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of interval_seconds and cron"),
        ({"interval_seconds": 5, "cron": "* * * * *"}, "exactly one"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": -1}, "interval_seconds"),
        ({"interval_seconds": 0.001}, r"interval_seconds must be at least 0\.1, got 0\.001"),
        ({"interval_seconds": 0.099}, r"at least 0\.1"),
        ({"cron": "61 * * * *"}, "invalid cron expression"),
        ({"cron": "* * * *"}, "5 fields"),
        ({"cron": "* * * * * *"}, "5 fields"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"interval_seconds": 5, "tz": "UTC"}, "cron schedules only"),
        ({"interval_seconds": 5, "start_delay": -1}, "start_delay"),
    ],
)
async def test_bad_recurring_arguments(
    qm: streamq.QueueManager,
    queue_name: str,
    kwargs: dict[str, Any],
    message: str,
    redis: aioredis.Redis,
) -> None:
    queue = qm.get_queue(queue_name)
    with pytest.raises(ValueError, match=message):
        await queue.schedule_recurring("bad", 1, **kwargs)
    assert await redis.exists(f"streamq:{{{queue_name}}}:recurring") == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # decided in Redis: one loop is enough
async def test_rate_limit_is_shared_by_consumers_on_two_managers(
    redis_url: str, queue_name: str
) -> None:
    starts: list[float] = []

    async def handle(job: streamq.Job[Any]) -> None:
        starts.append(time.monotonic())

    async with streamq.QueueManager(redis_url) as a, streamq.QueueManager(redis_url) as b:
        for qm in (a, b):
            await qm.get_queue(queue_name).consume(handle, rate_limit=(10, 1.0))
        begin = time.monotonic()
        ids = await a.get_queue(queue_name).enqueue_many(range(40))
        for job_id in ids:
            await a.get_queue(queue_name).wait_for(job_id, timeout=15)
    starts.sort()
    # The limit holds on the server's clock; the handlers see their starts up to a scheduling
    # delay later, so the windows measured here allow 0.1 s of that delay.
    for i, t in enumerate(starts):
        in_window = sum(1 for u in starts[i:] if u - t < 0.9)
        assert in_window <= 10, f"{in_window} starts within a second from {t - begin:.2f}s"
    # 40 starts at 10 per second: the last batch cannot start before 3 s.
    assert 2.9 <= starts[-1] - begin <= 4.5


def _most_starts_in_a_window(starts: list[float], window: float) -> int:
    starts = sorted(starts)
    return max(sum(1 for u in starts[i:] if u - t < window) for i, t in enumerate(starts))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # decided in Redis: one loop is enough
async def test_the_rate_limit_holds_when_started_jobs_wait_for_a_free_worker(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    # Permits were taken as entries reached the inbox: three handlers started within 53 ms
    # once two long ones and a short one finished together.
    queue = qm.get_queue(queue_name, float)
    starts: list[float] = []

    async def handle(job: streamq.Job[float]) -> None:
        starts.append(time.monotonic())
        await anyio.sleep(job.data)

    await queue.consume(handle, concurrency=3, rate_limit=(2, 1.0))
    durations = [1.95, 1.95, 0.98, 0.3, 0.3, 1.2, 0.05, 0.05, 0.6, 0.05]
    ids = await queue.enqueue_many(durations)
    for job_id in ids:
        await queue.wait_for(job_id, timeout=30)
    # The limit holds on the server's clock, the handlers see their starts a scheduling delay
    # later: windows of 0.9 s allow 0.1 s of it (the bug put three starts within 53 ms).
    assert _most_starts_in_a_window(starts, 0.9) <= 2


async def test_a_rate_limited_consumer_goes_on_after_redis_stalls(
    redis_url: str, queue_name: str, redis: aioredis.Redis
) -> None:
    # A Redis error while taking rate-limit permits (here a stall past the socket timeout) left
    # the entries held for good: heart-beaten, never run, never reclaimed.
    async with streamq.QueueManager(redis_url, socket_timeout=1.0, replica_timeout=0.5) as qm:
        queue = qm.get_queue(queue_name)
        done: list[int] = []
        await queue.consume(
            lambda job: done.append(job.data),
            concurrency=3,
            rate_limit=(1, 0.25),
            visibility_timeout=3,
        )
        await queue.enqueue_many(range(12))
        await wait_until(lambda: len(done) >= 2, what="the first starts")
        await pause_redis(redis, 1500)
        # Watched in this process: this manager's own commands fail while Redis is paused.
        await wait_until(lambda: len(done) == 12, timeout=30, what="every job to run")
        assert sorted(done) == list(range(12))


async def test_a_rate_limited_consumer_goes_on_after_its_rate_key_was_unusable(
    qm: streamq.QueueManager,
    queue_name: str,
    redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = qm.get_queue(queue_name)
    rate_key = QueueKeys(qm.prefix, queue_name).rate_log_prefix + queue_name
    await redis.set(rate_key, "not a sorted set")  # every permit fails with WRONGTYPE
    done: list[int] = []
    await queue.consume(lambda job: done.append(job.data), concurrency=3, rate_limit=(5, 0.5))
    ids = await queue.enqueue_many(range(12))
    await wait_until(
        lambda: any("rate-limit permit" in r.getMessage() for r in caplog.records),
        what="the consumer to meet the error",
    )
    assert done == []
    await redis.delete(rate_key)
    for job_id in ids:
        await queue.wait_for(job_id, timeout=20)
    assert sorted(done) == list(range(12))


async def test_bad_rate_limits(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    for bad in [(0, 1.0), (10, 0), (10,), "10/s"]:
        with pytest.raises(ValueError, match="rate_limit"):
            await queue.consume(lambda job: None, rate_limit=bad)  # type: ignore[arg-type]


async def test_bad_priority(qm: streamq.QueueManager, queue_name: str) -> None:
    with pytest.raises(ValueError, match="priority must be between"):
        await qm.get_queue(queue_name).enqueue(1, priority=2_000_000)

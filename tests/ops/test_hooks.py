"""Hooks: each one fires with the right fields; a hook that raises breaks nothing."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.store.keys import QueueKeys

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class Recorder(streamq.Hooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.changed = anyio.Event()

    def _add(self, kind: str, event: Any) -> None:
        self.events.append((kind, event))
        self.changed.set()
        self.changed = anyio.Event()

    def on_enqueue(self, event: streamq.EnqueueEvent) -> None:
        self._add("enqueue", event)

    def on_start(self, event: streamq.JobEvent) -> None:
        self._add("start", event)

    def on_success(self, event: streamq.JobEvent) -> None:
        self._add("success", event)

    def on_failure(self, event: streamq.JobEvent) -> None:
        self._add("failure", event)

    def on_reclaim(self, event: streamq.ReclaimEvent) -> None:
        self._add("reclaim", event)

    def on_settle(self, event: streamq.SettleEvent) -> None:
        self._add("settle", event)

    def of(self, kind: str) -> list[Any]:
        return [event for k, event in self.events if k == kind]

    async def wait_for(self, kind: str, count: int) -> list[Any]:
        with anyio.fail_after(10):
            while len(self.of(kind)) < count:
                await self.changed.wait()
        return self.of(kind)


class Raising(streamq.Hooks):
    def __init__(self) -> None:
        self.calls = 0

    def _raise(self, event: object) -> None:
        self.calls += 1
        raise RuntimeError("a broken hook")

    on_enqueue = on_start = on_success = on_failure = on_reclaim = _raise


async def test_enqueue_hooks_see_every_job_and_tell_duplicates(
    redis_url: str, queue_name: str
) -> None:
    recorder = Recorder()
    async with streamq.QueueManager(redis_url, hooks=[recorder]) as qm:
        queue = qm.get_queue(queue_name)
        before = time.time()
        await queue.enqueue("a", job_id="same", priority=5, start_delay=0.5)
        await queue.enqueue("b", job_id="same")  # unfinished: deduplicated
        ids = await queue.enqueue_many(["c", "d"])
    first, again, *many = recorder.of("enqueue")
    assert first == streamq.EnqueueEvent(
        queue=queue_name,
        job_id="same",
        priority=5,
        delay=0.5,
        enqueued_at=first.enqueued_at,
        duplicate=False,
    )
    assert before <= first.enqueued_at <= time.time()
    assert (again.job_id, again.duplicate, again.priority, again.delay) == ("same", True, 0, 0.0)
    assert [(e.job_id, e.duplicate) for e in many] == [(ids[0], False), (ids[1], False)]


async def test_job_hooks_fire_on_start_success_and_failure(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    recorder = Recorder()
    qm.add_hooks(recorder)
    assert qm.hooks == (recorder,)
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[str]) -> str:
        if job.data == "fail":
            raise ValueError("boom")
        return job.data

    consumer = await queue.consume(handle, max_retries=1, backoff=0, concurrency=1)
    ok = await queue.enqueue("ok")
    assert await queue.wait_for(ok, timeout=10) == "ok"
    bad = await queue.enqueue("fail")
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(bad, timeout=10)

    starts = await recorder.wait_for("start", 3)
    assert [(s.job_id, s.attempt) for s in starts] == [(ok, 1), (bad, 1), (bad, 2)]
    start = starts[0]
    assert (start.queue, start.group, start.consumer) == (queue_name, queue_name, consumer.name)
    assert (start.max_retries, start.duration, start.error) == (1, None, None)
    assert start.enqueued_at == pytest.approx(time.time(), abs=10)

    (success,) = recorder.of("success")
    assert (success.job_id, success.attempt, success.error) == (ok, 1, None)
    assert success.duration is not None and 0 <= success.duration < 5

    retried, dead = await recorder.wait_for("failure", 2)
    assert (retried.job_id, retried.attempt, retried.retry_in) == (bad, 1, 0.0)
    assert retried.error == "ValueError: boom" and not retried.dead_lettered
    assert (dead.attempt, dead.retry_in, dead.dead_lettered) == (2, None, True)
    assert dead.duration is not None


async def test_settle_hooks_name_every_completion_once_after_its_success(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    recorder = Recorder()
    qm.add_hooks(recorder)
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[int]) -> int:
        if job.data == 0:
            raise streamq.Unrecoverable("a failure is not a completion")
        return job.data

    consumer = await queue.consume(handle, concurrency=10)
    ids = await queue.enqueue_many(list(range(40)))
    for job_id in ids[1:]:
        await queue.wait_for(job_id, timeout=10)
    await recorder.wait_for("failure", 1)

    async def all_settled() -> bool:
        return sum(len(e.job_ids) for e in recorder.of("settle")) >= 39

    await wait_until(all_settled, what="39 completions settled")
    settles = recorder.of("settle")
    settled = [job_id for event in settles for job_id in event.job_ids]
    assert sorted(settled) == sorted(ids[1:])  # each completion once, the failure in none
    for event in settles:
        assert (event.queue, event.group, event.consumer) == (queue_name, queue_name, consumer.name)
        assert 0 <= event.duration < 5
    # Each job's settle comes after its success: the completion is written once it returned.
    order: dict[tuple[str, str], int] = {}
    for n, (kind, event) in enumerate(recorder.events):
        for job_id in event.job_ids if kind == "settle" else [getattr(event, "job_id", "")]:
            order[kind, job_id] = n
    assert all(order["success", job_id] < order["settle", job_id] for job_id in settled)


async def test_an_undecodable_entry_is_a_failure_without_a_run(
    qm: streamq.QueueManager, queue_name: str, redis_url: str
) -> None:
    recorder = Recorder()
    qm.add_hooks(recorder)
    async with streamq.QueueManager(redis_url) as other:  # no hooks: nothing is told there
        job_id = await other.get_queue(queue_name).enqueue("not an int")
    await qm.get_queue(queue_name, int).consume(lambda job: None)
    (failure,) = await recorder.wait_for("failure", 1)
    assert (failure.job_id, failure.duration, failure.dead_lettered) == (job_id, None, True)
    assert "undecodable" in (failure.error or "")
    assert recorder.of("start") == [] and recorder.of("enqueue") == []


async def test_a_reclaimed_job_fires_on_reclaim(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    recorder = Recorder()
    qm.add_hooks(recorder)
    queue = qm.get_queue(queue_name)
    stream = QueueKeys(qm.prefix, queue_name).stream
    await redis.xgroup_create(stream, queue_name, id="0", mkstream=True)
    payload = queue._codec.encode("orphan", enqueued_at=time.time(), priority=0)
    entry_id = await redis.xadd(stream, {"j": "orphan-1", "p": payload})
    await redis.xreadgroup(queue_name, "died", {stream: ">"}, count=1)  # and never acks
    consumer = await queue.consume(lambda job: job.data, visibility_timeout=0.3)
    (reclaim,) = await recorder.wait_for("reclaim", 1)
    assert reclaim == streamq.ReclaimEvent(
        queue=queue_name,
        group=queue_name,
        consumer=consumer.name,
        job_id="orphan-1",
        entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        delivery=2,
    )
    (start,) = await recorder.wait_for("start", 1)
    assert (start.job_id, start.attempt) == ("orphan-1", 2)


async def test_a_raising_hook_breaks_neither_enqueue_nor_consumer(
    redis_url: str, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    raising, recorder = Raising(), Recorder()
    with caplog.at_level(logging.DEBUG, logger="streamq.hooks"):
        async with streamq.QueueManager(redis_url, hooks=[raising, recorder]) as qm:
            queue = qm.get_queue(queue_name)
            await queue.consume(lambda job: job.data * 2, max_retries=0)
            ids = [await queue.enqueue(n) for n in range(3)]
            assert [await queue.wait_for(i, timeout=10) for i in ids] == [0, 2, 4]
            await wait_until(lambda: len(recorder.of("success")) == 3, what="3 successes")
    assert raising.calls == 3 * 3  # enqueue, start, success for each job
    # Logged with its traceback once per hook method; after that at debug level only.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sorted(r.getMessage().split(" in ")[1].split()[0] for r in errors) == [
        "on_enqueue",
        "on_start",
        "on_success",
    ]
    assert all(r.exc_info for r in errors)


def test_hooks_must_be_hooks() -> None:
    with pytest.raises(streamq.InvalidArgument, match=r"streamq\.Hooks"):
        streamq.QueueManager(hooks=[object()])  # type: ignore[list-item]

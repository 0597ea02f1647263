"""``queue.drain()``: it returns once nothing of the queue waits, runs, or is due, in any
group; jobs due later do not hold it; past its timeout it names what is left."""

from __future__ import annotations

import anyio
import pytest

import streamq
from tests.helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster, pytest.mark.timeout(30)]


async def echo(job: streamq.Job[object]) -> object:
    return job.data


async def test_running_jobs_hold_drain_until_they_finish(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    release = anyio.Event()

    async def handle(job: streamq.Job[int]) -> int:
        await release.wait()
        return job.data

    await queue.consume(handle)
    await queue.enqueue_many([1, 2, 3])
    await wait_until(lambda: _active(queue, 3), what="three running jobs")

    with pytest.raises(TimeoutError) as caught:
        await queue.drain(timeout=0.3)
    assert str(caught.value) == (
        f"queue {queue_name!r} did not drain within 0.3 s: 0 waiting, 3 running,"
        " 0 delayed (0 due), 0 retrying (0 due)"
    )

    release.set()
    await queue.drain(timeout=10)
    stats = await queue.stats()
    assert (stats.completed, stats.active, stats.waiting) == (3, 0, 0)


async def test_jobs_due_later_do_not_hold_drain(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    await queue.consume(echo)
    await queue.enqueue("tomorrow", start_delay=24 * 3600)
    now = await queue.enqueue("now")

    await queue.drain(timeout=10)

    info = await queue.get_job(now)
    assert info is not None and info.state == "completed"
    assert (await queue.stats()).delayed == 1


async def test_a_due_delayed_job_holds_drain_until_it_ran(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue("soon", start_delay=0.05)
    # No consumer, so no scheduler in this manager: once due, the job stays delayed.
    await wait_until(lambda: _all_due(qm, queue), what="the job to be due")

    with pytest.raises(TimeoutError) as caught:
        await queue.drain(timeout=0.3)
    assert "0 waiting, 0 running, 1 delayed (1 due), 0 retrying (0 due)" in str(caught.value)

    await queue.consume(echo)
    await queue.drain(timeout=10)
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "completed"


async def test_a_retry_due_now_holds_drain_and_one_due_later_does_not(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    async def fail_once(job: streamq.Job[str]) -> int:
        if job.attempt == 1:
            raise RuntimeError("first attempt fails")
        return job.attempt

    soon = qm.get_queue(queue_name)
    await soon.consume(fail_once, backoff=0)
    job_id = await soon.enqueue("retried at once")
    await soon.drain(timeout=10)
    info = await soon.get_job(job_id)
    assert info is not None and (info.state, info.result) == ("completed", 2)

    later = qm.get_queue(f"{queue_name}-later")
    await later.consume(fail_once, backoff=3600)
    job_id = await later.enqueue("retried in an hour")
    await later.drain(timeout=10)
    info = await later.get_job(job_id)
    assert info is not None and info.state == "retrying"


async def test_a_recurring_schedule_due_to_run_holds_drain(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.schedule_recurring("hourly", "tick", interval_seconds=3600)
    # No consumer, so no scheduler: the first run, due at once, is not enqueued.
    with pytest.raises(TimeoutError, match=r"0 retrying \(0 due\), 1 recurring schedule"):
        await queue.drain(timeout=0.3)

    await queue.consume(echo)
    await queue.drain(timeout=10)  # the first run ran; the next is an hour away
    [run] = await queue.jobs("completed")
    assert run.id.startswith("hourly@") and run.result == "tick"


async def test_staged_jobs_wait_and_a_paused_queue_says_so(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.enqueue("first", priority=5)  # staged, behind no consumer
    with pytest.raises(TimeoutError, match=r"0.3 s: 1 waiting, 0 running"):
        await queue.drain(timeout=0.3)

    await queue.pause()
    await queue.consume(echo)
    with pytest.raises(TimeoutError, match=r"1 waiting.*; the queue is paused"):
        await queue.drain(timeout=0.3)

    await queue.resume()
    await queue.drain(timeout=10)
    assert (await queue.stats()).completed == 1


async def test_drain_waits_for_every_group(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    await queue.consume(echo, consumer_group="a")
    idle = await queue.consume(echo, consumer_group="b")
    await idle.stop()
    job_id = await queue.enqueue("to both")

    # Group "a" runs it; group "b", with no consumer, still owes it.
    with pytest.raises(TimeoutError, match=r"1 waiting"):
        await queue.drain(timeout=0.3)

    await queue.consume(echo, consumer_group="b")
    await queue.drain(timeout=10)
    for group in ("a", "b"):
        info = await queue.get_job(job_id, group=group)
        assert info is not None and info.state == "completed"


async def test_an_empty_queue_drains_at_once_and_the_timeout_is_checked(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    with anyio.fail_after(1):
        await queue.drain(timeout=0.5)
    for bad in (0, -1, float("nan")):
        with pytest.raises(streamq.InvalidArgument, match="timeout"):
            await queue.drain(timeout=bad)


async def _active(queue: streamq.Queue[int], count: int) -> bool:
    return (await queue.stats()).active == count


async def _all_due(qm: streamq.QueueManager, queue: streamq.Queue[str]) -> bool:
    """Whether the queue's delayed jobs are due by the server's clock."""
    jobs = await queue.jobs("delayed")
    seconds, micros = await qm.redis.time()
    now = seconds + micros / 1e6
    return bool(jobs) and all(job.due_at is not None and job.due_at <= now for job in jobs)

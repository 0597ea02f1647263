"""Failures: retries with backoff, timeouts, the dead letters and replaying them."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

import streamq

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


async def test_failing_job_runs_max_retries_plus_one_times_then_is_dead_and_replayable(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    attempts: list[int] = []
    healthy = False

    async def handle(job: streamq.Job[Any]) -> str:
        attempts.append(job.attempt)
        if not healthy:
            raise RuntimeError(f"downstream is down (attempt {job.attempt})")
        return "sent"

    await queue.consume(handle, max_retries=2, backoff=0.01)
    job_id = await queue.enqueue({"to": "a@example.com"})
    with pytest.raises(streamq.JobFailed, match=r"RuntimeError: downstream is down \(attempt 3\)"):
        await queue.wait_for(job_id, timeout=10)
    assert attempts == [1, 2, 3]

    (dead,) = await queue.dead_letters()
    assert dead.job_id == job_id
    assert dead.data == {"to": "a@example.com"}
    assert dead.error == "RuntimeError: downstream is down (attempt 3)"
    assert dead.attempts == 3
    assert dead.groups == (queue_name,)
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "dead" and info.attempts == 3
    stats = await queue.stats()
    assert (stats.dead, stats.retrying) == (1, 0)

    healthy = True
    assert await queue.retry_dead(job_id) == 1
    assert await queue.wait_for(job_id, timeout=10) == "sent"
    assert attempts == [1, 2, 3, 1], "a replayed job starts with fresh attempts"
    assert await queue.dead_letters() == []
    assert await queue.retry_dead(job_id) == 0


async def test_max_retries_zero_means_one_attempt(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    attempts: list[int] = []

    async def handle(job: streamq.Job[Any]) -> None:
        attempts.append(job.attempt)
        raise ValueError("no")

    await queue.consume(handle, max_retries=0, backoff=0.01)
    job_id = await queue.enqueue(1)
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(job_id, timeout=5)
    assert attempts == [1]


async def test_per_job_max_retries_overrides_the_consumer(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    attempts: list[int] = []

    async def handle(job: streamq.Job[Any]) -> None:
        attempts.append(job.attempt)
        assert job.max_retries == 1
        raise ValueError("no")

    await queue.consume(handle, max_retries=5, backoff=0.01)
    job_id = await queue.enqueue(1, max_retries=1)
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(job_id, timeout=5)
    assert attempts == [1, 2]


async def test_handler_past_its_timeout_fails_the_attempt(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    attempts: list[int] = []

    async def handle(job: streamq.Job[Any]) -> str:
        attempts.append(job.attempt)
        if job.attempt == 1:
            await anyio.sleep(30)
        return "fast enough"

    await queue.consume(handle, timeout=0.2, max_retries=1, backoff=0.01)
    job_id = await queue.enqueue(1)
    with anyio.fail_after(10):
        assert await queue.wait_for(job_id) == "fast enough"
    assert attempts == [1, 2]


async def test_per_job_timeout_and_its_error(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[Any]) -> None:
        await anyio.sleep(30)

    await queue.consume(handle, max_retries=0)
    job_id = await queue.enqueue(1, timeout=0.1)
    with pytest.raises(streamq.JobFailed, match=r"ran past its 0\.1s timeout"):
        await queue.wait_for(job_id, timeout=10)


async def test_backoff_callable_gets_the_failed_attempt(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    asked: list[int] = []

    def backoff(attempt: int) -> float:
        asked.append(attempt)
        return 0.01

    async def handle(job: streamq.Job[Any]) -> None:
        raise ValueError("no")

    await queue.consume(handle, max_retries=3, backoff=backoff)
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(await queue.enqueue(1), timeout=10)
    assert asked == [1, 2, 3]


async def test_a_retry_waits_for_its_backoff(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    started: list[float] = []

    async def handle(job: streamq.Job[Any]) -> None:
        started.append(anyio.current_time())
        if job.attempt == 1:
            raise ValueError("once")

    await queue.consume(handle, max_retries=1, backoff=0.5)
    job_id = await queue.enqueue(1)
    await wait_until(lambda: _is_retrying(queue, job_id), what="the retry to be scheduled")
    assert (await queue.stats()).retrying == 1
    await queue.wait_for(job_id, timeout=10)
    assert 0.45 <= started[1] - started[0] < 1.5


async def _is_retrying(queue: streamq.Queue[Any], job_id: str) -> bool:
    info = await queue.get_job(job_id)
    return info is not None and info.state == "retrying"


async def test_result_that_cannot_be_encoded_fails_the_attempt(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[Any]) -> object:
        return object()

    await queue.consume(handle, max_retries=0)
    job_id = await queue.enqueue(1)
    with pytest.raises(streamq.JobFailed, match="cannot be encoded"):
        await queue.wait_for(job_id, timeout=5)


async def test_retry_all_dead_and_purge(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    healthy = False
    done: list[int] = []

    async def handle(job: streamq.Job[int]) -> None:
        if not healthy:
            raise ValueError("no")
        done.append(job.data)

    consumer = await queue.consume(handle, max_retries=0)
    ids = await queue.enqueue_many(range(5))
    for job_id in ids:
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for(job_id, timeout=5)
    first_three = await queue.dead_letters(limit=3)
    everything = await queue.dead_letters()
    assert [d.job_id for d in first_three] == [d.job_id for d in everything[:3]]
    assert sorted(d.job_id for d in everything) == sorted(ids)
    failed_at = [d.failed_at for d in everything]
    assert failed_at == sorted(failed_at), "oldest failure first"

    healthy = True
    assert await queue.retry_dead() == 5
    await wait_until(lambda: len(done) == 5, what="replayed jobs")
    assert sorted(done) == list(range(5))

    healthy = False
    failing = await queue.enqueue(9)
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(failing, timeout=5)
    assert await queue.purge_dead() == 1
    assert await queue.dead_letters() == []
    assert (await queue.stats()).dead == 0
    await consumer.stop()


async def test_failures_in_broadcast_groups_retry_only_in_their_group(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    runs: dict[str, list[int]] = {"ok": [], "flaky": []}
    ok_seen: list[str] = []

    async def ok(job: streamq.Job[Any]) -> None:
        runs["ok"].append(job.attempt)
        ok_seen.append(job.data)

    async def flaky(job: streamq.Job[Any]) -> None:
        runs["flaky"].append(job.attempt)
        if job.attempt < 3:
            raise ValueError("not yet")

    await queue.consume(ok, consumer_group="ok", backoff=0.01)
    await queue.consume(flaky, consumer_group="flaky", backoff=0.01)
    await queue.enqueue("x")
    await wait_until(lambda: runs["flaky"] == [1, 2, 3], what="three flaky attempts")
    # Entries reach a group in stream order: once "ok" saw this sentinel, it saw the retries.
    await queue.enqueue("sentinel")
    await wait_until(lambda: "sentinel" in ok_seen, what="the sentinel")
    assert ok_seen == ["x", "sentinel"]


async def test_dead_letters_of_several_groups_are_replayed_to_those_groups(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    healthy = False
    runs: dict[str, int] = {"a": 0, "b": 0, "fine": 0}
    fine_seen: list[str] = []

    def handler(group: str) -> Any:
        async def handle(job: streamq.Job[Any]) -> None:
            if job.data == "sentinel":
                fine_seen.append(job.data)
                return
            runs[group] += 1
            if group != "fine" and not healthy:
                raise ValueError(f"{group} failed")

        return handle

    for group in runs:
        await queue.consume(handler(group), consumer_group=group, max_retries=0)
    job_id = await queue.enqueue("x")
    await wait_until(lambda: all(runs.values()), what="all groups ran")
    await wait_until(lambda: _dead_in(queue, {"a", "b"}), what="dead in a and b")
    healthy = True
    assert await queue.retry_dead(job_id) == 1
    await wait_until(lambda: runs["a"] == 2 and runs["b"] == 2, what="replay in a and b")
    await queue.enqueue("sentinel")
    await wait_until(lambda: len(fine_seen) == 3, what="the sentinel in every group")
    assert runs["fine"] == 1


async def _dead_in(queue: streamq.Queue[Any], groups: set[str]) -> bool:
    letters = await queue.dead_letters()
    return len(letters) == 1 and set(letters[0].groups) == groups


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"concurrency": 0}, "concurrency"),
        ({"timeout": 0}, "timeout"),
        ({"visibility_timeout": -1}, "visibility_timeout"),
        ({"backoff": -1}, "backoff"),
        ({"consumer_group": "has space"}, "consumer group"),
        ({"prefetch": -1}, "prefetch"),
        ({"prefetch": 1.5}, "prefetch"),
    ],
)
async def test_bad_consumer_options(
    qm: streamq.QueueManager, queue_name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await qm.get_queue(queue_name).consume(lambda job: None, **options)


class _NotAHandler:
    def __init__(self, job: streamq.Job[Any]) -> None:
        self.job = job


async def _two_arguments(job: streamq.Job[Any], extra: int) -> None:
    pass


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (42, "handler must be callable, got a int"),
        (lambda: None, "cannot be called with one argument"),
        (_two_arguments, "'_two_arguments' cannot be called with one argument"),
        (_NotAHandler, "'_NotAHandler' is a class, not a function"),
    ],
)
async def test_a_handler_that_cannot_take_the_job_is_refused_at_consume(
    qm: streamq.QueueManager, queue_name: str, handler: Any, message: str
) -> None:
    """They were accepted, and every job went to the dead letters."""
    queue = qm.get_queue(queue_name)
    with pytest.raises(streamq.InvalidArgument, match=message):
        await queue.consume(handler)
    assert await queue.groups() == [], "no consumer group was made"


async def test_handlers_of_every_shape_that_takes_the_job_are_accepted(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    class Handlers:
        async def method(self, job: streamq.Job[int]) -> int:
            return job.data

        def __call__(self, job: streamq.Job[int]) -> int:
            return job.data + 1

    async def with_defaults(job: streamq.Job[int], scale: int = 10) -> int:
        return job.data * scale

    def star(*args: Any) -> int:
        return 7

    results = []
    handlers: list[Any] = [Handlers().method, Handlers(), with_defaults, star]
    for n, handler in enumerate(handlers):
        queue = qm.get_queue(f"{queue_name}-{n}")
        consumer = await queue.consume(handler)
        results.append(await queue.wait_for(await queue.enqueue(-3), timeout=10))
        await consumer.stop()
    assert results == [-3, -2, -30, 7]


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


async def test_a_result_nested_too_deep_fails_the_attempt_with_its_reason(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    # RecursionError in encoding the result was an "unexpected error on entry": the job was
    # reclaimed after the visibility timeout and dead-lettered as if its consumer had died.
    queue = qm.get_queue(queue_name)
    await queue.consume(lambda job: _nested(2000), max_retries=0, visibility_timeout=30)
    job_id = await queue.enqueue("deep")
    with pytest.raises(streamq.JobFailed, match=r"cannot be encoded.*RecursionError"):
        await queue.wait_for(job_id, timeout=10)
    (dead,) = await queue.dead_letters()
    assert dead.attempts == 1 and "died" not in dead.error


async def test_data_nested_too_deep_is_an_encode_error_that_writes_nothing(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    with pytest.raises(streamq.EncodeError, match="RecursionError"):
        await queue.enqueue(_nested(990))
    with pytest.raises(streamq.EncodeError, match="RecursionError"):
        await queue.enqueue_many([1, _nested(990)])
    stats = await queue.stats()
    assert (stats.waiting, stats.delayed) == (0, 0)


async def test_a_backoff_past_ten_years_is_cut_to_ten_years(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    # 1e306 s passed the finiteness check, then overflowed when made milliseconds: every retry
    # fell back to the visibility timeout's reclaim.
    queue = qm.get_queue(queue_name)
    await queue.consume(_always_fails, max_retries=1, backoff=lambda attempt: 1e306)
    job_id = await queue.enqueue("x")

    async def retrying() -> bool:
        info = await queue.get_job(job_id)
        return info is not None and info.state == "retrying"

    await wait_until(retrying, timeout=10, what="the job waiting to retry")
    (listed,) = await queue.jobs("retrying")
    assert listed.due_at is not None
    years = (listed.due_at - time.time()) / (365 * 86400)
    assert 9.9 < years <= 10.0


async def test_delays_past_ten_years_are_refused(qm: streamq.QueueManager, queue_name: str) -> None:
    queue = qm.get_queue(queue_name)
    for delay in (1e306, 10 * 365 * 86400 + 1):
        with pytest.raises(streamq.InvalidArgument, match=r"at most .* seconds"):
            await queue.enqueue("x", start_delay=delay)
    assert (await queue.stats()).delayed == 0


async def _always_fails(job: streamq.Job[Any]) -> None:
    raise RuntimeError("no")


async def test_a_dead_job_is_not_replayed_while_its_id_is_in_use_again(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    # retry_dead("X") after a new job took the id X ran both under one id, one outcome lost.
    queue = qm.get_queue(queue_name)
    runs: list[str] = []
    failed_once: set[str] = set()
    release = anyio.Event()

    async def handle(job: streamq.Job[str]) -> str:
        runs.append(job.data)
        if job.data == "old" and job.id not in failed_once:
            failed_once.add(job.id)  # an old job fails once; replayed, it completes
            raise RuntimeError("old fails")
        if job.data == "new":
            await release.wait()
        return job.data

    consumer = await queue.consume(handle, max_retries=0)
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(await queue.enqueue("old", job_id="X"), timeout=10)
    await queue.enqueue("new", job_id="X")  # the id is free again: a new job takes it
    await queue.enqueue("old", job_id="Y")  # and another dead job, free to replay
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for("Y", timeout=10)
    with pytest.raises(streamq.JobInUse, match=r"'X'.*enqueued since"):
        await queue.retry_dead("X")
    assert await queue.retry_dead() == 1  # Y only; X stays dead
    assert await queue.wait_for("Y", timeout=10) == "old"
    assert [dead.job_id for dead in await queue.dead_letters()] == ["X"]
    release.set()
    assert await queue.wait_for("X", timeout=10) == "new"
    assert runs.count("new") == 1 and runs.count("old") == 3  # X, Y, Y replayed
    assert await queue.retry_dead("X") == 1  # once X finished, the dead one may run again
    assert await queue.wait_for("X", timeout=10) == "old"
    await consumer.stop()


async def test_two_handlers_on_one_group_in_one_manager_is_an_error(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    """They were accepted, and each got some of the jobs, at random."""

    async def send_email(job: streamq.Job[Any]) -> str:
        return "email"

    async def send_sms(job: streamq.Job[Any]) -> str:
        return "sms"

    queue = qm.get_queue(queue_name)
    first = await queue.consume(send_email)
    refused = "already consumed here by 'send_email', so 'send_sms'"
    with pytest.raises(streamq.InvalidArgument, match=refused):
        await queue.consume(send_sms)
    await queue.consume(send_email, concurrency=2)  # the same handler again: more workers
    await queue.consume(send_sms, consumer_group="sms")  # another group gets every job
    job_id = await queue.enqueue(1)
    assert await queue.wait_for(job_id, timeout=10, group=queue_name) == "email"
    assert await queue.wait_for(job_id, timeout=10, group="sms") == "sms"
    await first.stop()
    with pytest.raises(streamq.InvalidArgument, match="another consumer_group"):
        await queue.consume(send_sms)  # the second consumer of send_email still runs


def _parse(text: str) -> int:
    return int(text)  # the frame the traceback should end in


async def test_dead_letters_keep_the_handlers_traceback_capped(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[Any]) -> int:
        if job.data == "huge":
            raise ValueError("x" * 20_000)
        return _parse(job.data)

    await queue.consume(handle, max_retries=0)
    for data in ("nan", "huge"):
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for(await queue.enqueue(data, job_id=data), timeout=5)
    letters = {d.job_id: d for d in await queue.dead_letters()}
    trace = letters["nan"].traceback
    assert trace is not None and trace.startswith("Traceback (most recent call last)")
    assert "in handle" in trace and "in _parse" in trace and "test_retries.py" in trace
    assert trace.rstrip().endswith("ValueError: invalid literal for int() with base 10: 'nan'")
    assert letters["nan"].error == "ValueError: invalid literal for int() with base 10: 'nan'"
    huge = letters["huge"].traceback
    assert huge is not None and huge.startswith("...\n") and len(huge) <= 8_004
    assert huge.rstrip().endswith("x" * 100)


async def test_a_handler_asks_for_a_retry_with_its_own_delay_or_the_backoff(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    starts: dict[str, list[float]] = {"own": [], "backoff": [], "last": []}

    async def handle(job: streamq.Job[str]) -> int:
        starts[job.data].append(time.monotonic())
        if job.attempt == 1 and job.data == "own":
            raise streamq.Retry(delay=0.3, reason="not ready yet")
        if job.attempt == 1 and job.data == "backoff":
            raise streamq.Retry()
        if job.data == "last":
            raise streamq.Retry(delay=0)
        return job.attempt

    # A backoff of 30 s: a retry that comes sooner took the handler's delay.
    await queue.consume(handle, max_retries=1, backoff=lambda n: 30.0 if n == 1 else 0.05)
    assert await queue.wait_for(await queue.enqueue("own"), timeout=10) == 2
    assert 0.3 <= starts["own"][1] - starts["own"][0] < 3
    with pytest.raises(TimeoutError):
        await queue.wait_for(await queue.enqueue("backoff"), timeout=1.5)  # waits the 30 s
    # Raised on the last attempt, a Retry is a failure like any other: the dead letters.
    with pytest.raises(streamq.JobFailed, match="Retry: the handler asked for a retry"):
        await queue.wait_for(await queue.enqueue("last", job_id="last"), timeout=10)
    assert len(starts["last"]) == 2
    letter = await queue.dead_letter("last")
    assert letter is not None and letter.attempts == 2


@pytest.mark.parametrize("plain", [False, True])
async def test_unrecoverable_goes_to_the_dead_letters_at_once(
    qm: streamq.QueueManager, queue_name: str, plain: bool
) -> None:
    queue = qm.get_queue(queue_name)
    runs: list[int] = []

    def check(job: streamq.Job[int]) -> int:
        runs.append(job.attempt)
        if job.data < 0:
            raise streamq.Unrecoverable(f"{job.data} can never be valid")
        return job.data

    async def handle(job: streamq.Job[int]) -> int:
        return check(job)

    await queue.consume(check if plain else handle, max_retries=5, backoff=0.01)
    with pytest.raises(streamq.JobFailed, match="Unrecoverable: -1 can never be valid"):
        await queue.wait_for(await queue.enqueue(-1, job_id="bad"), timeout=10)
    assert runs == [1]
    letter = await queue.dead_letter("bad")
    assert letter is not None and letter.attempts == 1
    assert letter.error == "Unrecoverable: -1 can never be valid"
    assert letter.traceback is not None and "in check" in letter.traceback


async def test_a_retry_delay_is_checked_where_it_is_raised() -> None:
    for bad in (-1, float("nan"), "soon", True):
        with pytest.raises(streamq.InvalidArgument, match="Retry's delay"):
            streamq.Retry(delay=bad)  # type: ignore[arg-type]
    assert streamq.Retry(0.5).delay == 0.5 and isinstance(streamq.Retry(), streamq.StreamqError)


async def test_a_job_waiting_to_retry_can_be_cancelled(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    """cancel() returned False for it, and the job ran again after its backoff."""
    queue = qm.get_queue(queue_name)
    runs: list[int] = []

    async def handle(job: streamq.Job[Any]) -> None:
        if job.data == "x":
            runs.append(job.attempt)
            raise ValueError("down")

    consumer = await queue.consume(handle, max_retries=3, backoff=1.0)
    job_id = await queue.enqueue("x")
    await wait_until(lambda: _state(queue, job_id, "retrying"), what="the job to wait to retry")
    assert await queue.cancel(job_id)
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "cancelled"
    with pytest.raises(streamq.JobFailed, match="cancelled"):
        await queue.wait_for(job_id, timeout=5)
    assert (await queue.stats()).retrying == 0
    assert not await queue.cancel(job_id), "already cancelled"
    # Past the backoff, the retry did not run.
    assert await queue.wait_for(await queue.enqueue("later", start_delay=1.5), timeout=10) is None
    assert runs == [1]
    await consumer.stop()


async def _state(queue: streamq.Queue[Any], job_id: str, state: str) -> bool:
    info = await queue.get_job(job_id)
    return info is not None and info.state == state

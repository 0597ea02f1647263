"""``streamq.testing.make_job``: a job for calling a handler alone, recording what the handler
did through it, and as close to a real run as a job without Redis can be."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest

import streamq
from streamq.store.control import MAX_LOG_LINES
from streamq.testing import RecordedJob, make_job
from streamq.worker.control import MAX_LOG_LINE

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class Order(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


async def report(job: streamq.Job[Any]) -> str:
    """A handler that uses everything a job offers."""
    await job.log(f"attempt {job.attempt} of {job.max_retries + 1}")
    await job.set_progress((1, 2))
    await job.checkpoint({"at": (3, 4)})
    return f"{job.data!r} from {job.resume_from!r}"


def test_the_data_makes_the_round_trip_a_real_job_makes() -> None:
    job = make_job({"tags": ("a", "b"), "n": 1})
    assert job.data == {"tags": ["a", "b"], "n": 1}  # MessagePack has no tuples
    assert make_job(Order("x", 2)).data == Order("x", 2)
    assert make_job(Point(1, 2)).data == Point(1, 2)
    with pytest.raises(streamq.EncodeError):
        make_job({"when": object()})


def test_it_is_a_job_with_the_metadata_given() -> None:
    job = make_job(
        "data", job_id="j-1", queue="q", attempt=3, max_retries=5, priority=7, enqueued_at=12.5
    )
    assert isinstance(job, streamq.Job) and isinstance(job, RecordedJob)
    assert (job.id, job.queue, job.attempt, job.max_retries, job.priority, job.enqueued_at) == (
        "j-1",
        "q",
        3,
        5,
        7,
        12.5,
    )
    assert job.manager is None and job.resume_from is None and not job.cancelled
    assert len(make_job(1).id) == 24  # a generated id, like enqueue's
    for bad in (
        {"attempt": 0},
        {"max_retries": -1},
        {"priority": 10**7},
        {"job_id": ""},
    ):
        with pytest.raises(streamq.InvalidArgument):
            make_job(1, **bad)


async def test_progress_logs_and_checkpoints_are_recorded_as_redis_would_keep_them() -> None:
    job = make_job("x", attempt=2, resume_from=("page", 3))

    assert await report(job) == "'x' from ['page', 3]"
    assert job.logs == ["attempt 2 of 4"]
    assert job.progress_values == [[1, 2]]
    assert job.checkpoints == [{"at": [3, 4]}]

    with pytest.raises(streamq.EncodeError, match="cannot be encoded"):
        await job.set_progress(object())
    with pytest.raises(streamq.InvalidArgument, match="takes a str"):
        await job.log(42)  # type: ignore[arg-type]
    await job.log("x" * (MAX_LOG_LINE + 10))
    assert job.logs[-1] == "x" * MAX_LOG_LINE + "..."
    for n in range(MAX_LOG_LINES):
        await job.log(str(n))
    assert len(job.logs) == MAX_LOG_LINES and job.logs[0] == "0"


async def test_cancelling_and_children_results() -> None:
    job = make_job(1, children_results={"child-1": 10})
    assert await job.children_results() == {"child-1": 10}
    assert not job.cancelled
    job.cancel()
    assert job.cancelled
    assert await make_job(1).children_results() == {}


async def test_a_real_run_sees_and_keeps_what_make_job_shows(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    await queue.consume(report)
    data = {"tags": ("a", "b")}
    job_id = await queue.enqueue(data)

    result = await queue.wait_for(job_id, timeout=10)

    alone = make_job(data, queue=queue_name)
    assert result == await report(alone)
    assert await queue.job_logs(job_id) == alone.logs
    info = await queue.get_job(job_id)
    assert info is not None and info.progress == alone.progress_values[-1]

"""A :class:`~streamq.Job` for calling a handler in a unit test, without Redis: what the handler
does through the job (progress, log lines, checkpoints) is recorded in memory.

What differs from a real run: nothing is written to Redis and no consumer is behind the job,
so ``job.manager`` is None unless one is given, ``children_results()`` returns what
:func:`make_job` was given, ``cancelled`` becomes true only through :meth:`RecordedJob.cancel`
(nothing interrupts an ``async def`` handler), and a timeout, a retry or the return value's
encoding are the consumer's business, not the job's. The data, progress values and checkpoints
do make the MessagePack round trip a real run makes (a tuple comes back a list), and log lines
are cut and capped as the real log cuts and caps them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import EncodeError, InvalidArgument
from ..job import Job
from ..store.control import MAX_LOG_LINES
from ..store.serialization import Codec, decode_result, encode_result
from ..validation import check_job_id, check_max_retries, check_staging, new_job_id
from ..worker.control import MAX_LOG_LINE

if TYPE_CHECKING:
    from ..client.manager import QueueManager

__all__ = ("JobCalls", "RecordedJob", "make_job")

T = TypeVar("T")


class JobCalls:
    """What a handler did through its job (a ``streamq.job.JobControl`` kept in memory), made
    by :func:`make_job`: for the job ``job_id`` of ``queue``, whose ``children_results()``
    returns ``children``."""

    def __init__(self, job_id: str, queue: str, children: Mapping[str, Any]) -> None:
        self.job_id = job_id
        """The job's id."""
        self.queue = queue
        """The name of the job's queue."""
        self.logs: list[str] = []
        """The lines logged, oldest first (``RecordedJob.logs``)."""
        self.progress: list[Any] = []
        """Every progress value, in order (``RecordedJob.progress_values``)."""
        self.checkpoints: list[Any] = []
        """Every checkpoint, in order (``RecordedJob.checkpoints``)."""
        self.cancelled = False
        """Whether :meth:`RecordedJob.cancel` was called."""
        self._children = dict(children)

    async def set_progress(self, value: Any) -> None:
        """Record ``value`` as it would come back from Redis (an unencodable one raises
        :class:`~streamq.EncodeError`, as a real job's would)."""
        self.progress.append(_stored(value, self.job_id, self.queue))

    async def log(self, message: str) -> None:
        """Record ``message`` as a log line, cut and capped as the real log does."""
        if not isinstance(message, str):
            raise InvalidArgument(f"job.log takes a str, got {type(message).__name__}")
        cut = len(message) > MAX_LOG_LINE
        self.logs.append(message[:MAX_LOG_LINE] + "..." if cut else message)
        del self.logs[:-MAX_LOG_LINES]

    async def checkpoint(self, value: Any) -> None:
        """Record ``value`` as it would come back from Redis (as :meth:`set_progress`)."""
        self.checkpoints.append(_stored(value, self.job_id, self.queue))

    async def children_results(self) -> dict[str, Any]:
        """The children's results :func:`make_job` was given."""
        return dict(self._children)


def _stored(value: Any, job_id: str, queue: str) -> Any:
    """``value`` as a reader gets it back from Redis (``JobInfo.progress``, ``resume_from``)."""
    try:
        return decode_result(encode_result(value))
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(
            f"job {job_id!r}: {type(value).__name__} cannot be encoded as MessagePack ({exc});"
            " pass msgspec-encodable data",
            queue=queue,
        ) from exc


class RecordedJob(Job[T], frozen=True):
    """A :class:`~streamq.Job` (handlers take it as one) that records what its handler did."""

    @property
    def calls(self) -> JobCalls:
        """Everything the handler did through the job, in one record."""
        control = self._control
        assert isinstance(control, JobCalls), "a RecordedJob is made by make_job"
        return control

    @property
    def logs(self) -> list[str]:
        """The lines logged (``job.log``), oldest first."""
        return self.calls.logs

    @property
    def progress_values(self) -> list[Any]:
        """Every value passed to ``job.set_progress``, in order (a real job keeps the last)."""
        return self.calls.progress

    @property
    def checkpoints(self) -> list[Any]:
        """Every value passed to ``job.checkpoint``, in order (the last one is what the next
        attempt would find in ``resume_from``)."""
        return self.calls.checkpoints

    def cancel(self) -> None:
        """Make ``job.cancelled`` true, as ``Queue.cancel`` does while a handler runs (a plain
        function handler should notice it between steps)."""
        self.calls.cancelled = True


def make_job(
    data: T,
    *,
    job_id: str | None = None,
    queue: str = "test",
    attempt: int = 1,
    max_retries: int = 3,
    priority: int = 0,
    enqueued_at: float | None = None,
    resume_from: Any = None,
    children_results: Mapping[str, Any] | None = None,
    manager: QueueManager | None = None,
) -> RecordedJob[T]:
    """A job as a handler of ``queue`` would receive it, for calling the handler in a test:
    ``result = await handler(make_job(data))``.

    ``data`` makes the MessagePack round trip as a queue typed with the data's own type would
    (a ``msgspec.Struct`` or a dataclass comes back as itself, a dict's tuples as lists), so
    data a real queue could not carry fails here too (:class:`~streamq.EncodeError`).
    ``job_id``: generated unless given. ``attempt``: 1 for the first delivery, more for a retry
    (with ``resume_from``: the last checkpoint the previous attempt saved). ``max_retries``,
    ``priority`` and ``enqueued_at`` (default: now) are the job's as a real enqueue would set
    them, checked the same way. ``children_results``: what the job's ``children_results()``
    returns (a flow step's children, by id). ``manager``: a ``QueueManager`` for a handler that
    enqueues follow-up jobs through ``job.manager``.
    """
    job_id = new_job_id() if job_id is None else check_job_id(job_id)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InvalidArgument(f"attempt must be an int >= 1 (1: the first run), got {attempt!r}")
    check_max_retries(max_retries)
    check_staging(priority, 0)
    enqueued_at = time.time() if enqueued_at is None else enqueued_at
    codec: Codec[T] = Codec(queue, type(data))
    envelope = codec.decode(codec.encode(data, enqueued_at=enqueued_at, priority=priority))
    calls = JobCalls(job_id, queue, children_results or {})
    return RecordedJob(
        id=job_id,
        data=envelope.data,
        queue=queue,
        attempt=attempt,
        max_retries=max_retries,
        priority=priority,
        enqueued_at=enqueued_at,
        manager=manager,
        resume_from=None if resume_from is None else _stored(resume_from, job_id, queue),
        _control=calls,
    )

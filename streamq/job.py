"""What users see of a job: the handler's ``Job`` and the inspection records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import msgspec

if TYPE_CHECKING:
    from .client.manager import QueueManager

__all__ = (
    "DeadLetter",
    "Event",
    "EventType",
    "HistoryPoint",
    "Job",
    "JobControl",
    "JobInfo",
    "JobRef",
    "JobState",
    "QueueStats",
)

T = TypeVar("T")

JobState = Literal[
    "waiting",
    "delayed",
    "active",
    "retrying",
    "completed",
    "dead",
    "cancelled",
    "waiting_children",
]
EventType = Literal[
    "enqueued", "started", "progress", "completed", "failed", "dead", "cancelled", "reclaimed"
]


class JobControl(Protocol):
    """What a running job's handler reaches through its :class:`Job` (the consumer's side)."""

    @property
    def cancelled(self) -> bool: ...

    async def set_progress(self, value: Any) -> None: ...

    async def log(self, message: str) -> None: ...

    async def checkpoint(self, value: Any) -> None: ...

    async def children_results(self) -> dict[str, Any]: ...


class Job(msgspec.Struct, Generic[T], frozen=True):
    """A job as a handler receives it.

    A Job made by hand (a handler's unit test) has no consumer behind it: ``cancelled`` is
    False and ``set_progress``, ``log`` and ``checkpoint`` do nothing.
    """

    id: str
    data: T
    queue: str
    #: 1 on the first delivery, 2 on the first retry (or a redelivery after a consumer died), ...
    attempt: int
    max_retries: int
    priority: int
    #: Unix seconds when the job was enqueued.
    enqueued_at: float
    #: The manager whose consumer runs the job: to enqueue follow-up jobs from the handler
    #: (``job.manager.get_queue("next").enqueue(...)``), also in ``python -m streamq worker``.
    #: None for a Job made by hand (a handler's unit test).
    manager: QueueManager | None = None
    #: The cursor the job's last attempt saved with :meth:`checkpoint`: where to go on from
    #: after a reclaim, a retry or a hand-back on shutdown. None on a fresh job.
    resume_from: Any = None
    #: Set by the consumer that runs the job.
    _control: JobControl | None = None

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled while it runs (``Queue.cancel``). An ``async def``
        handler is cancelled outright; a plain function cannot be, so it should look at this
        between steps and return."""
        return self._control is not None and self._control.cancelled

    async def set_progress(self, value: Any) -> None:
        """Keep ``value`` (any msgspec-encodable data) as the job's progress: the last one is
        ``JobInfo.progress``."""
        if self._control is not None:
            await self._control.set_progress(value)

    async def log(self, message: str) -> None:
        """Add ``message`` as a line of the job's log (``Queue.job_logs``; the newest 1,000 lines
        are kept, as long as the job's record)."""
        if self._control is not None:
            await self._control.log(message)

    async def checkpoint(self, value: Any) -> None:
        """Save ``value`` (msgspec-encodable) as the job's cursor: an attempt that follows this
        one finds it in ``resume_from``, so it goes on from there rather than from the start."""
        if self._control is not None:
            await self._control.checkpoint(value)

    async def children_results(self) -> dict[str, Any]:
        """A flow step's children's results, by child id (one read, whatever their number):
        those that completed; a child that failed under ``on_child_failure="ignore"`` is left
        out. Empty for a job with no children (and for a Job made by hand)."""
        if self._control is None:
            return {}
        return await self._control.children_results()


class JobRef(msgspec.Struct, frozen=True):
    """Another job, named by its queue and id (a flow's parent or child)."""

    queue: str
    id: str


class JobInfo(msgspec.Struct, frozen=True):
    """A job's state as ``Queue.get_job`` reports it (or one consumer group's part in it)."""

    id: str
    state: JobState
    #: Attempts made so far: those that failed or completed, and the one running.
    attempts: int
    #: The handler's result; None until it completed, and for a job that went to several
    #: groups unless one is asked for (``get_job(job_id, group=...)``).
    result: Any
    error: str | None
    enqueued_at: float | None
    finished_at: float | None
    #: Where each consumer group stands with a job that goes to several (a broadcast queue);
    #: empty for a job of one group.
    groups: dict[str, JobState] = msgspec.field(default_factory=dict)
    #: The last value the handler passed to ``job.set_progress`` (None before any).
    progress: Any = None
    #: A flow's step: its parent, which runs once it and its siblings completed.
    parent: JobRef | None = None
    #: A flow's step: the steps it waits for (``"waiting_children"``) before it runs.
    children: tuple[JobRef, ...] = ()


class QueueStats(msgspec.Struct, frozen=True):
    """Counts of a queue's jobs by state, as ``Queue.stats`` reports them."""

    #: In the stream and not yet delivered (the most behind group, when several read the queue).
    waiting: int
    #: Delivered to a consumer and not yet finished (summed over groups).
    active: int
    delayed: int
    retrying: int
    #: Completions since the queue was created.
    completed: int
    dead: int
    #: Seconds the oldest undelivered job has waited; 0.0 when none waits.
    oldest_waiting_age: float
    #: Consumer groups reading the queue.
    groups: int
    #: Redis memory the queue takes, approximately (its keys, and its jobs' records estimated
    #: from a sample); 0 where the server does not say.
    memory_bytes: int = 0
    #: Whether the queue is paused (``Queue.pause``): no consumer starts a job.
    paused: bool = False
    #: Fairness keys with waiting jobs (``enqueue(..., fairness_key=)``).
    fairness_keys: int = 0


class HistoryPoint(msgspec.Struct, frozen=True):
    """One minute of a queue's history, as ``Queue.history`` reports it."""

    #: The minute's start, unix seconds (the Redis server's clock), a multiple of 60.
    minute: int
    #: Jobs completed (in each consumer group, on a broadcast queue).
    completed: int
    #: Failed attempts: those that will be retried and those that went to the dead letters.
    failed: int
    #: Of those, the jobs that went to the dead letters.
    dead: int
    #: First attempts that started: the jobs the latencies describe.
    started: int
    #: Seconds from enqueue to the first start of the jobs that started (a delayed job's
    #: delay included), median and 99th percentile: estimates from buckets a factor of 2
    #: wide, within a factor of 2; None when no job started.
    latency_p50: float | None
    latency_p99: float | None


class DeadLetter(msgspec.Struct, frozen=True):
    """A job that failed past its retries (or could not be decoded)."""

    job_id: str
    #: The decoded data, or the raw bytes when the payload cannot be decoded.
    data: Any
    error: str
    attempts: int
    #: Unix seconds of the last failure.
    failed_at: float
    #: The consumer groups the job failed in (one for a work queue).
    groups: tuple[str, ...] = ()
    #: Where the handler raised: its traceback (the last 8,000 characters); None when the
    #: attempt failed without an exception of the handler's (a timeout, a bad payload).
    traceback: str | None = None


class Event(msgspec.Struct, frozen=True):
    """A step in a job's life, as ``Queue.events`` reports it."""

    #: The event's id in the queue's event stream: pass it as ``since`` to go on after it.
    id: str
    type: EventType
    job_id: str
    #: The attempt it concerns (1 for the first; 0 where none is known: enqueued, cancelled).
    attempt: int
    #: Unix seconds, by the Redis server's clock (millisecond precision).
    at: float
    #: ``completed``: the result; ``failed``/``dead``: the error; ``progress``: the value;
    #: ``reclaimed``: how many times the job's entry has been delivered. None otherwise.
    detail: Any = None
    #: The consumer group it happened in (None for enqueued and cancelled).
    group: str | None = None

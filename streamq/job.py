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
"""Where a job stands: ``waiting`` for a consumer, ``delayed`` until its ``start_delay`` is over,
``active`` in a handler, ``retrying`` after a failed attempt (until its backoff is over),
``completed``, ``dead`` (in the dead letters), ``cancelled``, or ``waiting_children``: a flow's
step whose children have not all completed."""
EventType = Literal[
    "enqueued", "started", "progress", "completed", "failed", "dead", "cancelled", "reclaimed"
]
"""What an :class:`Event` records: an attempt ``started``; ``failed`` is an attempt that will be
retried, ``dead`` one that sent the job to the dead letters; ``progress`` is a
``job.set_progress``; ``reclaimed``, a job taken over from a consumer that went silent."""


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
    """The job's id: the ``job_id`` it was enqueued with, or the one generated."""
    data: T
    """The enqueued data, decoded as the queue's type."""
    queue: str
    """The name of the queue it came from."""
    attempt: int
    """1 on the first delivery, 2 on the first retry (or a redelivery after a consumer died), ..."""
    max_retries: int
    """Retries it may have after its first attempt (its enqueue's ``max_retries``, else the
    consumer's): attempt ``max_retries + 1`` is its last."""
    priority: int
    """The priority it was enqueued with (higher starts first)."""
    enqueued_at: float
    """Unix seconds when the job was enqueued."""
    manager: QueueManager | None = None
    """The manager whose consumer runs the job: to enqueue follow-up jobs from the handler
    (``job.manager.get_queue("next").enqueue(...)``), also in ``python -m streamq worker``. None
    for a Job made by hand (a handler's unit test)."""
    resume_from: Any = None
    """The cursor the job's last attempt saved with :meth:`checkpoint`: where to go on from after
    a reclaim, a retry or a hand-back on shutdown. None on a fresh job."""
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
    """The name of the job's queue."""
    id: str
    """The job's id in it."""


class JobInfo(msgspec.Struct, frozen=True):
    """A job's state as ``Queue.get_job`` reports it (or one consumer group's part in it)."""

    id: str
    """The job's id."""
    state: JobState
    """Where it stands: its own state, or the asked-for group's."""
    attempts: int
    """Attempts made so far: those that failed or completed, and the one running."""
    result: Any
    """The handler's result; None until it completed, and for a job that went to several groups
    unless one is asked for (``get_job(job_id, group=...)``)."""
    error: str | None
    """Why the last attempt failed, while the job waits to retry or once it is dead (on a
    broadcast queue, naming the group it died in); None otherwise."""
    enqueued_at: float | None
    """Unix seconds of the enqueue; None where the record does not say."""
    finished_at: float | None
    """Unix seconds when it completed, went to the dead letters or was cancelled; None while
    unfinished."""
    groups: dict[str, JobState] = msgspec.field(default_factory=dict)
    """Where each consumer group stands with a job that goes to several (a broadcast queue);
    empty for a job of one group."""
    progress: Any = None
    """The last value the handler passed to ``job.set_progress`` (None before any)."""
    parent: JobRef | None = None
    """A flow's step: its parent, which runs once it and its siblings completed."""
    children: tuple[JobRef, ...] = ()
    """A flow's step: the steps it waits for (``"waiting_children"``) before it runs."""


class QueueStats(msgspec.Struct, frozen=True):
    """Counts of a queue's jobs by state, as ``Queue.stats`` reports them."""

    waiting: int
    """In the stream and not yet delivered (the most behind group, when several read the queue)."""
    active: int
    """Delivered to a consumer and not yet finished (summed over groups)."""
    delayed: int
    """Waiting for their ``start_delay`` to be over."""
    retrying: int
    """Failed attempts' jobs waiting for their retry (their backoff)."""
    completed: int
    """Completions since the queue was created."""
    dead: int
    """In the dead letters (``Queue.dead_letters``)."""
    oldest_waiting_age: float
    """Seconds the oldest undelivered job has waited; 0.0 when none waits."""
    groups: int
    """Consumer groups reading the queue."""
    memory_bytes: int = 0
    """Redis memory the queue takes, approximately (its keys, and its jobs' records estimated
    from a sample); 0 where the server does not say."""
    paused: bool = False
    """Whether the queue is paused (``Queue.pause``): no consumer starts a job."""
    fairness_keys: int = 0
    """Fairness keys with waiting jobs (``enqueue(..., fairness_key=)``)."""


class HistoryPoint(msgspec.Struct, frozen=True):
    """One minute of a queue's history, as ``Queue.history`` reports it."""

    minute: int
    """The minute's start, unix seconds (the Redis server's clock), a multiple of 60."""
    completed: int
    """Jobs completed (in each consumer group, on a broadcast queue)."""
    failed: int
    """Failed attempts: those that will be retried and those that went to the dead letters."""
    dead: int
    """Of those, the jobs that went to the dead letters."""
    started: int
    """First attempts that started: the jobs the latencies describe."""
    latency_p50: float | None
    """Seconds from enqueue to the first start of the jobs that started (a delayed job's delay
    included), their median: an estimate from buckets a factor of 2 wide, so within a factor of
    2; None when no job started."""
    latency_p99: float | None
    """As ``latency_p50``, their 99th percentile."""


class DeadLetter(msgspec.Struct, frozen=True):
    """A job that failed past its retries (or could not be decoded)."""

    job_id: str
    """The job's id: what ``Queue.retry_dead`` and ``Queue.dead_letter`` take."""
    data: Any
    """The decoded data, or the raw bytes when the payload cannot be decoded."""
    error: str
    """Why the last attempt failed (the handler's exception, a timeout, a bad payload)."""
    attempts: int
    """Attempts made, the last failed one included."""
    failed_at: float
    """Unix seconds of the last failure."""
    groups: tuple[str, ...] = ()
    """The consumer groups the job failed in (one for a work queue)."""
    traceback: str | None = None
    """Where the handler raised: its traceback (the last 8,000 characters); None when the attempt
    failed without an exception of the handler's (a timeout, a bad payload)."""


class Event(msgspec.Struct, frozen=True):
    """A step in a job's life, as ``Queue.events`` reports it."""

    id: str
    """The event's id in the queue's event stream: pass it as ``since`` to go on after it."""
    type: EventType
    """What happened."""
    job_id: str
    """The id of the job it happened to."""
    attempt: int
    """The attempt it concerns (1 for the first; 0 where none is known: enqueued, cancelled)."""
    at: float
    """Unix seconds, by the Redis server's clock (millisecond precision)."""
    detail: Any = None
    """``completed``: the result; ``failed``/``dead``: the error; ``progress``: the value;
    ``reclaimed``: how many times the job's entry has been delivered. None otherwise."""
    group: str | None = None
    """The consumer group it happened in (None for enqueued and cancelled)."""

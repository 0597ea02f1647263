"""What users see of a job: the handler's ``Job`` and the inspection records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

if TYPE_CHECKING:
    from .client.manager import QueueManager

__all__ = ("DeadLetter", "Job", "JobInfo", "JobState", "QueueStats")

T = TypeVar("T")

JobState = Literal["waiting", "delayed", "active", "retrying", "completed", "dead", "cancelled"]


class Job(msgspec.Struct, Generic[T], frozen=True):
    """A job as a handler receives it."""

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

"""Every error streamq raises on purpose derives from :class:`StreamqError`.

::

    StreamqError
    ├── ConnectionFailed        cannot reach the server, or it is unusable (too old, wrong URL)
    │   ├── PermissionDenied    the Redis user lacks a command, key or channel streamq needs
    │   └── RedisTimeout (TimeoutError)
    │                           the server did not answer within ``socket_timeout``
    ├── EncodeError (TypeError) data cannot be encoded, or does not match the queue's type
    ├── InvalidArgument (ValueError)
    │                           a bad name, option or value passed to the API
    ├── JobFailed               a job went to the dead letters (raised by ``Queue.wait_for``)
    │   └── JobCancelled        ... or was cancelled
    ├── JobInUse                a dead job cannot be replayed, or a flow created: an id it
    │                           needs belongs to an unfinished job
    ├── JobNotFound (LookupError)
    │                           no such job (never enqueued, or its record expired)
    ├── NotReplicated           an enqueue reached fewer replicas than ``min_replicas`` asks
    ├── QueueInUse              a queue was not deleted: consumers of it are live
    ├── Retry                   raised by a handler: run the job again (after ``delay``)
    └── Unrecoverable           raised by a handler: straight to the dead letters

Waiting past a deadline raises the built-in :class:`TimeoutError`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = (
    "ConnectionFailed",
    "EncodeError",
    "InvalidArgument",
    "JobCancelled",
    "JobFailed",
    "JobInUse",
    "JobNotFound",
    "NotReplicated",
    "PermissionDenied",
    "QueueInUse",
    "RedisTimeout",
    "Retry",
    "StreamqError",
    "Unrecoverable",
)


class StreamqError(Exception):
    """The root of every error streamq raises on purpose."""


class ConnectionFailed(StreamqError):
    """The Redis server cannot be reached or cannot be used (too old, bad URL)."""


class RedisTimeout(ConnectionFailed, TimeoutError):
    """Redis did not answer a command within the manager's ``socket_timeout`` (a stall, a
    partition, a server paused): whether it ran the command is unknown."""


class PermissionDenied(ConnectionFailed):
    """The Redis user (ACL) may not run a command, or touch a key or channel, that streamq needs.

    The message names what was refused and the ACL rules that let streamq work.
    """


class EncodeError(StreamqError, TypeError):
    """A job's data cannot be encoded, or is not valid for the queue's type.

    Nothing was written when this is raised. ``message`` says what is wrong; ``queue`` (kept as
    an attribute) names the queue, None where none is involved.
    """

    def __init__(self, message: str, *, queue: str | None = None) -> None:
        super().__init__(message)
        self.queue = queue


class InvalidArgument(StreamqError, ValueError):
    """A bad name, option or value was passed to the API."""


class JobFailed(StreamqError):
    """The job failed past its retries and went to the dead letters.

    ``job_id``, ``error`` (its last attempt's) and ``queue`` are kept as attributes.
    """

    def __init__(self, job_id: str, error: str, *, queue: str | None = None) -> None:
        super().__init__(f"job {job_id!r} of queue {queue!r} failed: {error}")
        self.job_id = job_id
        self.error = error
        self.queue = queue


class JobCancelled(JobFailed):
    """The job was cancelled (``Queue.cancel``) before it finished: it will not run again.
    ``job_id`` and ``queue`` are kept as attributes (``error`` is ``"cancelled"``)."""

    def __init__(self, job_id: str, *, queue: str | None = None) -> None:
        super().__init__(job_id, "cancelled", queue=queue)
        self.args = (f"job {job_id!r} of queue {queue!r} was cancelled",)


class JobInUse(StreamqError):
    """A job id an unfinished job holds, where a new one was to run under it: a dead job was
    not replayed (a job enqueued since under its id is unfinished), or a flow was not created
    (one of its steps names such an id). Two jobs must not run under one id.

    ``job_id`` is the id in use and ``queue`` its queue; ``flow`` is the id of the flow not
    created (its root step's), None for a replay. All three are kept as attributes.
    """

    def __init__(self, job_id: str, *, queue: str | None = None, flow: str | None = None) -> None:
        if flow is None:
            message = (
                f"dead job {job_id!r} of queue {queue!r} was not replayed: a job enqueued since"
                " under that id is unfinished. Replay it once that job has finished, or purge"
                " the dead letters"
            )
        else:
            message = (
                f"flow {flow!r} was not created (nothing of it was kept): its step {job_id!r}"
                f" of queue {queue!r} has the id of an unfinished job. Give the step another"
                " job_id (or none: ids are generated), or enqueue the flow once that job"
                " finished"
            )
        super().__init__(message)
        self.job_id = job_id
        self.queue = queue
        self.flow = flow


class JobNotFound(StreamqError, LookupError):
    """No record of the job: never enqueued, or finished longer than ``result_ttl`` ago or
    before the queue's newest ``keep_finished`` finished jobs. ``job_id`` and ``queue`` (kept as
    attributes) name the job asked for."""

    def __init__(self, job_id: str, *, queue: str | None = None) -> None:
        super().__init__(
            f"no job {job_id!r} in queue {queue!r}: it was never enqueued there, or it finished"
            " longer than result_ttl ago or before the queue's newest keep_finished finished"
            " jobs (raise those to keep more)"
        )
        self.job_id = job_id
        self.queue = queue


class NotReplicated(StreamqError):
    """Fewer replicas than the manager's ``min_replicas`` confirmed an enqueue in time.

    The jobs *were* written to the primary and will run, unless the primary fails before they
    reach a replica. Enqueueing them again with the same ``job_id`` is safe (deduplicated).

    Kept as attributes: ``queue``; ``job_ids``, the jobs written; ``replicas``, how many replicas
    confirmed them; ``wanted``, the ``min_replicas`` asked for; ``timeout``, the seconds waited
    (``replica_timeout``).
    """

    def __init__(
        self, *, queue: str, job_ids: list[str], replicas: int, wanted: int, timeout: float
    ) -> None:
        shown = ", ".join(map(repr, job_ids[:3])) + (" ..." if len(job_ids) > 3 else "")
        super().__init__(
            f"queue {queue!r}: {len(job_ids)} job(s) ({shown}) reached {replicas} of the"
            f" {wanted} replica(s) min_replicas asks for within {timeout:g}s; they are on the"
            " primary and would be lost if it failed now. Check the replicas (INFO replication),"
            " or enqueue again with the same job_id (deduplicated)"
        )
        self.queue = queue
        self.job_ids = job_ids
        self.replicas = replicas
        self.wanted = wanted
        self.timeout = timeout

    @classmethod
    def merged(cls, errors: list[NotReplicated]) -> NotReplicated:
        """One error for the batches of one call that were not confirmed (``errors``, one per
        batch, at least one): their jobs, and the fewest replicas any of them reached."""
        first = errors[0]
        return cls(
            queue=first.queue,
            job_ids=[job_id for error in errors for job_id in error.job_ids],
            replicas=min(error.replicas for error in errors),
            wanted=first.wanted,
            timeout=first.timeout,
        )


class QueueInUse(StreamqError):
    """A queue was not deleted: consumers of it are live (in this process or another).
    ``queue`` and ``consumers`` (the live consumers' names, as a tuple) are kept as attributes."""

    def __init__(self, queue: str, consumers: Sequence[str]) -> None:
        more = len(consumers) - 5
        shown = ", ".join(consumers[:5]) + (f" and {more} more" if more > 0 else "")
        super().__init__(
            f"queue {queue!r} was not deleted: {len(consumers)} consumer(s) of it are live"
            f" ({shown}). Stop them first, or delete with force=True (--force)"
        )
        self.queue = queue
        self.consumers = tuple(consumers)


class Retry(StreamqError):
    """Raise it in a handler to run the job again after ``delay`` seconds (None: the consumer's
    backoff). It counts as an attempt: raised on the last one, the job goes to the dead letters.
    ``reason`` is the attempt's error, as the logs and a dead letter show it.
    """

    def __init__(
        self, delay: float | None = None, reason: str = "the handler asked for a retry"
    ) -> None:
        from .validation import check_seconds  # validation imports this module

        self.delay = (
            None if delay is None else check_seconds(delay, what="Retry's delay", allow_zero=True)
        )
        self.reason = reason
        super().__init__(reason if delay is None else f"{reason} (in {self.delay:g}s)")


class Unrecoverable(StreamqError):
    """Raise it in a handler when trying again cannot help (bad input, a record that is gone):
    the job goes to the dead letters with ``reason`` at once, whatever retries it had left."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

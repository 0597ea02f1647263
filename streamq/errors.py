"""Every error streamq raises on purpose derives from :class:`StreamqError`.

::

    StreamqError
    ├── ConnectionFailed        cannot reach the server, or it is unusable (too old, wrong URL)
    ├── EncodeError (TypeError) data cannot be encoded, or does not match the queue's type
    ├── InvalidArgument (ValueError)
    │                           a bad name, option or value passed to the API
    ├── JobFailed               a job went to the dead letters (raised by ``Queue.wait_for``)
    └── JobNotFound (LookupError)
                                no such job (never enqueued, or its record expired)

Waiting past a deadline raises the built-in :class:`TimeoutError`.
"""

from __future__ import annotations

__all__ = (
    "ConnectionFailed",
    "EncodeError",
    "InvalidArgument",
    "JobFailed",
    "JobNotFound",
    "StreamqError",
)


class StreamqError(Exception):
    """The root of every error streamq raises on purpose."""


class ConnectionFailed(StreamqError):
    """The Redis server cannot be reached or cannot be used (too old, bad URL)."""


class EncodeError(StreamqError, TypeError):
    """A job's data cannot be encoded, or is not valid for the queue's type.

    Nothing was written when this is raised.
    """

    def __init__(self, message: str, *, queue: str | None = None) -> None:
        super().__init__(message)
        self.queue = queue


class InvalidArgument(StreamqError, ValueError):
    """A bad name, option or value was passed to the API."""


class JobFailed(StreamqError):
    """The job failed past its retries and went to the dead letters."""

    def __init__(self, job_id: str, error: str, *, queue: str | None = None) -> None:
        super().__init__(f"job {job_id!r} of queue {queue!r} failed: {error}")
        self.job_id = job_id
        self.error = error
        self.queue = queue


class JobNotFound(StreamqError, LookupError):
    """No record of the job: never enqueued, or finished longer than ``result_ttl`` ago."""

    def __init__(self, job_id: str, *, queue: str | None = None) -> None:
        super().__init__(
            f"no job {job_id!r} in queue {queue!r}: it was never enqueued there, or it finished"
            " longer than result_ttl ago"
        )
        self.job_id = job_id
        self.queue = queue

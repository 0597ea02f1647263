"""Errors from Redis as streamq's: naming the queue and what was being done, and for a write
whether it may have happened (``Queue``'s methods and its event reader share this)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import ConnectionFailed, RedisTimeout, StreamqError
from ..transport.acl import permission_denied

__all__ = ("AFTER_ERROR", "as_streamq_error", "clear_errors")

P = ParamSpec("P")
R = TypeVar("R")


class _Named(Protocol):
    """What :func:`clear_errors` names in its errors: a ``Queue``."""

    name: str


Q = TypeVar("Q", bound=_Named)


def clear_errors(
    method: Callable[Concatenate[Q, P], Awaitable[R]], prefix_of: Callable[[Q], str]
) -> Callable[Concatenate[Q, P], Awaitable[R]]:
    """For ``Queue``'s public methods: errors from Redis come out as streamq's
    (:func:`as_streamq_error`), naming the queue and the method, and for a write whether it may
    have happened. ``prefix_of``: the queue's key prefix (the ACL rules that fix a denial)."""
    written = AFTER_ERROR[method.__name__]  # a new public method says what a failure means

    @functools.wraps(method)
    async def wrapper(self: Q, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except RedisError as exc:
            doing = f"queue {self.name!r}: {method.__name__}"
            raise as_streamq_error(exc, prefix_of(self), doing, written) from exc

    return wrapper


def as_streamq_error(exc: RedisError, prefix: str, doing: str, after: str) -> StreamqError:
    """``exc`` as streamq's error: a command the Redis user may not run (its ACL) is a
    :class:`PermissionDenied` naming the ACL rules that fix it; a lost connection a
    :class:`ConnectionFailed`; no answer in time a :class:`RedisTimeout`. ``doing`` says what
    failed ("queue 'q': enqueue"), ``after`` what the failure may have done."""
    if isinstance(exc, NoPermissionError):
        return permission_denied(exc, prefix, doing)
    if isinstance(exc, RedisTimeoutError):
        return RedisTimeout(f"{doing}: Redis did not answer in time ({exc}); {after}")
    if isinstance(exc, RedisConnectionError):
        return ConnectionFailed(f"{doing}: the connection to Redis failed ({exc}); {after}")
    return StreamqError(
        f"{doing}: Redis answered with an error ({type(exc).__name__}: {exc}); {after}"
    )


#: What a failed call of each of ``Queue``'s public methods may have done. A write whose reply
#: was lost may have happened; a read changed nothing.
AFTER_ERROR = {
    "enqueue": "the job may or may not have been added; enqueue it again with the same job_id"
    " (deduplicated while it is unfinished)",
    "enqueue_many": "some jobs may have been added",
    "cancel": "the job may or may not have been cancelled (a flow's steps: some of them)",
    "children_results": "nothing was changed",
    "pause": "the queue may or may not have been paused",
    "resume": "the queue may or may not have been resumed",
    "call": "the job may or may not have been enqueued; its id is unknown",
    "schedule_recurring": "the schedule may or may not have been set; set it again (idempotent)",
    "cancel_recurring": "the schedule may or may not have been removed",
    "consume": "the consumer did not start",
    "retry_dead": "some dead jobs may have been replayed",
    "purge_dead": "the dead letters may or may not have been purged",
    "delete": "some of the queue's jobs may have been deleted; delete it again to finish",
    **dict.fromkeys(
        (
            "get_job",
            "busiest_keys",
            "wait_for",
            "stats",
            "history",
            "dead_letters",
            "dead_letter",
            "jobs",
            "groups",
            "recurring_schedules",
            "job_logs",
            "drain",
        ),
        "nothing was changed",
    ),
}

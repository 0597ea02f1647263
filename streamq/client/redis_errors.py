"""Errors from Redis as streamq's: naming the queue and what was being done, and for a write
whether it may have happened (``Queue``'s methods and its event reader share this)."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import ConnectionFailed, RedisTimeout, StreamqError
from ..transport.acl import permission_denied

__all__ = ("as_streamq_error",)


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

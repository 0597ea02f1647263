"""Checks of user-supplied arguments, each raising :class:`InvalidArgument` that names the fix."""

from __future__ import annotations

import inspect
import math
import os

from .errors import InvalidArgument
from .store.serialization import MAX_PRIORITY

__all__ = (
    "MAX_JOB_ID_LENGTH",
    "check_count",
    "check_handler",
    "check_job_id",
    "check_max_retries",
    "check_non_negative",
    "check_seconds",
    "check_staging",
    "new_job_id",
)


#: Longest job id, in characters. Any character is fine (ids are binary-safe everywhere they go:
#: keys after the queue's hash tag, stream fields, script arguments), but every record, entry and
#: dead letter of the job repeats its id.
MAX_JOB_ID_LENGTH = 1024
#: Longest delay streamq schedules (a start delay, a backoff): ten years. Longer is a mistake
#: more often than a plan, and due times stay exact milliseconds in Redis's sorted sets.
MAX_DELAY_SECONDS = 10 * 365 * 86400


def new_job_id() -> str:
    return os.urandom(12).hex()


def check_job_id(job_id: object) -> str:
    return _check_id(
        job_id, "job_id", MAX_JOB_ID_LENGTH, "hash a longer natural key, e.g. with hashlib.sha256"
    )


def _check_id(value: object, what: str, most: int, longer: str, *, none: str = "") -> str:
    """A non-empty UTF-8 str of at most ``most`` characters (``longer``: what to do instead)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty str{none}, got {value!r}")
    if len(value) > most:
        raise InvalidArgument(
            f"{what} {value[:40]!r}... has {len(value):,} characters: use at most {most:,}"
            f" ({longer})"
        )
    return check_utf8(value, what=what)


def check_utf8(text: str, *, what: str) -> str:
    """Names and ids go to Redis as UTF-8; a lone surrogate cannot (and would fail the whole
    script call it rides in, other callers' jobs included)."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{what} {text[:40]!r} is not valid Unicode ({exc.reason} at position {exc.start}):"
            " use text that encodes as UTF-8"
        ) from None
    return text


def check_max_retries(max_retries: object) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgument(
            f"max_retries must be an int >= 0 (0 means one attempt only), got {max_retries!r}"
        )
    return max_retries


def check_non_negative(value: object, *, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{what} must be an int >= 0, got {value!r}")
    return value


def check_count(value: object, *, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{what} must be an int >= 1, got {value!r}")
    return value


def check_seconds(value: object, *, what: str, allow_zero: bool = False) -> float:
    """Seconds as a finite float: > 0 (or >= 0 with ``allow_zero``), at most ten years."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{what} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidArgument(f"{what} must be seconds {bound}, got {value!r}")
    if value > MAX_DELAY_SECONDS:
        raise InvalidArgument(
            f"{what} must be at most {MAX_DELAY_SECONDS:,} seconds (ten years), got {value!r}"
        )
    return float(value)


def check_handler(handler: object) -> None:
    """A handler is called with one argument, the job: refuse what cannot be (at ``consume``,
    not as a dead letter per job)."""
    name = getattr(handler, "__qualname__", None) or repr(handler)[:60]
    fix = "pass a function that takes the job: async def handle(job: streamq.Job[T]) -> ..."
    if inspect.isclass(handler):
        # Calling it would make an instance per job, never run one.
        raise InvalidArgument(f"handler {name!r} is a class, not a function: {fix}")
    if not callable(handler):
        raise InvalidArgument(f"handler must be callable, got a {type(handler).__name__}: {fix}")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # a builtin without a signature: it may well take one argument
    try:
        signature.bind(None)
    except TypeError as exc:
        raise InvalidArgument(
            f"handler {name!r} cannot be called with one argument, the job ({exc}): {fix}"
        ) from None


def check_staging(priority: int, start_delay: float) -> int:
    """The start delay in ms, once priority and delay are checked."""
    if priority.__class__ is int and start_delay.__class__ is int and not priority | start_delay:
        return 0  # the defaults: the common case, checked cheaply
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidArgument(f"priority must be an int, got {priority!r}")
    if abs(priority) > MAX_PRIORITY:
        raise InvalidArgument(
            f"priority must be between -{MAX_PRIORITY:,} and {MAX_PRIORITY:,}, got {priority:,}"
        )
    # Rounded up: a job never starts before the delay it was given.
    return math.ceil(check_seconds(start_delay, what="start_delay", allow_zero=True) * 1000)


#: The longest fairness key (it is part of a Redis key name).
MAX_FAIRNESS_KEY_LENGTH = 200


def check_fairness_key(key: object) -> str:
    """A fairness key (``enqueue(..., fairness_key=)``); "" stands for none."""
    if key is None:
        return ""
    checked = _check_id(
        key, "fairness_key", MAX_FAIRNESS_KEY_LENGTH, "a tenant's id, not its data", none=" or None"
    )
    if any(c.isspace() for c in checked):
        raise InvalidArgument(f"fairness_key {checked!r} contains whitespace: leave it out")
    return checked

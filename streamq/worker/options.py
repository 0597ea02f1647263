"""A consumer's settings, checked once when it is started."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgument
from ..validation import check_count, check_max_retries, check_non_negative, check_seconds
from .backoff import Backoff, resolve_backoff

__all__ = ("READY_WINDOW_FACTOR", "ConsumerOptions")

#: While jobs are staged, the stream holds about this many entries per consumer slot (its
#: running jobs and those it may read ahead): enough to keep consumers fed, few enough that a
#: high-priority job overtakes the backlog.
READY_WINDOW_FACTOR = 2


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    group: str
    max_retries: int
    concurrency: int
    timeout: float | None
    backoff: Backoff
    visibility_timeout: float
    #: At most this many job starts per ``rate_period`` seconds across the group, if set.
    rate_limit: int | None = None
    rate_period: float = 1.0
    #: Entries read ahead of a free slot, waiting for one (0: only as many as slots are free;
    #: None: as many as ``concurrency`` while handlers run short, see ``ReadAhead``).
    prefetch: int | None = None
    #: At most this many handlers of the group run at once across all consumers, if set.
    global_concurrency: int | None = None
    #: Per fairness key, across the group: at most this many of a key's jobs in the window or
    #: running, and at most ``per_key_rate`` starts per ``per_key_period`` seconds, if set.
    per_key_concurrency: int | None = None
    per_key_rate: int | None = None
    per_key_period: float = 1.0

    @property
    def key_limits(self) -> tuple[int, int, int]:
        """The per-key limits as the queue's registration holds them (0: none)."""
        return (
            self.per_key_concurrency or 0,
            self.per_key_rate or 0,
            round(self.per_key_period * 1000),
        )

    @classmethod
    def build(
        cls,
        *,
        group: str,
        max_retries: int,
        concurrency: int,
        timeout: float | None,
        backoff: Backoff | float | None,
        visibility_timeout: float,
        rate_limit: tuple[int, float] | None = None,
        prefetch: int | None = None,
        global_concurrency: int | None = None,
        per_key_concurrency: int | None = None,
        per_key_rate_limit: tuple[int, float] | None = None,
    ) -> ConsumerOptions:
        limit, period = _rate_of(rate_limit, "rate_limit")
        key_rate, key_period = _rate_of(per_key_rate_limit, "per_key_rate_limit")
        concurrency = check_count(concurrency, what="concurrency")
        return cls(
            group=group,
            max_retries=check_max_retries(max_retries),
            concurrency=concurrency,
            timeout=None if timeout is None else check_seconds(timeout, what="timeout"),
            backoff=resolve_backoff(backoff),
            visibility_timeout=check_seconds(visibility_timeout, what="visibility_timeout"),
            rate_limit=limit,
            rate_period=period,
            prefetch=None if prefetch is None else check_non_negative(prefetch, what="prefetch"),
            global_concurrency=None
            if global_concurrency is None
            else check_count(global_concurrency, what="global_concurrency"),
            per_key_concurrency=None
            if per_key_concurrency is None
            else check_count(per_key_concurrency, what="per_key_concurrency"),
            per_key_rate=key_rate,
            per_key_period=key_period,
        )


def _rate_of(value: object, what: str) -> tuple[int | None, float]:
    """A rate limit ``(max_jobs, per_seconds)`` checked: ``(None, 1.0)`` for None."""
    if value is None:
        return None, 1.0
    if not isinstance(value, tuple) or len(value) != 2:
        raise InvalidArgument(
            f"{what} must be (max_jobs, per_seconds), e.g. (10, 1.0); got {value!r}"
        )
    limit = check_count(value[0], what=f"{what}'s max_jobs")
    period = check_seconds(value[1], what=f"{what}'s per_seconds")
    if round(period * 1000) < 1:
        raise InvalidArgument(f"{what}'s per_seconds is {period!r}: use at least 0.001 s")
    return limit, period

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
    ) -> ConsumerOptions:
        limit, period = None, 1.0
        if rate_limit is not None:
            if not isinstance(rate_limit, tuple) or len(rate_limit) != 2:
                raise InvalidArgument(
                    "rate_limit must be (max_jobs, per_seconds), e.g. (10, 1.0);"
                    f" got {rate_limit!r}"
                )
            limit = check_count(rate_limit[0], what="rate_limit's max_jobs")
            period = check_seconds(rate_limit[1], what="rate_limit's per_seconds")
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
        )

"""How long a failed job waits before its next attempt."""

from __future__ import annotations

import random
from collections.abc import Callable

from ..errors import InvalidArgument

__all__ = ("Backoff", "exponential", "resolve_backoff")

#: ``backoff(attempt)`` -> seconds before the next attempt; ``attempt`` is the one that failed.
Backoff = Callable[[int], float]

BASE_SECONDS = 1.0
CAP_SECONDS = 300.0


def exponential(attempt: int) -> float:
    """1 s, 2 s, 4 s ... capped at 5 minutes; ±20 % jitter so failures do not retry in step."""
    delay = min(CAP_SECONDS, BASE_SECONDS * 2.0 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)


def resolve_backoff(backoff: Backoff | float | None) -> Backoff:
    if backoff is None:
        return exponential
    if callable(backoff):
        return backoff
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
        raise InvalidArgument(
            f"backoff must be seconds >= 0 or a callable (attempt) -> seconds, got {backoff!r}"
        )
    seconds = float(backoff)
    return lambda _attempt: seconds

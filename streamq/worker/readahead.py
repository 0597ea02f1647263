"""How many entries a consumer reads ahead of its free slots (``consume(prefetch=...)``)."""

from __future__ import annotations

__all__ = ("SHORT_JOB", "ReadAhead")

#: Handlers that run shorter than this on average gain from reading ahead: their next job
#: starts without waiting for a round trip. Longer ones gain nothing worth the imbalance.
SHORT_JOB = 0.05
#: Weight of the latest run in the running mean of handler durations.
_WEIGHT = 0.1


class ReadAhead:
    """A fixed ``prefetch``, or (None) as many as ``concurrency`` while the handlers run short
    and none while they run long or before one has run: read-ahead entries wait for this
    consumer's slots while another consumer of the group may be idle, so with long jobs they
    only skew the work (4 jobs of 2 s on 2 consumers of concurrency 2 took 4 s, not 2)."""

    __slots__ = ("_concurrency", "_fixed", "_mean")

    def __init__(self, concurrency: int, prefetch: int | None) -> None:
        self._concurrency = concurrency
        self._fixed = prefetch
        self._mean: float | None = None

    @property
    def held(self) -> int:
        """Entries to hold at once now: running, and read ahead of a free slot."""
        if self._fixed is not None:
            return self._concurrency + self._fixed
        if self._mean is None or self._mean >= SHORT_JOB:
            return self._concurrency
        return 2 * self._concurrency

    @property
    def window_share(self) -> int:
        """The most it may hold: what the consumer counts for in the queue's ready window."""
        return self._concurrency + (self._concurrency if self._fixed is None else self._fixed)

    def ran(self, seconds: float) -> None:
        """A handler ran for ``seconds``."""
        if self._fixed is None:
            mean = self._mean
            self._mean = seconds if mean is None else mean + _WEIGHT * (seconds - mean)

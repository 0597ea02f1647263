"""A queue's per-minute history (``Queue.history``): what the finishing scripts count, and the
script that reads it back (``history.lua``).

Each minute of a queue has a hash (``QueueKeys.history(minute)``), written by the finishing
scripts in the call that makes the change and expiring :data:`HISTORY_TTL` seconds after its
first write (the expiry is set when a field is new, not on every call), so a queue holds at most
about 120 of them however many jobs flow. Its fields:

- ``c``: jobs completed (per group, like ``QueueStats.completed``);
- ``f``: failed attempts, whether a retry was scheduled or the job went to the dead letters;
  ``d``: those of them that went to the dead letters;
- ``l<i>``: first attempts that started, by their wait from enqueue to start, in bucket ``i``
  of :func:`latency_bucket` (the consumer counts its starts and sends the counts with its
  next acknowledgements: a few HINCRBY per call, not one per job).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..job import HistoryPoint
from ..transport.lane import CommandLane
from .keys import HISTORY_TTL, QueueKeys
from .script_types import pairs
from .scripts import Script

__all__ = (
    "HISTORY_MINUTES",
    "HISTORY_TTL",
    "LATENCY_BUCKETS",
    "HistoryScripts",
    "latency_bucket",
    "percentile",
)

#: The most minutes ``Queue.history`` reads back (all a queue keeps).
HISTORY_MINUTES = 120
#: Latency buckets: bucket 0 is up to 1 ms, bucket ``i`` up to ``2**i`` ms (from ``2**(i-1)``),
#: the last one anything over ``2**22`` ms (about 70 minutes).
LATENCY_BUCKETS = 24
_OVERFLOW = LATENCY_BUCKETS - 1


def latency_bucket(seconds: float) -> int:
    """The bucket of a wait of ``seconds``: the smallest ``i`` with ``seconds <= 2**i`` ms."""
    ms = seconds * 1000
    if ms <= 1:  # a clock behind the producer's gives a negative wait: none, really
        return 0
    mantissa, exponent = math.frexp(ms)  # ms = mantissa * 2**exponent, 0.5 <= mantissa < 1
    return min(exponent - 1 if mantissa == 0.5 else exponent, _OVERFLOW)


def percentile(buckets: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0 to 1) of the waits counted in ``buckets`` (bucket -> count), in
    seconds; None when none was counted.

    An estimate: the bucket holding the quantile is found exactly, and the value is placed
    inside it geometrically by the rank's share of the bucket (``lower * 2**share``; linearly
    in the first bucket, 0 to 1 ms), so it is within a factor of 2 of the true value. In the
    last bucket it is that bucket's lower bound (about 70 minutes): "at least".
    """
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i in range(LATENCY_BUCKETS):
        count = buckets.get(i, 0)
        if count <= 0:
            continue
        if seen + count >= rank:
            share = max(0.0, min(1.0, (rank - seen) / count))
            if i == 0:
                return share / 1000
            lower = 2.0 ** (i - 1) / 1000
            return lower if i == _OVERFLOW else lower * 2.0**share
        seen += count
    return 2.0 ** (_OVERFLOW - 1) / 1000  # not reached: the last bucket holds the rest


def point_of(minute: int, fields: Mapping[bytes, bytes]) -> HistoryPoint:
    """One minute's hash as a :class:`HistoryPoint`."""
    buckets: dict[int, int] = {}
    for name, value in fields.items():
        if name.startswith(b"l") and name[1:].isdigit():
            buckets[int(name[1:])] = int(value)
    return HistoryPoint(
        minute=minute,
        completed=int(fields.get(b"c", 0)),
        failed=int(fields.get(b"f", 0)),
        dead=int(fields.get(b"d", 0)),
        started=sum(buckets.values()),
        latency_p50=percentile(buckets, 0.5),
        latency_p99=percentile(buckets, 0.99),
    )


class HistoryScripts:
    """The script that reads a queue's history, called through one lane."""

    def __init__(self, lane: CommandLane) -> None:
        self._history = Script(lane, "history.lua")

    async def history(self, keys: QueueKeys, minutes: int) -> list[HistoryPoint]:
        """The last ``minutes`` minutes by the server's clock (the current one included),
        oldest first; a minute nothing happened in has zero counts."""
        reply = await self._history(keys=[keys.history_prefix], args=[minutes])
        return [point_of(int(minute), pairs(fields)) for minute, fields in reply]

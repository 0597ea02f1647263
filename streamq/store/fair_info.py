"""A typed wrapper over the script that looks into fair queues: the fairness keys with the most
waiting jobs (``fair_busiest.lua``)."""

from __future__ import annotations

from ..transport.lane import CommandLane
from .keys import QueueKeys
from .scripts import Script

__all__ = ("BUSIEST_CHUNK", "FairInfoScripts")

#: Keys one script call looks at: with 100,000 keys that is 50 short calls, none holding the
#: server for long, rather than one long one.
BUSIEST_CHUNK = 2000

#: Past the end of the sets the script walks (the ring, parked, full).
_DONE = 3


class FairInfoScripts:
    """The fair-queue inspection scripts, called through one lane."""

    def __init__(self, lane: CommandLane, chunk: int = BUSIEST_CHUNK) -> None:
        self._busiest = Script(lane, "fair_busiest.lua")
        self._chunk = chunk

    async def busiest(self, keys: QueueKeys, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` keys with the most waiting jobs, ``(key, jobs)``, most first (then by
        key). The walk takes several calls: a key that joins, leaves or is held back meanwhile
        may be missed or seen twice (then counted once, at its larger count)."""
        found: dict[str, int] = {}
        at, rank = 0, 0
        while at < _DONE:
            reply = await self._busiest(keys=[keys.staged], args=[at, rank, self._chunk, limit])
            at, rank = int(reply[0]), int(reply[1])
            for raw, count in zip(reply[2::2], reply[3::2], strict=True):
                key = raw.decode(errors="replace")
                found[key] = max(found.get(key, 0), int(count))
        return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

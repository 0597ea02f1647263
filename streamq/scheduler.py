"""Moves due retries from their sorted set into the stream.

Every manager with a consumer runs one scheduler per queue. Its step is one atomic script, so
several managers may run it at once and each retry is promoted once. It sleeps until the next
retry is due by the server's clock, or until a local consumer schedules an earlier one.
"""

from __future__ import annotations

import logging

import anyio
from redis.exceptions import RedisError

from .keys import QueueKeys
from .scripts import Scripts

__all__ = ("Scheduler",)

log = logging.getLogger("streamq")

#: Retries moved per script call; a full batch means more are due, so it goes again at once.
PROMOTE_BATCH = 500
#: Longest sleep: a manager wakes its own scheduler when it schedules a retry, but a retry
#: scheduled by another process whose manager then died is found here at the latest.
MAX_SLEEP = 5.0
ERROR_PAUSE = 1.0


class Scheduler:
    def __init__(self, scripts: Scripts, keys: QueueKeys) -> None:
        self._scripts = scripts
        self._keys = keys
        self._wake = anyio.Event()

    def wake(self, _due_in: float = 0.0) -> None:
        """Look at the sorted sets again now (something may be due sooner than it planned)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                moved, next_due = await self._scripts.promote(self._keys, PROMOTE_BATCH)
            except (RedisError, OSError) as exc:
                log.warning("scheduler of queue %r: Redis error (%s); retrying in %.1fs",
                            self._keys.queue, exc, ERROR_PAUSE)  # fmt: skip
                moved, next_due = 0, ERROR_PAUSE
            if moved >= PROMOTE_BATCH:
                continue
            sleep = MAX_SLEEP if next_due is None else min(next_due, MAX_SLEEP)
            with anyio.move_on_after(sleep):
                await self._wake.wait()
            self._wake = anyio.Event()

"""What every inspection command does first: connect, and check the queues it was given."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ...client.manager import QueueManager
from ...errors import InvalidArgument

__all__ = ("known_queues", "manager")


@asynccontextmanager
async def manager(url: str | None, prefix: str) -> AsyncIterator[QueueManager]:
    async with QueueManager(url, prefix=prefix) as qm:
        yield qm


async def known_queues(qm: QueueManager, names: Sequence[str]) -> list[str]:
    """``names`` (every registered queue when empty), each checked against the registry: a
    typo is an error, not an empty queue."""
    known = await qm.queues()
    if not names:
        return known
    for name in names:
        if name not in known:
            listed = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
            raise InvalidArgument(
                f"unknown queue {name!r} (prefix {qm.prefix!r}): known queues are "
                + (listed or "none yet")
                + "; a queue is known once something enqueued to it, consumed it or scheduled"
                " on it (check --prefix and --url)"
            )
    return list(names)

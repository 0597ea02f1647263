"""What pages through a whole queue: replaying every dead letter (``Queue.retry_dead()``) and
deleting the queue's jobs (``Queue.delete``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from ..errors import QueueInUse
from .batching import ENQUEUE_BATCH

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from ..store.scripts import Scripts
    from ..transport.connection import Client

__all__ = ("delete_jobs", "revive_all")

#: Job records one call of ``delete`` removes (about a millisecond of the server's time).
DELETE_BATCH = 1000

log = logging.getLogger("streamq")


async def revive_all(
    scripts: Scripts,
    client: Client,
    keys: QueueKeys,
    events: int,
    replay_parent: Callable[[str], Awaitable[bool]],
) -> int:
    """Replay every dead job whose id no unfinished job holds (a flow's parent with its
    children: ``replay_parent``); returns how many were."""
    total, skipped = 0, 0
    # The skipped ones stay first in the dead set (oldest failure first): page past them.
    while ids := cast(
        "list[bytes]",
        await client.zrange(keys.dead, skipped, skipped + ENQUEUE_BATCH - 1),
    ):
        revived, in_use, parents = await scripts.revive(keys, [i.decode() for i in ids], events)
        for parent in parents:
            if await replay_parent(parent):
                revived += 1
            else:  # not a flow parent after all (it changed meanwhile): left where it is
                in_use.append(parent)
        total += revived
        skipped += len(in_use)
    if skipped:
        log.warning(
            "queue %r: %d dead job(s) not replayed: jobs enqueued since under their ids are"
            " unfinished",
            keys.queue,
            skipped,
        )
    return total


async def delete_jobs(scripts: Scripts, keys: QueueKeys, *, force: bool) -> int:
    """Delete every job record of the queue, then its keys; returns how many records went.
    Raises :class:`QueueInUse` while consumers of it are live, unless ``force``."""
    total, first = 0, True
    while True:
        # Only the first batch looks for live consumers: a delete is not left halfway.
        reply = await scripts.delete(keys, DELETE_BATCH, force=force or not first)
        if isinstance(reply, list):
            raise QueueInUse(keys.queue, reply)
        deleted, done = reply
        total, first = total + deleted, False
        if done:
            return total

"""Replaying dead letters (``Queue.retry_dead``): one job or every one, with fresh attempts; a
flow's parent with the part of its tree that had not completed (``flows.FlowReplay``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import JobInUse
from ..validation import check_job_id
from .flows import FlowReplay
from .housekeeping import revive_all

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from .host import Connection
    from .queue import Queue

__all__ = ("retry_dead",)


async def retry_dead(
    connection: Connection,
    keys: QueueKeys,
    events: int,
    queue_of: Callable[[str], Queue[Any]],
    job_id: str | None,
) -> int:
    """Revive the dead job ``job_id`` of the queue at ``keys`` (raising :class:`JobInUse` when
    an unfinished job holds its id), or all its dead jobs when None (skipping those); how many
    were revived. ``events``: the lifecycle events the queue keeps; ``queue_of``: the queues a
    flow's steps live in."""
    flows = FlowReplay(connection.flows, keys.prefix, queue_of)
    if job_id is None:
        return await revive_all(
            connection.scripts,
            connection.client,
            keys,
            events,
            lambda parent: flows.parent(keys.queue, parent),
        )
    check_job_id(job_id)
    if await flows.parent(keys.queue, job_id):
        return 1
    revived, in_use, _ = await connection.scripts.revive(keys, [job_id], events)
    if in_use:
        raise JobInUse(job_id, queue=keys.queue)
    return revived

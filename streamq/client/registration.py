"""A queue's place in the registry that tools list queues from (``qm.queues()``), with its
type's JSON Schema for tools that do not have the type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ..store.schema import schema_of

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from .host import QueueHost

__all__ = ("Registration",)


class Registration:
    """Taken once, by the queue's first enqueue, schedule or consumer (the enqueues that come
    together first wait for one registration rather than each sending their own), and given
    up when the queue is deleted."""

    __slots__ = ("_done", "_host", "_keys", "_lock", "_type")

    def __init__(self, host: QueueHost, keys: QueueKeys, type_: Any) -> None:
        self._host = host
        self._keys = keys
        self._type = type_
        self._done = False
        self._lock = anyio.Lock()

    async def ensure(self) -> None:
        """Register the queue unless this process already did (then at no cost)."""
        if self._done:
            return
        async with self._lock:
            if not self._done:
                await self._host.register(self._keys.queue)
                if (schema := schema_of(self._type)) is not None:
                    await self._host.connection().client.set(self._keys.schema, schema)
                self._done = True

    async def withdraw(self) -> None:
        """Take the queue out of the registry (it was deleted); its next use registers it."""
        await self._host.unregister(self._keys.queue)
        self._done = False

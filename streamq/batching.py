"""Coalescing concurrent enqueues: one script call carries every job that arrived meanwhile.

While one call is on its way to Redis, enqueues that arrive wait, and the first of them sends
them all in the next call. A lone producer is unaffected (its job goes at once); many
concurrent producers share round trips instead of each paying one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import anyio

__all__ = ("Coalescer",)

T = TypeVar("T")


class _Pending(Generic[T]):
    __slots__ = ("done", "error", "item", "lead")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = anyio.Event()
        self.lead = False  # woken to send the next batch rather than because it was sent
        self.error: BaseException | None = None


class Coalescer(Generic[T]):
    def __init__(self, send: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        self._send = send
        self._queue: list[_Pending[T]] = []
        self._busy = False

    async def submit(self, item: T) -> None:
        """Return once ``item`` was sent (raising what the send raised)."""
        if not self._busy:  # nothing on its way: send at once, no waiting structures
            self._busy = True
            batch: list[_Pending[T]] = []
            items = [item]
        else:
            me = _Pending(item)
            self._queue.append(me)
            try:
                await me.done.wait()
            except BaseException:
                if me.lead:  # cancelled just as the duty to send came: pass it on
                    self._queue.remove(me)
                    self._hand_over()
                raise
            if not me.lead:
                if me.error is not None:
                    raise me.error
                return
            batch, self._queue = self._queue, []  # ours is the first of them
            items = [p.item for p in batch]
        try:
            # Shielded: the jobs of everyone in the batch are on this call, written or not.
            with anyio.CancelScope(shield=True):
                await self._send(items)
        except Exception as exc:
            for pending in batch:
                pending.error = exc
            raise
        finally:
            for pending in batch:
                pending.done.set()
            self._hand_over()

    def _hand_over(self) -> None:
        """Make the first waiter the next sender, or stand down."""
        if self._queue:
            first = self._queue[0]
            first.lead = True
            first.done.set()
        else:
            self._busy = False

"""Carries a queue's flow steps' finishes to their parents, and sweeps the flows rooted in the
queue whose creation stopped half-way (``store/flows.py`` says why both are needed).

Every manager with a consumer of the queue runs one :class:`FlowRelay` for it. The script that
finishes a child appends an item to the child's queue's outbox and publishes ``flow`` on the
queue's channel; the relays read the outbox through one consumer group, so each item goes to
one of them, apply it on the parent's queue (idempotent by child id), and delete it with their
next read. Items a relay took and never deleted (its process died) are claimed by another after
:data:`CLAIM_AFTER_MS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from ..errors import StreamqError
from ..store.flows import FlowScripts, FlowWriter, OutboxItem, decode_spec
from ..store.keys import QueueKeys
from ..store.script_types import Retention
from .outage import OutagePolicy, Rounds

__all__ = ("FlowRelay",)

log = logging.getLogger("streamq")

#: Items applied per round; a full round means more wait: go again at once.
BATCH = 500
#: Items another relay took this long ago and did not finish are claimed (it died).
CLAIM_AFTER_MS = 10_000
#: How often (at most) the outbox is looked at without a wake-up (one can be lost), items of
#: dead relays claimed, and stale flow creations swept.
SWEEP_EVERY = 5.0
ERROR_PAUSE = 1.0
#: How long a busy relay lets items gather before its next round (what it adds to each parent's
#: release while children finish steadily; an idle relay goes at once).
GATHER = 0.002


class FlowRelay:
    def __init__(
        self,
        scripts: FlowScripts,
        writer: FlowWriter,
        keys: QueueKeys,
        name: str,
        *,
        retention_of: Callable[[str], Retention],
        cancel: Callable[[str, str], Awaitable[object]],
    ) -> None:
        self._scripts = scripts
        self._writer = writer
        self._keys = keys
        self._name = name
        #: A parent queue's retention (its failed parents are kept like its other jobs).
        self._retention_of = retention_of
        #: ``cancel(queue, id)``: Queue.cancel, which cancels a step's subtree too.
        self._cancel = cancel
        #: Items applied, to delete with the next take.
        self._applied: list[bytes] = []
        self._sweep_every = min(SWEEP_EVERY, writer.stale_ms / 2000)
        self._next_sweep = 0.0
        outage = OutagePolicy(f"flow relay of queue {keys.queue!r}", keys.prefix, (ERROR_PAUSE,))
        self._rounds = Rounds(outage)

    def wake(self) -> None:
        """A child of the queue finished: look at the outbox now."""
        self._rounds.wake()

    async def run(self) -> None:
        # Busy (the last round had items, and more came): let a few finishing batches gather,
        # so a fan-in is relayed in rounds of many, not of one batch each.
        await self._rounds.run(self._round, gather=lambda: GATHER if self._applied else 0.0)

    async def _round(self) -> float:
        """Sweep when due, then relay a batch; returns how long to sleep before the next round."""
        sweep = time.monotonic() >= self._next_sweep
        if sweep:
            self._next_sweep = time.monotonic() + self._sweep_every
            await self._sweep()
        more = await self._relay(CLAIM_AFTER_MS if sweep else 0)
        return 0.0 if more else max(0.0, self._next_sweep - time.monotonic())

    async def _relay(self, claim_after_ms: int) -> bool:
        """Apply one batch of the outbox; True when it was full (more wait)."""
        items = await self._scripts.take(
            self._keys, self._name, BATCH, claim_after_ms, self._applied
        )
        self._applied = []
        if not items:
            return False
        by_queue: dict[str, list[OutboxItem]] = {}
        for item in items:
            if item.parent_queue:
                by_queue.setdefault(item.parent_queue, []).append(item)
            else:  # not written by streamq: deleted with the others, never applied
                log.warning(
                    "queue %r: outbox item %s is not a flow step's finish; dropping it",
                    self._keys.queue,
                    item.item_id.decode(errors="replace"),
                )
        for queue, applied in by_queue.items():
            keys = QueueKeys(self._keys.prefix, queue)
            to_cancel = await self._scripts.apply(
                keys, self._retention_of(queue), self._keys.queue, applied
            )
            for child_queue, child in to_cancel:
                await self._cancel_sibling(child_queue, child)
        # Deleted with the next take (a round trip less per round); if this process dies
        # first, another relay claims them and applying them again changes nothing.
        self._applied = [item.item_id for item in items if item.item_id]
        return len(items) >= BATCH

    async def _cancel_sibling(self, queue: str, job_id: str) -> None:
        """A failed parent's other children are cancelled (best effort: the parent is dead
        either way, and what they end with is ignored)."""
        try:
            await self._cancel(queue, job_id)
        except StreamqError as exc:
            log.warning("queue %r: could not cancel flow step %r (%s)", queue, job_id, exc)

    async def _sweep(self) -> None:
        """Finish the committed flows rooted here whose producer stopped; undo the others."""
        for root_id, raw, committed in await self._scripts.stale(
            self._keys, self._writer.stale_ms, 10
        ):
            try:
                spec = decode_spec(raw)
            except msgspec.DecodeError as exc:
                log.error(
                    "queue %r: flow %r cannot be decoded (%s)", self._keys.queue, root_id, exc
                )
                continue
            if not committed and await self._writer.undo(spec):
                log.warning(
                    "queue %r: flow %r was undone: its producer stopped before it was written"
                    " whole",
                    self._keys.queue,
                    root_id,
                )
                continue
            await self._writer.finish(spec)
            log.warning(
                "queue %r: flow %r was released: its producer stopped after it was written",
                self._keys.queue,
                root_id,
            )

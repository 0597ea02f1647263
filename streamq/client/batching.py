"""Coalescing concurrent enqueues: one script call carries every job that arrived meanwhile.

While one call is on its way to Redis, enqueues that arrive wait, and the first of them sends
them all in the next call. A lone producer is unaffected (its job goes at once); many
concurrent producers share round trips instead of each paying one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

from ..errors import StreamqError

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from ..store.scripts import Scripts

__all__ = (
    "ENQUEUE_BATCH",
    "ENQUEUE_BATCH_BYTES",
    "Coalescer",
    "Enqueue",
    "Outcomes",
    "batches",
    "send_grouped",
)

#: Jobs per script call in ``enqueue_many`` (and for enqueues that arrive together): big enough
#: for throughput, small enough that one call never holds the server for long.
ENQUEUE_BATCH = 500
#: Payload bytes per script call: a batch of big jobs is split by size too. Redis reads a whole
#: command before it runs it and copies each payload in the script, so this bounds the time one
#: call holds the server (about 2 ms for 1 MiB; 500 small jobs take about 5) and the memory its
#: command takes.
ENQUEUE_BATCH_BYTES = 1024 * 1024

T = TypeVar("T")

#: (job id, payload, enqueued_at, priority, delay ms, fairness key or "") of one ``enqueue``.
Enqueue = tuple[str, bytes, float, int, int, str]

#: What a send reports: per item, True when it was written, False when writing it changed
#: nothing (an unfinished job already has its id), else its error.
Outcomes = Sequence[BaseException | bool]


class _Pending(Generic[T]):
    __slots__ = ("done", "item", "lead", "outcome")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = anyio.Event()
        self.lead = False  # woken to send the next batch rather than because it was sent
        self.outcome: BaseException | bool = False


class Coalescer(Generic[T]):
    def __init__(self, send: Callable[[Sequence[T]], Awaitable[Outcomes]]) -> None:
        self._send = send
        self._queue: list[_Pending[T]] = []
        self._busy = False

    async def submit(self, item: T) -> bool:
        """Once ``item`` was sent: True if it was written, False if that changed nothing; raise
        its error otherwise."""
        if not self._busy:  # nothing on its way: send at once, no waiting structures
            self._busy = True
            try:
                (outcome,) = await self._send([item])
            finally:
                self._hand_over()
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        me = _Pending(item)
        self._queue.append(me)
        try:
            await me.done.wait()
        except BaseException:
            # Cancelled while waiting: not sent, so take the job back; if the duty to send
            # had just come to us, pass it on.
            if me in self._queue:
                self._queue.remove(me)
                if me.lead:
                    self._hand_over()
            raise
        if me.lead:
            batch, self._queue = self._queue, []  # ours is the first of them
            # The batch is sent by a task of its own: whatever happens to this caller (even a
            # plain asyncio cancellation, which anyio's shield does not stop), everyone in the
            # batch learns what became of their job.
            sending = asyncio.ensure_future(self._send_batch(batch))
            await asyncio.shield(sending)
        if isinstance(me.outcome, BaseException):
            raise me.outcome
        return me.outcome

    async def _send_batch(self, batch: list[_Pending[T]]) -> None:
        try:
            outcomes = await self._send([p.item for p in batch])
            for pending, outcome in zip(batch, outcomes, strict=True):
                pending.outcome = outcome
        except BaseException as exc:
            for pending in batch:
                pending.outcome = (
                    exc
                    if isinstance(exc, Exception)
                    else StreamqError(
                        f"the enqueue was interrupted ({type(exc).__name__}); the job may or may"
                        " not have been added"
                    )
                )
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


def batches(jobs: list[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    """``(job_id, payload)`` jobs in order, in script calls of at most ``ENQUEUE_BATCH`` jobs
    and ``ENQUEUE_BATCH_BYTES`` of payload (a bigger job goes alone)."""
    if len(jobs) <= ENQUEUE_BATCH and sum(len(p) for _, p in jobs) <= ENQUEUE_BATCH_BYTES:
        yield jobs  # the common case: one call
        return
    batch: list[tuple[str, bytes]] = []
    size = 0
    for job in jobs:
        if batch and (len(batch) >= ENQUEUE_BATCH or size + len(job[1]) > ENQUEUE_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(job)
        size += len(job[1])
    if batch:
        yield batch


async def send_grouped(
    scripts: Scripts, keys: QueueKeys, events: int, jobs: Sequence[Enqueue]
) -> Outcomes:
    """Enqueues that arrived together: one script call per (priority, delay, fairness key)
    among them (in batches); each job's outcome is its group's. (The group's records share the
    first job's enqueue time; each payload keeps its own.)"""
    groups: dict[tuple[int, int, str], list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault((job[3], job[4], job[5]), []).append(index)
    outcomes: list[BaseException | bool] = [False] * len(jobs)
    for (priority, delay_ms, key), indexes in groups.items():
        group = [jobs[i] for i in indexes]
        results: list[BaseException | bool] = []
        for batch in batches([(j[0], j[1]) for j in group]):
            try:
                added = await scripts.enqueue(
                    keys, batch, group[0][2], priority, delay_ms, events, fairness_key=key
                )
            except Exception as exc:
                results += [exc] * len(batch)
            else:
                results += added
        for i, outcome in zip(indexes, results, strict=True):
            outcomes[i] = outcome
    return outcomes

"""Writing a consumer's completions: every completion queued while one call is on its way goes
in the next call of the finishing script (acks coalesce), and the consumer's next entries are
read in the same round trip while jobs flow. The jobs' starts ride along the same way: with
lifecycle events on, a "started" event each (written before its job's outcome); and a first
attempt's wait since enqueue, counted by latency bucket for the queue's history (a few counters
per call, not one per job)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from redis.exceptions import RedisError

from ..ops.hooks import Hooks, SettleEvent, call_hooks
from ..store.history import latency_bucket
from .entries import group_gone

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from ..store.script_types import Fields
    from ..store.scripts import Completion, Retention, Scripts
    from .outage import OutagePolicy

__all__ = ("AckTarget", "Acks")

log = logging.getLogger("streamq")

#: Longest a stop spends writing the last completions.
FLUSH_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class AckTarget:
    """Where a consumer's completions go, and what it hears back."""

    name: str
    group: str
    scripts: Scripts
    keys: QueueKeys
    retention: Retention
    outage: OutagePolicy
    #: How many new entries the call should read for the consumer (0: none).
    fetch: Callable[[], int]
    #: The entries it read for the consumer.
    read: Callable[[list[tuple[bytes, Fields]]], None]
    #: The consumer is done with this entry (finished, or nothing is owed any more).
    done: Callable[[bytes], None]
    #: A call that may have read entries for the consumer lost its reply: adopt them.
    reply_lost: Callable[[], None]
    #: The hooks attached now (``on_settle`` hears of each call's completions).
    hooks: Callable[[], tuple[Hooks, ...]]


class Acks:
    """A consumer's completions on their way to Redis."""

    def __init__(self, target: AckTarget) -> None:
        self._target = target
        self._queued: list[Completion] = []
        #: Starts to write as events: entry id -> (job id, attempt), in start order.
        self._starts: dict[bytes, tuple[str, int]] = {}
        #: First starts to count in the history: latency bucket -> how many.
        self._waits: dict[int, int] = {}
        self._events = target.retention.events > 0
        self._ready = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        #: Held while a call is on its way: the consumer's adoption of lost deliveries must
        #: not overlap one that reads for it.
        self.lock = anyio.Lock()
        #: Whether a call went through since the consumer last looked (time to trim).
        self.written = False

    def queue(self, completion: Completion) -> None:
        self._queued.append(completion)
        self._ready.set()

    def note_start(
        self, entry_id: bytes, job_id: str, attempt: int, waited: float | None = None
    ) -> None:
        """With the next call, write a "started" event for the entry's job (with events on),
        and count ``waited`` (seconds from enqueue to a first attempt's start) in the queue's
        history."""
        if waited is not None:
            bucket = latency_bucket(waited)
            self._waits[bucket] = self._waits.get(bucket, 0) + 1
        elif not self._events:
            return
        if self._events:
            self._starts[entry_id] = (job_id, attempt)
        self._ready.set()

    def take_start(self, entry_id: bytes) -> bool:
        """Take back the entry's start if it is not written yet (its outcome is written by
        another script, which then writes the start first); True if it was waiting."""
        return self._starts.pop(entry_id, None) is not None

    @property
    def busy(self) -> bool:
        """Completions are queued or on their way (a call may be reading for the consumer)."""
        return bool(self._queued or self._starts or self._waits) or not self._idle.is_set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def drop(self) -> None:
        """Forget what is queued (those entries were handed back)."""
        self._queued.clear()
        self._starts.clear()

    async def loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready = anyio.Event()
            self._idle = anyio.Event()
            try:
                async with self.lock:
                    await self._write()
            finally:
                self._idle.set()

    async def flush(self) -> None:
        """Write the last completions; bounded, so a stop never hangs on an unreachable Redis."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(FLUSH_SECONDS):
            async with self.lock:  # after a batch that is already on its way
                await self._write()
        if self._queued:
            log.warning(
                "consumer %s: %d completions not written; those jobs run again",
                self._target.name,
                len(self._queued),
            )

    async def _write(self) -> None:
        """Finish every queued completion in one script call."""
        t = self._target
        errors = 0
        while self._queued or self._starts or self._waits:
            batch, self._queued = self._queued, []
            starts, self._starts = self._starts, {}
            waits, self._waits = self._waits, {}
            fetch = t.fetch()
            began = time.perf_counter()
            try:
                finished, entries = await t.scripts.complete(
                    t.keys, t.retention, t.group, t.name, batch, fetch, [*starts.values()], waits
                )
            except (RedisError, OSError) as exc:
                if group_gone(exc):
                    # The group or stream was destroyed under us: nothing is owed any more.
                    log.error(
                        "consumer %s: could not acknowledge %d jobs: %s", t.name, len(batch), exc
                    )
                    for completion in batch:
                        t.done(completion.entry_id)
                    continue
                self._queued = batch + self._queued
                self._starts = starts | self._starts
                for bucket, count in self._waits.items():
                    waits[bucket] = waits.get(bucket, 0) + count
                self._waits = waits
                if fetch:
                    # The script may have run and read entries for us with its reply lost.
                    t.reply_lost()
                errors = await t.outage.pause(exc, errors, "acknowledge")
                continue
            errors = 0
            self.written = True
            t.read(entries)
            for completion, ok in zip(batch, finished, strict=True):
                t.done(completion.entry_id)
                if not ok:
                    log.warning(
                        "consumer %s: job %r finished after its entry was reclaimed by another"
                        " consumer; the new owner's run counts",
                        t.name,
                        completion.job_id,
                    )
            if batch and (hooks := t.hooks()):
                self._tell_settled(hooks, batch, finished, time.perf_counter() - began)

    def _tell_settled(
        self,
        hooks: tuple[Hooks, ...],
        batch: list[Completion],
        finished: list[bool],
        duration: float,
    ) -> None:
        job_ids = tuple(c.job_id for c, ok in zip(batch, finished, strict=True) if ok and c.job_id)
        if job_ids:  # not for acknowledge-only entries (cancelled before they started)
            t = self._target
            event = SettleEvent(
                queue=t.keys.queue,
                group=t.group,
                consumer=t.name,
                job_ids=job_ids,
                duration=duration,
            )
            call_hooks(hooks, "on_settle", event)

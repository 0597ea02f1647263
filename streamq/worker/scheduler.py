"""Moves jobs on when they are due: retries, delayed jobs, staged jobs, recurring occurrences.

Every manager with a consumer runs one :class:`Scheduler` per queue. Each step is an atomic
script, so several managers may run it at once and each job is promoted (each occurrence fired)
once. It sleeps until the next due time by the server's clock, woken earlier by a local retry or
by a message on the queue's channel, which enqueues publish when they add an earlier due time
(the manager's subscription, ``client/notices.py``, calls :meth:`Scheduler.wake`).
"""

from __future__ import annotations

import logging

import msgspec

from ..store.keys import QueueKeys
from ..store.scripts import DueSchedule, NewJob, Scripts
from ..store.serialization import decode_recurring, envelope_of
from .outage import OutagePolicy, Rounds
from .recurring import next_run_ms, run_job_id

__all__ = ("Scheduler",)

log = logging.getLogger("streamq")

#: Jobs moved (schedules fired) per script call; a full batch means more are due: go again.
PROMOTE_BATCH = 500
RECURRING_BATCH = 100
#: Longest sleep, a safety net: wake messages are fire-and-forget, one can be lost while the
#: subscription reconnects (which then wakes every scheduler anyway).
MAX_SLEEP = 5.0
#: The scheduler's pause after a Redis error (a wake-up ends it sooner).
ERROR_PAUSE = 1.0


class Scheduler:
    def __init__(self, scripts: Scripts, keys: QueueKeys, events: int = 0) -> None:
        self._scripts = scripts
        self._keys = keys
        #: The queue's ``keep_events``: an occurrence's enqueue is an event too.
        self._events = events
        who = f"scheduler of queue {keys.queue!r}"
        self._rounds = Rounds(OutagePolicy(who, keys.prefix, (ERROR_PAUSE,)))

    def wake(self) -> None:
        """Look at the sets again now: something may be due sooner than planned."""
        self._rounds.wake()

    async def run(self) -> None:
        await self._rounds.run(self._step)

    async def _step(self) -> float:
        """One round; returns how long to sleep before the next."""
        moved, next_due = await self._scripts.promote(self._keys, PROMOTE_BATCH)
        next_recurring = await self._fire_recurring()
        if moved >= PROMOTE_BATCH:
            return 0.0
        return min(
            MAX_SLEEP,
            MAX_SLEEP if next_due is None else next_due,
            MAX_SLEEP if next_recurring is None else next_recurring,
        )

    async def _fire_recurring(self) -> float | None:
        """Fire the due occurrences; seconds until the next one (None: no schedule)."""
        now_ms, next_in, due = await self._scripts.recurring_due(self._keys, RECURRING_BATCH)
        if len(due) >= RECURRING_BATCH:
            next_in = 0.0
        for schedule in due:
            next_ms = await self._fire(schedule, now_ms)
            if next_ms is not None:
                until = max(0.0, (next_ms - now_ms) / 1000)
                next_in = until if next_in is None else min(next_in, until)
        return next_in

    async def _fire(self, schedule: DueSchedule, now_ms: int) -> int | None:
        """Fire one occurrence (unless another scheduler did); returns the schedule's next run."""
        try:
            definition = decode_recurring(schedule.definition)
        except msgspec.DecodeError as exc:
            # Not ours to run (written by something else); drop it rather than spin on it.
            log.error(
                "queue %r: recurring schedule %r cannot be decoded (%s); removing it",
                self._keys.queue,
                schedule.schedule_id,
                exc,
            )
            await self._scripts.recurring_cancel(self._keys, schedule.schedule_id)
            return None
        now = now_ms / 1000
        run = NewJob(
            run_job_id(schedule.schedule_id, schedule.due_ms),
            envelope_of(definition.data, enqueued_at=now, priority=definition.priority),
            now,
            definition.priority,
        )
        next_ms = next_run_ms(definition, schedule.due_ms, now_ms)
        await self._scripts.recurring_fire(self._keys, schedule, next_ms, run, self._events)
        return next_ms

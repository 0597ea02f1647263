"""The producer and inspection side of a queue; the consumer loop lives in ``consumer.py``."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

import anyio

from ..errors import InvalidArgument, JobInUse, NotReplicated
from ..job import DeadLetter, Event, HistoryPoint, Job, JobInfo, QueueStats
from ..ops.hooks import EnqueueEvent, Hooks, call_hooks
from ..store.control import ControlScripts
from ..store.keys import QueueKeys, validate_group
from ..store.schema import schema_of
from ..store.scripts import Retention, Scripts
from ..store.serialization import Codec, RecurringDef, encode_recurring
from ..validation import (
    check_count,
    check_fairness_key,
    check_handler,
    check_job_id,
    check_max_retries,
    check_seconds,
    check_staging,
    new_job_id,
)
from ..worker.backoff import Backoff
from ..worker.recurring import check_schedule, first_run_ms
from .batching import Coalescer, Enqueue, Outcomes, batches, send_grouped
from .draining import drain_queue
from .events import check_since, read_events
from .flows import FlowReplay
from .housekeeping import delete_jobs, revive_all
from .inspection import (
    GroupInfo,
    InspectScripts,
    JobSummary,
    ListedState,
    RecurringInfo,
    check_listed_state,
    check_peek_limit,
    dead_letter_of,
    job_info,
    recurring_infos,
    stats_of,
    summaries,
)
from .redis_errors import clear_errors
from .waiting import wait_for_job

if TYPE_CHECKING:
    from ..worker.consumer import Consumer
    from .host import QueueHost

__all__ = ("Handler", "Queue")

log = logging.getLogger("streamq")

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
Q = TypeVar("Q", bound="Queue[Any]")

#: ``handler(job)``: an ``async def`` (a plain function runs in a worker thread); its return value
#: is the job's result and raising is a failure.
Handler = Callable[[Job[T]], Awaitable[Any]] | Callable[[Job[T]], Any]


def _clear_errors(
    method: Callable[Concatenate[Q, P], Awaitable[R]],
) -> Callable[Concatenate[Q, P], Awaitable[R]]:
    """Errors from Redis as streamq's, naming the queue and the method (``clear_errors``)."""
    return clear_errors(method, lambda queue: queue._keys.prefix)


class Queue(Generic[T]):
    """A named queue. Get one from :meth:`QueueManager.get_queue`."""

    def __init__(self, host: QueueHost, name: str, type_: Any, retention: Retention) -> None:
        self.name = name
        self.type = type_
        #: How long its finished jobs keep their records, and how many of the newest do.
        self.retention = retention
        self._host = host
        self._keys = QueueKeys(host.prefix, name)
        self._codec: Codec[T] = Codec(name, type_, host.max_payload_bytes, host)
        self._registered = False  # in the registry tools list queues from
        self._registering = anyio.Lock()  # the first enqueues often come together
        self._coalescer: Coalescer[Enqueue] = Coalescer(self._send_enqueues)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} of {getattr(self.type, '__name__', self.type)}>"

    @property
    def _scripts(self) -> Scripts:
        return self._host.connection().scripts

    @property
    def _control(self) -> ControlScripts:
        return self._host.connection().control

    @property
    def _inspect(self) -> InspectScripts:
        return self._host.connection().inspect

    @property
    def _enqueue_scripts(self) -> Scripts:
        """Where enqueues go: with ``min_replicas``, a lane of their own that waits for them."""
        return self._host.connection().enqueue_scripts

    # -- producing ------------------------------------------------------------------------

    @_clear_errors
    async def enqueue(
        self,
        data: T,
        *,
        priority: int = 0,
        start_delay: float = 0,
        job_id: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        fairness_key: str | None = None,
    ) -> str:
        """Add a job; returns its id (``job_id`` when given).

        While a job with ``job_id`` is unfinished, enqueueing the id again changes nothing.
        Jobs of different ``fairness_key``s start round-robin (priority orders a key's own).
        """
        job = await self._prepare(
            data, priority, start_delay, job_id, max_retries, timeout, fairness_key
        )
        added = await self._coalescer.submit(job)
        if hooks := self._host.hooks:
            self._tell_enqueued(hooks, job[0], priority, job[4], job[2], added)
        return job[0]

    async def payload_for(
        self, data: T, *, priority: int, enqueued_at: float, job_id: str | None = None
    ) -> bytes:
        """The payload :meth:`enqueue` would write for ``data`` (checked against the queue's
        type) at ``priority`` and ``enqueued_at``: how a flow's steps are encoded. With
        ``job_id``, what the hooks carry with that job goes with it."""
        payload = self._codec.encode(
            data, enqueued_at=enqueued_at, priority=priority, job_id=job_id
        )
        if not self._registered:
            await self._note_used()
        return payload

    async def _prepare(
        self,
        data: T,
        priority: int,
        start_delay: float,
        job_id: str | None,
        max_retries: int | None,
        timeout: float | None,
        fairness_key: str | None = None,
    ) -> Enqueue:
        """Check and encode a job (nothing is written before this succeeded)."""
        delay_ms = check_staging(priority, start_delay)
        key = check_fairness_key(fairness_key)
        if max_retries is not None:
            check_max_retries(max_retries)
        if timeout is not None:
            check_seconds(timeout, what="timeout")
        job_id = new_job_id() if job_id is None else check_job_id(job_id)
        now = time.time()
        payload = self._codec.encode(
            data,
            enqueued_at=now,
            priority=priority,
            max_retries=max_retries,
            timeout=timeout,
            job_id=job_id,
        )
        if not self._registered:
            await self._note_used()
        return job_id, payload, now, priority, delay_ms, key

    def _tell_enqueued(
        self,
        hooks: tuple[Hooks, ...],
        job_id: str,
        priority: int,
        delay_ms: int,
        now: float,
        added: bool,
    ) -> None:
        event = EnqueueEvent(
            queue=self.name,
            job_id=job_id,
            priority=priority,
            delay=delay_ms / 1000,
            enqueued_at=now,
            duplicate=not added,
        )
        call_hooks(hooks, "on_enqueue", event)

    async def _send_enqueues(self, jobs: Sequence[Enqueue]) -> Outcomes:
        return await send_grouped(self._enqueue_scripts, self._keys, self.retention.events, jobs)

    @_clear_errors
    async def enqueue_many(
        self,
        items: Iterable[T],
        *,
        priority: int = 0,
        start_delay: float = 0,
        fairness_key: str | None = None,
    ) -> list[str]:
        """Add many jobs in few round trips; returns their ids in order.

        Every item is encoded and checked before anything is written. With ``min_replicas``,
        every batch is written even when one is not confirmed; :class:`NotReplicated` then names
        every job that was not.
        """
        delay_ms = check_staging(priority, start_delay)
        key = check_fairness_key(fairness_key)
        now = time.time()
        encode = functools.partial(self._codec.encode_job, enqueued_at=now, priority=priority)
        jobs = [encode(new_job_id(), item) for item in items]
        await self._note_used()
        unconfirmed: list[NotReplicated] = []
        hooks = self._host.hooks
        for batch in batches(jobs):
            try:
                added = await self._enqueue_scripts.enqueue(
                    self._keys,
                    batch,
                    now,
                    priority,
                    delay_ms,
                    self.retention.events,
                    fairness_key=key,
                )
            except NotReplicated as exc:
                unconfirmed.append(exc)
                added = [True] * len(batch)  # written, not confirmed by the replicas
            if hooks:
                for (job_id, _), new in zip(batch, added, strict=True):
                    self._tell_enqueued(hooks, job_id, priority, delay_ms, now, new)
        if unconfirmed:
            raise NotReplicated.merged(unconfirmed)
        return [job_id for job_id, _ in jobs]

    @_clear_errors
    async def cancel(self, job_id: str) -> bool:
        """Cancel an unfinished job: waiting, delayed, retrying or running (True if it was
        unfinished). It ends "cancelled", is neither retried nor dead-lettered, and
        ``wait_for`` raises :class:`JobCancelled`. A running handler is cancelled wherever it
        runs, within about a network round trip (a plain function, which cannot be
        interrupted, sees ``job.cancelled`` become true). A finished job is left as it is.
        """
        cancelled, children = await self._control.cancel(
            self._keys, self.retention, check_job_id(job_id)
        )
        # A flow's parent: its tree goes with it, wherever its steps live.
        for queue, child in children:
            await self._host.queue(queue).cancel(child)
        return cancelled

    @_clear_errors
    async def pause(self) -> bool:
        """Stop every consumer of the queue, in every group and process, from starting jobs
        until :meth:`resume` (running ones finish; enqueueing goes on). It holds across
        restarts. True if the queue was not paused already."""
        return await self._control.set_paused(self._keys, True)

    @_clear_errors
    async def resume(self) -> bool:
        """Let the consumers start jobs again; True if the queue was paused."""
        return await self._control.set_paused(self._keys, False)

    @_clear_errors
    async def call(
        self,
        data: T,
        *,
        timeout: float,
        priority: int = 0,
        start_delay: float = 0,
        job_id: str | None = None,
        max_retries: int | None = None,
        job_timeout: float | None = None,
        fairness_key: str | None = None,
    ) -> Any:
        """Request/reply: enqueue a job and wait for its result, woken by the consumer that
        finishes it (no polling). Raises like :meth:`wait_for`; ``TimeoutError`` after
        ``timeout`` seconds (the job is not cancelled: it may still run). ``job_timeout`` is
        the handler's time limit (``enqueue``'s ``timeout``)."""
        check_seconds(timeout, what="timeout")
        job = await self._prepare(
            data, priority, start_delay, job_id, max_retries, job_timeout, fairness_key
        )
        notices = await self._host.notices(self._keys)

        async def enqueue_watched() -> None:
            # The enqueue registers the wait too: one round trip, not two.
            job_id, payload, now, _, delay_ms, key = job
            [added] = await self._enqueue_scripts.enqueue(
                self._keys,
                [(job_id, payload)],
                now,
                priority,
                delay_ms,
                self.retention.events,
                watch=True,
                fairness_key=key,
            )
            if hooks := self._host.hooks:
                self._tell_enqueued(hooks, job_id, priority, delay_ms, now, added)

        return await wait_for_job(
            self._scripts, self._keys, notices, job[0], timeout, None, register=enqueue_watched
        )

    # -- recurring ------------------------------------------------------------------------

    @_clear_errors
    async def schedule_recurring(
        self,
        job_id: str,
        data: T,
        interval_seconds: float | None = None,
        *,
        cron: str | None = None,
        start_delay: float = 0,
        priority: int = 0,
        tz: str | None = None,
    ) -> bool:
        """Run ``data`` every ``interval_seconds``, or on a 5-field ``cron`` (UTC unless ``tz``).

        Idempotent by ``job_id``: the same arguments again change nothing (every instance may
        call this at start-up); different ones replace the schedule. Each occurrence is enqueued
        once however many managers run (its job id is ``f"{job_id}@{due_ms}"``); a run missed
        while no manager was up happens once when one is back. The first run is after
        ``start_delay``. Returns True if the schedule was created or replaced.
        """
        schedule_id = check_job_id(job_id)
        interval_ms, expression, zone = check_schedule(interval_seconds, cron, tz)
        delay_ms = check_staging(priority, start_delay)
        definition = RecurringDef(
            interval_ms,
            expression,
            zone,
            delay_ms,
            priority,
            self._codec.encode_data(data, priority),
        )
        await self._note_used()
        client = self._host.connection().client
        seconds, micros = await client.time()
        first = first_run_ms(definition, seconds * 1000 + micros // 1000)
        return await self._scripts.recurring_set(
            self._keys, schedule_id, encode_recurring(definition), first
        )

    @_clear_errors
    async def cancel_recurring(self, job_id: str) -> bool:
        """Stop a recurring schedule (True if there was one). Runs already enqueued stay."""
        return await self._scripts.recurring_cancel(self._keys, check_job_id(job_id))

    # -- consuming ------------------------------------------------------------------------

    @_clear_errors
    async def consume(
        self,
        handler: Handler[T],
        *,
        consumer_group: str | None = None,
        max_retries: int = 3,
        concurrency: int = 10,
        timeout: float | None = None,
        backoff: Backoff | float | None = None,
        visibility_timeout: float = 60,
        rate_limit: tuple[int, float] | None = None,
        prefetch: int | None = None,
        global_concurrency: int | None = None,
        per_key_concurrency: int | None = None,
        per_key_rate_limit: tuple[int, float] | None = None,
    ) -> Consumer[T]:
        """Start a consumer in the background and return it (stop it with ``await c.stop()``).

        Consumers sharing ``consumer_group`` (default: the queue's name) share the work; every
        distinct group receives every job. ``prefetch``: jobs the consumer reads ahead of a
        free slot, so the next ones start without a round trip (default: as many as
        ``concurrency`` while handlers run under 50 ms on average, none while they run longer,
        so long jobs are shared out evenly between consumers); 0 never reads ahead.
        ``global_concurrency``: at most that many handlers of the group run at once across all
        its consumers on all machines (a dead consumer's slots come back after
        ``visibility_timeout``). ``per_key_concurrency`` and ``per_key_rate_limit=(n,
        seconds)``: per fairness key, across the group, at most that many jobs running and
        that many starts per period (jobs without a key are not limited).
        """
        from ..worker.options import ConsumerOptions

        check_handler(handler)
        options = ConsumerOptions.build(
            group=validate_group(self.name if consumer_group is None else consumer_group),
            max_retries=max_retries,
            concurrency=concurrency,
            timeout=timeout,
            backoff=backoff,
            visibility_timeout=visibility_timeout,
            rate_limit=rate_limit,
            prefetch=prefetch,
            global_concurrency=global_concurrency,
            per_key_concurrency=per_key_concurrency,
            per_key_rate_limit=per_key_rate_limit,
        )
        await self._note_used()
        return await self._host.start_consumer(self, self._keys, self._codec, handler, options)

    async def _note_used(self) -> None:
        """Put the queue in the registry tools list queues from, with its type's schema for
        tools that do not have the type, once (the enqueues that come together first wait for
        one registration rather than each sending their own)."""
        async with self._registering:
            if not self._registered:
                await self._host.register(self.name)
                if (schema := schema_of(self.type)) is not None:
                    await self._host.connection().client.set(self._keys.schema, schema)
                self._registered = True

    # -- inspecting -----------------------------------------------------------------------

    @_clear_errors
    async def get_job(self, job_id: str, group: str | None = None) -> JobInfo | None:
        """The job's state, or None if it is unknown (or finished longer than result_ttl ago).

        A job that goes to several consumer groups (a broadcast queue) has a state per group:
        ``group=`` picks one (None when the job does not go to it); without it the summary's
        ``groups`` says where each stands and ``result`` is None.
        """
        check_job_id(job_id)
        if group is not None:
            validate_group(group)
        record = await self._scripts.get_job(self._keys, job_id)
        return None if record is None else job_info(job_id, record, group)

    @_clear_errors
    async def wait_for(
        self, job_id: str, timeout: float | None = None, group: str | None = None
    ) -> Any:
        """The job's result once it completes (in ``group``, for a job that goes to several).

        Raises :class:`JobFailed` if it went to the dead letters, :class:`JobNotFound` for an
        unknown job, :class:`TimeoutError` when ``timeout`` seconds pass first, and
        :class:`InvalidArgument` when several groups read the job and none is named (each has
        a result of its own), or the one named does not read it.
        """
        check_job_id(job_id)
        if group is not None:
            validate_group(group)
        notices = await self._host.notices(self._keys)
        return await wait_for_job(self._scripts, self._keys, notices, job_id, timeout, group)

    @_clear_errors
    async def children_results(self, job_id: str) -> dict[str, Any]:
        """The results of a flow step's children that completed, by child id (what its handler
        reads with ``job.children_results()``); children that failed under
        ``on_child_failure="ignore"`` are left out."""
        return await self._control.children_results(self._keys, check_job_id(job_id))

    @_clear_errors
    async def job_logs(self, job_id: str) -> list[str]:
        """The lines the job's handler logged (``job.log``), oldest first: the newest 1,000,
        kept as long as the job's record."""
        return await self._control.logs(self._keys, check_job_id(job_id))

    def events(self, since: str | None = None) -> AsyncIterator[Event]:
        """The queue's job lifecycle as it happens, from any process: ``async for event in
        queue.events():``. ``since``: None for new events only, an ``Event.id`` to go on after
        it (a reader that restarts misses nothing still kept), "0" for every event kept (the
        newest ``keep_events``, a manager option)."""
        since = check_since(since)
        return read_events(self._host.connection().client, self._keys, since)

    @_clear_errors
    async def stats(self) -> QueueStats:
        return stats_of(await self._scripts.stats(self._keys))

    @_clear_errors
    async def history(self, minutes: int = 60) -> list[HistoryPoint]:
        """The queue's last ``minutes`` minutes (1 to 120, the current one included), oldest
        first: jobs completed, failed attempts, dead letters, and the median and 99th
        percentile of the wait from enqueue to a job's first start. Kept in Redis per minute
        for two hours; read in one round trip."""
        return await self._inspect.history(self._keys, minutes)

    @_clear_errors
    async def drain(self, timeout: float = 10) -> None:
        """For tests: wait until no job waits, runs, or is delayed or retrying and due, in any
        group (later ones do not count); ``TimeoutError`` names what is left after ``timeout``."""
        await drain_queue(self, timeout, self._host.connection().client)

    @_clear_errors
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Jobs that failed past their retries, oldest failure first."""
        check_count(limit, what="limit")
        rows = await self._scripts.dead_list(self._keys, limit)
        return [dead_letter_of(self._codec, *row) for row in rows]

    @_clear_errors
    async def retry_dead(self, job_id: str | None = None) -> int:
        """Replay one dead job (or all when ``job_id`` is None) with fresh attempts.

        A flow's parent that failed because of a child waits for its children again, and
        those that had not completed are replayed (a dead one from the dead letters, one
        cancelled with it from the data it kept): fix the bug, then replay the parent.

        A dead job whose id a job enqueued since holds, unfinished, stays dead: for one id that
        is a :class:`JobInUse`; replaying all skips it (and logs how many were skipped).
        """
        scripts = self._scripts
        flows = FlowReplay(self._host.connection().flows, self._keys.prefix, self._host.queue)
        if job_id is not None:
            check_job_id(job_id)
            if await flows.parent(self.name, job_id):
                return 1
            revived, in_use, _ = await scripts.revive(
                self._keys, [check_job_id(job_id)], self.retention.events
            )
            if in_use:
                raise JobInUse(job_id, queue=self.name)
            return revived
        return await revive_all(
            scripts,
            self._host.connection().client,
            self._keys,
            self.retention.events,
            lambda parent: flows.parent(self.name, parent),
        )

    @_clear_errors
    async def purge_dead(self) -> int:
        """Drop every dead letter; returns how many there were."""
        return await self._scripts.purge_dead(self._keys)

    @_clear_errors
    async def delete(self, *, force: bool = False) -> int:
        """Delete the queue from Redis: its jobs in every state (waiting, delayed, retrying,
        running, finished, dead letters), its recurring schedules, groups and rate limits, and
        its place in the registry. Returns how many job records were deleted.

        Refuses with :class:`QueueInUse` while a consumer of it is live, in any process, unless
        ``force``: consumers still running then find their group gone and go on with the jobs
        enqueued afterwards. Big queues go in batches, none holding the server for long.
        """
        total = await delete_jobs(self._scripts, self._keys, force=force)
        await self._host.unregister(self.name)
        self._registered = False
        return total

    @_clear_errors
    async def dead_letter(self, job_id: str) -> DeadLetter | None:
        """One dead letter, or None if no dead job has that id."""
        letters = await self._scripts.dead_get(self._keys, check_job_id(job_id))
        return None if letters is None else dead_letter_of(self._codec, *letters)

    @_clear_errors
    async def jobs(
        self, state: ListedState, limit: int = 100, *, fairness_key: str | None = None
    ) -> list[JobSummary]:
        """Jobs in ``state``, at most ``limit`` (up to 1,000): "waiting", "delayed" or
        "retrying" ones in the order they will run (the waiting ones of one ``fairness_key``),
        "active" ones (delivered, unfinished) oldest first, "completed" ones (of those still
        kept) newest first, with their result (their data is not kept). Dead jobs:
        :meth:`dead_letters`."""
        state = check_listed_state(state)
        key = check_fairness_key(fairness_key)
        if key and state != "waiting":
            raise InvalidArgument("fairness_key lists waiting jobs: pass state='waiting'")
        rows = await self._inspect.peek(self._keys, state, check_peek_limit(limit), key)
        return summaries(self._codec, state, rows)

    @_clear_errors
    async def busiest_keys(self, limit: int = 10) -> list[tuple[str, int]]:
        """The fairness keys with the most waiting jobs (up to 1,000), ``(key, jobs)``, most
        first; read in short calls of 2,000 keys each, however many keys wait."""
        return await self._inspect.busiest_keys(self._keys, limit)

    @_clear_errors
    async def groups(self) -> list[GroupInfo]:
        """The consumer groups reading the queue, with their consumers."""
        return await self._inspect.groups(self._keys)

    @_clear_errors
    async def recurring_schedules(self) -> list[RecurringInfo]:
        """The queue's recurring schedules, soonest next run first."""
        return recurring_infos(self, await self._inspect.recurring(self._keys))

"""The public face of a queue: producing, consuming and looking, each method a few lines over
the modules that do the work (``enqueueing.py``, ``schedules.py``, ``replay.py``,
``inspection.py`` ...); the consumer loop lives in ``worker/consumer.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from ..errors import InvalidArgument
from ..job import DeadLetter, Event, HistoryPoint, Job, JobInfo, QueueStats
from ..store.control import ControlScripts
from ..store.keys import QueueKeys, validate_group
from ..store.scripts import Retention, Scripts
from ..store.serialization import Codec
from ..validation import check_count, check_fairness_key, check_handler, check_job_id, check_seconds
from ..worker.backoff import Backoff
from .draining import drain_queue
from .enqueueing import Enqueuer
from .events import check_since, read_events
from .housekeeping import delete_jobs
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
from .registration import Registration
from .replay import retry_dead
from .schedules import recurring_definition, set_schedule
from .waiting import wait_for_job

if TYPE_CHECKING:
    from ..worker.consumer import Consumer
    from .host import QueueHost

__all__ = ("Handler", "Queue")

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
    """A named queue whose jobs carry data of type ``T``: enqueue to it, consume it, look
    into it.

    Get one from :meth:`QueueManager.get_queue` (the same object for the same name) rather
    than building one: the manager passes ``host``, what the queue sees of it (its
    connection, hooks and other queues); ``name``; ``type_``, the type given to
    ``get_queue`` (``Any`` unless given), which checks data as it is enqueued and decoded;
    and ``retention``, how long the queue's finished jobs keep their records and how many of
    the newest do (the manager's ``result_ttl`` and ``keep_finished``, or ``get_queue``'s).
    """

    def __init__(self, host: QueueHost, name: str, type_: Any, retention: Retention) -> None:
        self.name = name
        self.type = type_
        #: How long its finished jobs keep their records, and how many of the newest do.
        self.retention = retention
        self._host = host
        self._keys = QueueKeys(host.prefix, name)
        self._codec: Codec[T] = Codec(name, type_, host.max_payload_bytes, host)
        self._registration = Registration(host, self._keys, type_)
        self._enqueuer = Enqueuer(
            host, self._keys, self._codec, self._registration, retention.events
        )

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
        """Add a job carrying ``data``; returns its id (``job_id`` when given, else a new
        unique one).

        ``data`` must fit the queue's type and encode as MessagePack, else it is an
        :class:`EncodeError` and nothing is written. ``priority``: higher runs first, equal
        ones in enqueue order, also past a backlog of lower ones. ``start_delay``: seconds
        before the job may start (0: at once). While a job with ``job_id`` is unfinished,
        enqueueing the id again changes nothing. ``max_retries`` and ``timeout`` (seconds a
        handler may run) override the consumer's settings for this job; None keeps them.
        Jobs of different ``fairness_key``s start round-robin (priority orders a key's own);
        jobs without one share a key of their own.
        """
        job = await self._enqueuer.prepare(
            data, priority, start_delay, job_id, max_retries, timeout, fairness_key
        )
        await self._enqueuer.send(job)
        return job[0]

    async def payload_for(
        self, data: T, *, priority: int, enqueued_at: float, job_id: str | None = None
    ) -> bytes:
        """The payload :meth:`enqueue` would write for ``data`` (checked against the queue's
        type) at ``priority`` and ``enqueued_at``: how a flow's steps are encoded. With
        ``job_id``, what the hooks carry with that job goes with it."""
        return await self._enqueuer.payload(
            data, priority=priority, enqueued_at=enqueued_at, job_id=job_id
        )

    @_clear_errors
    async def enqueue_many(
        self,
        items: Iterable[T],
        *,
        priority: int = 0,
        start_delay: float = 0,
        fairness_key: str | None = None,
    ) -> list[str]:
        """Add a job for each of ``items`` (its data) in few round trips; returns their new
        ids in order. ``priority``, ``start_delay`` and ``fairness_key`` apply to each, as in
        :meth:`enqueue`.

        Every item is encoded and checked before anything is written. With ``min_replicas``,
        every batch is written even when one is not confirmed; :class:`NotReplicated` then names
        every job that was not.
        """
        return await self._enqueuer.send_many(items, priority, start_delay, fairness_key)

    @_clear_errors
    async def cancel(self, job_id: str) -> bool:
        """Cancel the unfinished job ``job_id``: waiting, delayed, retrying or running (True
        if it was unfinished). It ends "cancelled", is neither retried nor dead-lettered, and
        ``wait_for`` raises :class:`JobCancelled`. A running handler is cancelled wherever it
        runs, within about a network round trip (a plain function, which cannot be
        interrupted, sees ``job.cancelled`` become true). A flow's step takes the steps
        under it along. A finished job is left as it is.
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
        """Request/reply: enqueue a job carrying ``data`` and wait for its result, woken by
        the consumer that finishes it (no polling). Raises like :meth:`wait_for`;
        ``TimeoutError`` after ``timeout`` seconds (the job is not cancelled: it may still
        run). ``priority``, ``start_delay``, ``max_retries`` and ``fairness_key`` are
        :meth:`enqueue`'s, and so is ``job_id`` (held by an unfinished job, it waits for that
        job's result); ``job_timeout`` is the handler's time limit (``enqueue``'s
        ``timeout``)."""
        check_seconds(timeout, what="timeout")
        job = await self._enqueuer.prepare(
            data, priority, start_delay, job_id, max_retries, job_timeout, fairness_key
        )
        return await self._enqueuer.call(job, timeout)

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
        """Run ``data`` every ``interval_seconds``, or on a 5-field ``cron`` (UTC unless ``tz``),
        each run a job of ``priority`` (as in :meth:`enqueue`).

        Idempotent by ``job_id``: the same arguments again change nothing (every instance may
        call this at start-up); different ones replace the schedule. Each occurrence is enqueued
        once however many managers run (its job id is ``f"{job_id}@{due_ms}"``); a run missed
        while no manager was up happens once when one is back. The first run is after
        ``start_delay``. Returns True if the schedule was created or replaced.
        """
        schedule_id = check_job_id(job_id)
        definition = recurring_definition(
            self._codec, data, interval_seconds, cron, tz, start_delay, priority
        )
        await self._registration.ensure()
        return await set_schedule(self._host.connection(), self._keys, schedule_id, definition)

    @_clear_errors
    async def cancel_recurring(self, job_id: str) -> bool:
        """Stop the recurring schedule ``job_id`` (True if there was one). Runs already
        enqueued stay."""
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
        """Start a consumer running ``handler`` on the queue's jobs in the background, and
        return it (stop it with ``await c.stop()``; the manager stops it as it closes).

        ``handler(job)``: an ``async def`` (a plain function runs in a worker thread); its
        return value is the job's result, raising fails the attempt. Consumers sharing
        ``consumer_group`` (default: the queue's name) share the work; every distinct group
        receives every job. ``max_retries``: retries after the first attempt (0: one attempt
        only), then the job goes to the dead letters. ``concurrency``: handlers running at
        once in this consumer. ``timeout``: seconds a handler may run before it is cancelled
        and the attempt fails (None: no limit; a job's own ``timeout`` wins). ``backoff``:
        seconds before a retry, a number or a callable ``(attempt) -> seconds`` (None: 1 s,
        2 s, 4 s ... up to 5 minutes, with jitter). ``visibility_timeout``: seconds after
        which the jobs of a consumer that stopped heart-beating (crashed, killed,
        partitioned) go to another consumer of the group; a live consumer keeps its jobs
        however long they run. ``rate_limit=(max_jobs, per_seconds)``: at most that many job
        starts per period across the group, on every machine.

        ``prefetch``: jobs the consumer reads ahead of a free slot, so the next ones start
        without a round trip (default: as many as ``concurrency`` while handlers run under
        50 ms on average, none while they run longer, so long jobs are shared out evenly
        between consumers); 0 never reads ahead. ``global_concurrency``: at most that many
        handlers of the group run at once across all its consumers on all machines (a dead
        consumer's slots come back after ``visibility_timeout``). ``per_key_concurrency`` and
        ``per_key_rate_limit=(n, seconds)``: per fairness key, across the group, at most that
        many jobs running and that many starts per period (jobs without a key are not
        limited).
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
        await self._registration.ensure()
        return await self._host.start_consumer(self, self._keys, self._codec, handler, options)

    # -- inspecting -----------------------------------------------------------------------

    @_clear_errors
    async def get_job(self, job_id: str, group: str | None = None) -> JobInfo | None:
        """The state of the job ``job_id``, or None if it is unknown (or finished longer than
        result_ttl ago).

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
        """The result of the job ``job_id`` once it completes (in ``group``, for a job that
        goes to several).

        Raises :class:`JobFailed` if it went to the dead letters, :class:`JobNotFound` for an
        unknown job, :class:`TimeoutError` when ``timeout`` seconds pass first (None: no
        limit), and :class:`InvalidArgument` when several groups read the job and none is
        named (each has a result of its own), or the one named does not read it.
        """
        check_job_id(job_id)
        if group is not None:
            validate_group(group)
        notices = await self._host.notices(self._keys)
        return await wait_for_job(self._scripts, self._keys, notices, job_id, timeout, group)

    @_clear_errors
    async def children_results(self, job_id: str) -> dict[str, Any]:
        """The results of the flow step ``job_id``'s children that completed, by child id
        (what its handler reads with ``job.children_results()``); children that failed under
        ``on_child_failure="ignore"`` are left out."""
        return await self._control.children_results(self._keys, check_job_id(job_id))

    @_clear_errors
    async def job_logs(self, job_id: str) -> list[str]:
        """The lines the handler of the job ``job_id`` logged (``job.log``), oldest first: the
        newest 1,000, kept as long as the job's record."""
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
        """The queue's jobs counted by state, the oldest waiting one's age, its groups and
        whether it is paused (:class:`QueueStats`), read in one round trip."""
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
        """Jobs that failed past their retries, oldest failure first, at most ``limit`` of
        them (:meth:`dead_letter` reads one)."""
        check_count(limit, what="limit")
        rows = await self._scripts.dead_list(self._keys, limit)
        return [dead_letter_of(self._codec, *row) for row in rows]

    @_clear_errors
    async def retry_dead(self, job_id: str | None = None) -> int:
        """Replay one dead job (or all when ``job_id`` is None) with fresh attempts; returns
        how many were replayed.

        A flow's parent that failed because of a child waits for its children again, and
        those that had not completed are replayed (a dead one from the dead letters, one
        cancelled with it from the data it kept): fix the bug, then replay the parent.

        A dead job whose id a job enqueued since holds, unfinished, stays dead: for one id that
        is a :class:`JobInUse`; replaying all skips it (and logs how many were skipped).
        """
        connection = self._host.connection()
        events = self.retention.events
        return await retry_dead(connection, self._keys, events, self._host.queue, job_id)

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
        await self._registration.withdraw()
        return total

    @_clear_errors
    async def dead_letter(self, job_id: str) -> DeadLetter | None:
        """The dead letter of the job ``job_id``, or None if no dead job has that id."""
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
        """The ``limit`` fairness keys (up to 1,000) with the most waiting jobs, ``(key,
        jobs)``, most first; read in short calls of 2,000 keys each, however many keys wait."""
        return await self._inspect.busiest_keys(self._keys, limit)

    @_clear_errors
    async def groups(self) -> list[GroupInfo]:
        """The consumer groups reading the queue, with their consumers."""
        return await self._inspect.groups(self._keys)

    @_clear_errors
    async def recurring_schedules(self) -> list[RecurringInfo]:
        """The queue's recurring schedules, soonest next run first."""
        return recurring_infos(self, await self._inspect.recurring(self._keys))

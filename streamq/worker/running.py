"""Running one entry a consumer holds: check and decode it, count its attempt, call the handler,
then queue its completion or record its failure (a retry, or the dead letters); the hooks hear
of each start, success and failure.

The consumer loop (``consumer.py``) reads, holds and acknowledges entries; this is what happens
to each one in between. The runner sees its consumer only through a :class:`ConsumerLink`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec
from redis.exceptions import RedisError

from ..errors import Retry, Unrecoverable
from ..job import Job
from ..ops.hooks import JobEvent, call_hooks
from ..store.scripts import Completion, Failure
from ..store.serialization import (
    DeadRecord,
    Envelope,
    decode_result,
    encode_dead_record,
    in_user_terms,
)
from ..validation import MAX_DELAY_SECONDS
from .backoff import exponential
from .control import JobsOf, RunningJob
from .entries import BadEntry, Held, attempt_of, group_gone, job_id_of
from .invoke import Invoker, traceback_of

if TYPE_CHECKING:
    from ..client.queue import Handler
    from ..store.scripts import Scripts
    from .context import ConsumerContext
    from .options import ConsumerOptions
    from .outage import OutagePolicy

__all__ = ("ConsumerLink", "Runner")

log = logging.getLogger("streamq")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConsumerLink:
    """What a :class:`Runner` needs of the consumer whose entries it runs, and nothing more."""

    #: The consumer's name in its group, and the group.
    name: str
    group: str
    scripts: Scripts
    #: Whether the consumer is stopping (an entry not yet started is then left to it).
    stopping: Callable[[], bool]
    #: Queue this completion for the consumer's next batch of acknowledgements.
    queue_ack: Callable[[Completion], None]
    #: The consumer is done with this held entry (its failure recorded, or left to be reclaimed).
    forget: Callable[[Held], None]
    #: A retry was staged: the scheduler looks again, it may be due soonest.
    retry_staged: Callable[[], None]
    #: The consumer's pauses and log lines after a Redis error.
    outage: OutagePolicy
    #: Under a rate limit, a per-key rate limit or a global concurrency: waits for a start
    #: permit for the entry (given its fairness key, the entry's 'k'), taken right before its
    #: handler starts (a permit taken earlier, while the entry waits for a worker, would let
    #: starts bunch up); False when the consumer stops first. None without any.
    permit: Callable[[bytes, bytes | None], Awaitable[bool]] | None = None
    #: A handler ran for this many seconds (how far ahead the consumer reads follows it).
    ran: Callable[[float], None] = lambda seconds: None
    #: Whether the entry was cancelled before it started (then forgotten: it is acknowledged).
    was_cancelled: Callable[[bytes], bool] = lambda entry_id: False
    #: A start, for the next acknowledgements: with lifecycle events on, a "started" event for
    #: the entry's job (job id, attempt), which ``take_start`` takes back if it is not written
    #: yet; and a first attempt's wait since enqueue (seconds; None for later attempts), for
    #: the queue's history.
    note_start: Callable[[bytes, str, int, float | None], None] = lambda e, j, a, w: None
    take_start: Callable[[bytes], bool] = lambda entry_id: False


class Runner(Generic[T]):
    """Runs the entries of the consumer behind ``link`` (one call of :meth:`process` each)."""

    def __init__(
        self,
        link: ConsumerLink,
        context: ConsumerContext[T],
        handler: Handler[T],
        options: ConsumerOptions,
    ) -> None:
        self._link = link
        self._queue = context.queue
        self._manager = context.manager
        self._options = options
        self._invoker = Invoker(handler, options.concurrency, link.stopping)
        #: Jobs that died with their consumer more than once run one at a time.
        self._repeats = anyio.Lock()
        self._codec = context.codec
        self._keys = context.keys
        self._retention = context.retention
        self._hooks = context.hooks
        self._control = context.control
        self._jobs = JobsOf(
            context.control,
            context.keys,
            link.group,
            events=context.retention.events,
            take_start=link.take_start,
        )
        self._group_bytes = link.group.encode()

    async def process(self, held: Held, worker: anyio.CancelScope) -> None:
        """Run ``held``. ``worker``: the calling worker's cancel scope, which a cancel of the
        job cancels while its handler runs (the worker then takes a new one)."""
        fields = held.fields
        target = fields.get(b"g")
        if target is not None and target != self._group_bytes:
            # A retry another group scheduled for itself: acknowledge it here without running.
            held.finishing = True
            self._link.queue_ack(Completion(held.entry_id, "", 0, b""))
            return
        payload = fields.get(b"p", b"")
        job_id = f"entry-{held.entry_id.decode()}"
        try:
            # Entries may have been written by anything: each field is checked before use, and
            # the payload's size before it is decoded.
            job_id = job_id_of(fields.get(b"j"))
            base_attempt = attempt_of(fields.get(b"a"))
            if b"p" not in fields:
                raise BadEntry("the entry has no payload (field 'p')")
            limit = self._codec.max_payload_bytes
            if len(payload) > limit:
                raise BadEntry(
                    f"its payload is {len(payload):,} bytes, over max_payload_bytes ({limit:,});"
                    " not decoded"
                )
            envelope = self._codec.decode(payload)
        except BadEntry as exc:
            await self._fail(
                held, job_id, 1, f"bad entry {held.entry_id.decode()}: {exc}", payload, retry=False
            )
            return
        except msgspec.DecodeError as exc:
            error = (
                f"undecodable entry {held.entry_id.decode()}: {type(exc).__name__}:"
                f" {in_user_terms(exc)}"
            )
            await self._fail(held, job_id, 1, error, payload, retry=False)
            return
        permit = self._link.permit
        if permit is not None and not await permit(held.entry_id, fields.get(b"k")):
            return  # stopping: never started, handed back to the group by the consumer

        max_retries = self._options.max_retries
        if envelope.max_retries is not None:
            max_retries = envelope.max_retries
        if held.delivery_count == 1:
            # A retry goes on from its last attempt's checkpoint; a fresh job has none.
            resume = None if base_attempt == 1 else await self._checkpoint_of(job_id)
            await self._run(
                held, worker, job_id, base_attempt, max_retries, envelope, payload, resume
            )
            return
        # It came back from a consumer that died. A job that died with its consumer before
        # waits for its turn: it may be what killed it, and what runs beside it would die too.
        rerun = await self._rerun_attempt(held, job_id, base_attempt, first=True)
        if rerun is None:
            return  # cancelled meanwhile: acknowledged, not run
        attempt, repeat, resume = rerun
        if repeat and attempt <= max_retries + 1:
            async with self._repeats:
                if self._link.stopping():
                    return  # never started: handed back to the group by the consumer
                rerun = await self._rerun_attempt(held, job_id, base_attempt, first=False)
                if rerun is None:
                    return
                attempt, _, resume = rerun
                if attempt <= max_retries + 1:
                    await self._run(
                        held, worker, job_id, attempt, max_retries, envelope, payload, resume
                    )
                    return
        elif attempt <= max_retries + 1:
            await self._run(held, worker, job_id, attempt, max_retries, envelope, payload, resume)
            return
        error = (
            f"delivered {held.delivery_count} times without finishing: the consumer running it"
            f" died each time it started ({attempt - 1} times, max_retries={max_retries})"
        )
        await self._fail(
            held,
            job_id,
            attempt - 1,
            error,
            payload,
            retry=False,
            max_retries=max_retries,
            enqueued_at=envelope.enqueued_at,
            carried=envelope.meta,
        )

    async def _rerun_attempt(
        self, held: Held, job_id: str, base_attempt: int, *, first: bool
    ) -> tuple[int, bool, bytes | None] | None:
        """The attempt a redelivered entry's run is, counted by its starts (recorded in Redis
        before each run after the first), not its deliveries: a delivery that never started
        (read ahead, or waiting for its turn, when the consumer died) is no attempt. Counts
        the start about to happen, unless ``first`` and the job is a repeat (it already died in
        a counted run): then also True, and it is counted once it is its turn. Also the
        job's checkpoint. None for a job cancelled meanwhile (acknowledged here)."""
        link = self._link
        checkpoint = None
        try:
            before, checkpoint = await link.scripts.rerun(
                self._keys, link.group, held.entry_id, job_id, count_repeat=not first
            )
        except (RedisError, OSError) as exc:
            before = -1
            log.warning(
                "consumer %s: could not count the starts of job %s (%s); counting its deliveries",
                link.name,
                job_id,
                exc,
            )
        if before == -2:
            self._acknowledge_cancelled(held, job_id, base_attempt, None)
            return None
        if before < 0:  # no record to count in: deliveries bound the starts
            return base_attempt + held.delivery_count - 1, held.delivery_count > 2, checkpoint
        if before == 0 or not first:
            held.counted = job_id  # the script counted the start about to happen
        return base_attempt + 1 + before, before > 0, checkpoint

    async def _checkpoint_of(self, job_id: str) -> bytes | None:
        """The checkpoint a retried job's last attempt saved; None when Redis cannot say (the
        attempt then starts from the beginning, as a fresh one would)."""
        try:
            return await self._control.checkpoint_of(self._keys, job_id, self._link.group)
        except (RedisError, OSError) as exc:
            log.warning(
                "consumer %s: could not read the checkpoint of job %s (%s); it starts afresh",
                self._link.name,
                job_id,
                exc,
            )
            return None

    def _acknowledge_cancelled(
        self,
        held: Held,
        job_id: str,
        attempt: int,
        duration: float | None,
        carried: Mapping[str, str] | None = None,
    ) -> None:
        """The job was cancelled (its record says so already): acknowledge the entry only."""
        self._link.take_start(held.entry_id)  # cancelled first: no start after it
        held.finishing = True
        self._link.queue_ack(Completion(held.entry_id, "", 0, b""))
        log.info(
            "job %r of queue %r was cancelled%s",
            job_id,
            self._queue.name,
            "" if duration is None else f" after running {duration:.3f}s",
        )
        if hooks := self._hooks():
            event = self._event(job_id, attempt, 0, 0.0, duration=duration, carried=carried)
            call_hooks(hooks, "on_cancel", event)

    async def _run(
        self,
        held: Held,
        worker: anyio.CancelScope,
        job_id: str,
        attempt: int,
        max_retries: int,
        envelope: Envelope[T],
        payload: bytes,
        resume: bytes | None = None,
    ) -> None:
        carried = envelope.meta
        if self._link.was_cancelled(held.entry_id):
            self._acknowledge_cancelled(held, job_id, attempt, None, carried)
            return
        control = RunningJob(self._jobs, job_id, attempt, held.entry_id)
        waited = time.time() - envelope.enqueued_at if attempt == 1 else None
        self._link.note_start(held.entry_id, job_id, attempt, waited)
        job = Job(
            id=job_id,
            data=envelope.data,
            queue=self._queue.name,
            attempt=attempt,
            max_retries=max_retries,
            priority=envelope.priority,
            enqueued_at=envelope.enqueued_at,
            manager=self._manager,
            resume_from=None if resume is None else self._resume_from(job_id, resume),
            _control=control,
        )
        timeout = envelope.timeout if envelope.timeout is not None else self._options.timeout
        if hooks := self._hooks():
            event = self._event(job_id, attempt, max_retries, job.enqueued_at, carried=carried)
            call_hooks(hooks, "on_start", event)
        started = time.perf_counter()
        held.control = control
        control.run_in(worker)
        try:
            outcome = await self._invoker.run(job, timeout)
        except anyio.get_cancelled_exc_class():
            if control.cancelled:  # its worker's scope ends this (and takes a new one)
                ran = time.perf_counter() - started
                self._acknowledge_cancelled(held, job_id, attempt, ran, carried)
            raise
        finally:
            held.control = None
        self._link.ran(time.perf_counter() - started)
        if control.cancelled:
            ran = time.perf_counter() - started
            self._acknowledge_cancelled(held, job_id, attempt, ran, carried)
            return
        if outcome.error is not None:
            await self._fail(
                held,
                job_id,
                attempt,
                outcome.error,
                payload,
                retry=attempt <= max_retries,
                max_retries=max_retries,
                enqueued_at=job.enqueued_at,
                duration=time.perf_counter() - started,
                raised=outcome.exception,
                carried=carried,
            )
            return
        held.finishing = True
        self._link.queue_ack(Completion(held.entry_id, job_id, attempt, outcome.result))
        if hooks := self._hooks():
            event = self._event(
                job_id,
                attempt,
                max_retries,
                job.enqueued_at,
                duration=time.perf_counter() - started,
                carried=carried,
            )
            call_hooks(hooks, "on_success", event)

    def _resume_from(self, job_id: str, checkpoint: bytes) -> Any:
        try:
            return decode_result(checkpoint)
        except msgspec.DecodeError as exc:
            log.error("job %r: its checkpoint cannot be decoded (%s); ignored", job_id, exc)
            return None

    def _event(
        self,
        job_id: str,
        attempt: int,
        max_retries: int,
        enqueued_at: float,
        *,
        duration: float | None = None,
        error: str | None = None,
        retry_in: float | None = None,
        exception: BaseException | None = None,
        carried: Mapping[str, str] | None = None,
    ) -> JobEvent:
        link = self._link
        return JobEvent(
            queue=self._queue.name,
            group=link.group,
            consumer=link.name,
            job_id=job_id,
            attempt=attempt,
            max_retries=max_retries,
            enqueued_at=enqueued_at,
            duration=duration,
            error=error,
            retry_in=retry_in,
            exception=exception,
            carried=carried,
        )

    async def _fail(
        self,
        held: Held,
        job_id: str,
        attempt: int,
        error: str,
        payload: bytes,
        retry: bool,
        *,
        max_retries: int | None = None,
        enqueued_at: float = 0.0,
        duration: float | None = None,
        raised: BaseException | None = None,
        carried: Mapping[str, str] | None = None,
    ) -> None:
        link = self._link
        held.finishing = True
        retry_in = None
        if isinstance(raised, Retry) and raised.delay is not None and retry:
            retry_in = raised.delay
        elif retry and not isinstance(raised, Unrecoverable):
            retry_in = self._backoff(attempt)
        failed_at = time.time()
        # Only a job that goes to the dead letters keeps the traceback: formatting it costs.
        trace = traceback_of(raised) if retry_in is None else ""
        record = encode_dead_record(DeadRecord(job_id, error, attempt, failed_at, trace))
        failure = Failure(
            held.entry_id,
            job_id,
            attempt,
            error,
            retry_in,
            payload,
            record,
            failed_at,
            unwritten_start=link.take_start(held.entry_id),
        )
        context = {
            "queue": self._queue.name,
            "group": link.group,
            "job_id": job_id,
            "attempt": attempt,
            "error": error,
            "retry_in": retry_in,
        }
        if retry_in is None:
            log.error(
                "job %r of queue %r failed for good on attempt %d, dead-lettered: %s",
                job_id,
                self._queue.name,
                attempt,
                error,
                extra=context,
            )
        else:
            log.warning(
                "job %r of queue %r failed on attempt %d, retrying in %.2fs: %s",
                job_id,
                self._queue.name,
                attempt,
                retry_in,
                error,
                extra=context,
            )
        if hooks := self._hooks():
            max_retries = self._options.max_retries if max_retries is None else max_retries
            event = self._event(
                job_id,
                attempt,
                max_retries,
                enqueued_at,
                duration=duration,
                error=error,
                retry_in=retry_in,
                exception=raised,
                carried=carried,
            )
            call_hooks(hooks, "on_failure", event)
        errors = 0
        while True:
            try:
                await link.scripts.fail(self._keys, self._retention, link.group, link.name, failure)
                break
            except (RedisError, OSError) as exc:
                # Not when the group is gone: what it owed (this entry) went with it.
                if not group_gone(exc) and link.outage.another_try(exc, errors):
                    errors = await link.outage.pause(exc, errors, "record a failure")
                    continue
                # Left pending (if the group still exists): reclaimed after the timeout.
                log.error(
                    "consumer %s: could not record the failure of job %r: %s",
                    link.name,
                    job_id,
                    exc,
                )
                break
        link.forget(held)
        if retry_in is not None:
            link.retry_staged()

    def _backoff(self, attempt: int) -> float:
        """The user's backoff, at most :data:`MAX_DELAY_SECONDS` (a longer one would not fit
        a due time); the default when it fails or returns what is not seconds >= 0."""
        try:
            delay = float(self._options.backoff(attempt))
            if not math.isfinite(delay) or delay < 0:
                raise ValueError(f"returned {delay!r}, not seconds >= 0")
        except Exception as exc:
            log.error(
                "consumer %s: the backoff callable failed (%s); using the default",
                self._link.name,
                exc,
            )
            return exponential(attempt)
        return min(delay, MAX_DELAY_SECONDS)

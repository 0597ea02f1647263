"""Hooks: code of yours that streamq calls as jobs are enqueued, start, finish and are reclaimed.

For tracing and metrics without a dependency on any tracing library: subclass :class:`Hooks`,
override the methods you need, and attach an instance with ``QueueManager(..., hooks=[...])``
or ``qm.add_hooks(hook)``. ``streamq.ops.metrics.PrometheusMetrics`` is one.

The methods are plain functions called inline, in the task doing the work (``on_start``,
``on_success`` and ``on_failure`` in the task that runs the handler, so a context variable set in
``on_start`` is seen by the handler): keep them cheap and never block in them. An exception a
hook raises is logged (once per hook and method) and otherwise ignored: it never fails an
enqueue nor disturbs a consumer. With no hook attached, nothing is built or called.

A hook may also :meth:`Hooks.carry` a few strings with each job it sees enqueued (a trace
context): they are stored in the job and come back as ``event.carried`` wherever it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

__all__ = (
    "EnqueueEvent",
    "Hooks",
    "JobEvent",
    "ReclaimEvent",
    "SettleEvent",
    "call_hooks",
    "carried_by",
    "check_hooks",
    "tell_enqueued",
)

log = logging.getLogger("streamq.hooks")

#: The methods of :class:`Hooks`.
HookMethod = Literal[
    "on_enqueue", "on_start", "on_success", "on_failure", "on_cancel", "on_reclaim", "on_settle"
]


class EnqueueEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A job was enqueued (``Queue.enqueue`` or ``Queue.enqueue_many``) and Redis has it."""

    queue: str
    """The queue's name."""
    job_id: str
    """The job's id (given or generated)."""
    priority: int
    """The priority it was enqueued with."""
    delay: float
    """Seconds before the job may start (``start_delay``)."""
    enqueued_at: float
    """Unix seconds of the enqueue (``Job.enqueued_at``)."""
    duplicate: bool = False
    """True when an unfinished job already had this id: nothing was added (deduplication)."""


class JobEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt of a job in a consumer: it starts, succeeds or fails."""

    queue: str
    """The queue's name."""
    group: str
    """The consumer group the attempt runs in."""
    consumer: str
    """The consumer's name in the group (``Consumer.name``)."""
    job_id: str
    """The job's id."""
    attempt: int
    """1 on the first attempt."""
    max_retries: int
    """The job's ``max_retries`` (``Job.max_retries``): attempt ``max_retries + 1`` is its last."""
    enqueued_at: float
    """Unix seconds of the enqueue (0.0 for an entry that could not be decoded)."""
    duration: float | None = None
    """Seconds the handler ran (``on_success``, ``on_failure``); None when it never ran (at
    ``on_start``, and for an entry dead-lettered without a run: undecodable, or one whose
    consumers kept dying)."""
    error: str | None = None
    """``on_failure``: why the attempt failed."""
    retry_in: float | None = None
    """``on_failure``: seconds before the retry, or None when the job went to the dead letters."""
    exception: BaseException | None = None
    """``on_failure``: what the handler raised, when it raised (not for a timeout or a bad
    entry)."""
    carried: Mapping[str, str] | None = None
    """What the hooks' :meth:`Hooks.carry` stored with the job at its enqueue (None: nothing)."""

    @property
    def dead_lettered(self) -> bool:
        """``on_failure``: no retry is left, the job is in the dead letters."""
        return self.error is not None and self.retry_in is None


class ReclaimEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A consumer took over a job whose consumer stopped heart-beating (crashed, killed,
    partitioned) for the visibility timeout, or handed it back as it stopped."""

    queue: str
    """The queue's name."""
    group: str
    """The consumer group the job was reclaimed in."""
    consumer: str
    """The consumer that took it over."""
    job_id: str
    """The job's id."""
    entry_id: str
    """The stream entry's id."""
    delivery: int
    """Times the entry has now been delivered (2 on its first reclaim)."""
    handed_back: bool = False
    """Its consumer handed it back as it stopped (a graceful stop past its grace), rather than
    going silent."""


class SettleEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Completions a consumer wrote to Redis in one call (acknowledgements coalesce: one call
    carries every completion that queued while the previous one was on its way)."""

    queue: str
    """The queue's name."""
    group: str
    """The consumer group the jobs completed in."""
    consumer: str
    """The consumer that wrote them (``Consumer.name``)."""
    job_ids: tuple[str, ...]
    """The jobs whose completion the call recorded, in the order they completed (a job whose
    entry another consumer had reclaimed meanwhile is left out: the new owner's run counts)."""
    duration: float
    """Seconds the call took (Redis' round trip included)."""


class Hooks:
    """Override what you need; every method does nothing by default."""

    def carry(self, queue: str, job_id: str) -> Mapping[str, str] | None:
        """Strings to store with a job about to be encoded by ``enqueue``, ``enqueue_many`` or
        ``call`` (in the producer's task, before Redis has it): a trace context, say. The
        consumer's events of the job then have them as ``carried``. Keep them small; a job
        carrying nothing costs nothing. Called only on hooks that override it; its
        ``on_enqueue`` follows once Redis has the job (not after a failed enqueue). ``queue``
        and ``job_id`` name the job."""
        return None

    def on_enqueue(self, event: EnqueueEvent) -> None:
        """After Redis accepted an enqueue (in the producer's task); ``event`` names the job and
        how it was enqueued."""

    def on_start(self, event: JobEvent) -> None:
        """Just before the handler runs (in the task that runs it); ``event`` is the attempt."""

    def on_success(self, event: JobEvent) -> None:
        """The handler returned; its completion is on its way to Redis. ``event`` is the
        attempt, with its ``duration``."""

    def on_settle(self, event: SettleEvent) -> None:
        """Redis recorded completions: ``event`` names the jobs of one call of the finishing
        script (in the consumer's task that writes them, after their ``on_success``)."""

    def on_failure(self, event: JobEvent) -> None:
        """The attempt failed: ``event`` says why (``error``, ``exception``) and, in
        ``retry_in``, when it runs again, if it does."""

    def on_cancel(self, event: JobEvent) -> None:
        """The job was cancelled (``Queue.cancel``) while this consumer held it: its handler
        was stopped, or never started (``event``'s ``duration`` None)."""

    def on_reclaim(self, event: ReclaimEvent) -> None:
        """Taken over from a consumer that stopped heart-beating; it runs here next. ``event``
        names the job and the consumer that took it."""


def check_hooks(hooks: Iterable[Hooks]) -> tuple[Hooks, ...]:
    checked = tuple(hooks)
    for hook in checked:
        if not isinstance(hook, Hooks):
            from ..errors import InvalidArgument

            raise InvalidArgument(
                f"hooks must be streamq.Hooks instances (subclass it), got {hook!r}"
            )
    return checked


def call_hooks(
    hooks: tuple[Hooks, ...],
    method: HookMethod,
    event: EnqueueEvent | JobEvent | ReclaimEvent | SettleEvent,
) -> None:
    """``hook.<method>(event)`` for each hook; an exception is logged once and swallowed."""
    for hook in hooks:
        try:
            getattr(hook, method)(event)
        except Exception:
            _report(hook, method)


def tell_enqueued(
    hooks: tuple[Hooks, ...],
    queue: str,
    job_id: str,
    priority: int,
    delay_ms: int,
    enqueued_at: float,
    added: bool,
) -> None:
    """``on_enqueue`` for a job Redis has (``added``) or already had (a duplicate)."""
    event = EnqueueEvent(
        queue=queue,
        job_id=job_id,
        priority=priority,
        delay=delay_ms / 1000,
        enqueued_at=enqueued_at,
        duplicate=not added,
    )
    call_hooks(hooks, "on_enqueue", event)


def _report(hook: Hooks, method: str) -> None:
    # The methods whose failure was logged, kept on the hook itself (by the time it is gone,
    # an id could belong to another).
    reported: set[str] = vars(hook).setdefault("_streamq_reported_errors", set())
    if method in reported:
        log.debug("hook %r raised in %s again", hook, method, exc_info=True)
        return
    reported.add(method)
    log.exception(
        "hook %r raised in %s (ignored; further errors of it are logged at debug level)",
        hook,
        method,
    )


def carried_by(hooks: tuple[Hooks, ...], queue: str, job_id: str) -> dict[str, str] | None:
    """What the hooks that override :meth:`Hooks.carry` carry with a job, merged (None when
    nothing). An exception is logged once per hook and swallowed, as in :func:`call_hooks`."""
    merged: dict[str, str] | None = None
    for hook in hooks:
        if type(hook).carry is Hooks.carry:
            continue  # not overridden: nothing to call
        try:
            strings = hook.carry(queue, job_id)
        except Exception:
            _report(hook, "carry")
            continue
        if strings:
            merged = dict(strings) if merged is None else {**merged, **strings}
    return merged

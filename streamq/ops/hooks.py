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
    "call_hooks",
    "carried_by",
    "check_hooks",
)

log = logging.getLogger("streamq.hooks")

#: The methods of :class:`Hooks`.
HookMethod = Literal[
    "on_enqueue", "on_start", "on_success", "on_failure", "on_cancel", "on_reclaim"
]


class EnqueueEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A job was enqueued (``Queue.enqueue`` or ``Queue.enqueue_many``) and Redis has it."""

    queue: str
    job_id: str
    priority: int
    #: Seconds before the job may start (``start_delay``).
    delay: float
    #: Unix seconds of the enqueue (``Job.enqueued_at``).
    enqueued_at: float
    #: True when an unfinished job already had this id: nothing was added (deduplication).
    duplicate: bool = False


class JobEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt of a job in a consumer: it starts, succeeds or fails."""

    queue: str
    group: str
    #: The consumer's name in the group (``Consumer.name``).
    consumer: str
    job_id: str
    #: 1 on the first attempt.
    attempt: int
    max_retries: int
    #: Unix seconds of the enqueue (0.0 for an entry that could not be decoded).
    enqueued_at: float
    #: Seconds the handler ran (``on_success``, ``on_failure``); None when it never ran (at
    #: ``on_start``, and for an entry dead-lettered without a run: undecodable, or one whose
    #: consumers kept dying).
    duration: float | None = None
    #: ``on_failure``: why the attempt failed.
    error: str | None = None
    #: ``on_failure``: seconds before the retry, or None when the job went to the dead letters.
    retry_in: float | None = None
    #: ``on_failure``: what the handler raised, when it raised (not for a timeout or a bad entry).
    exception: BaseException | None = None
    #: What the hooks' :meth:`Hooks.carry` stored with the job at its enqueue (None: nothing).
    carried: Mapping[str, str] | None = None

    @property
    def dead_lettered(self) -> bool:
        """``on_failure``: no retry is left, the job is in the dead letters."""
        return self.error is not None and self.retry_in is None


class ReclaimEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A consumer took over a job whose consumer stopped heart-beating (crashed, killed,
    partitioned) for the visibility timeout, or handed it back as it stopped."""

    queue: str
    group: str
    #: The consumer that took it over.
    consumer: str
    job_id: str
    #: The stream entry's id.
    entry_id: str
    #: Times the entry has now been delivered (2 on its first reclaim).
    delivery: int
    #: Its consumer handed it back as it stopped (a graceful stop past its grace), rather than
    #: going silent.
    handed_back: bool = False


class Hooks:
    """Override what you need; every method does nothing by default."""

    def carry(self, queue: str, job_id: str) -> Mapping[str, str] | None:
        """Strings to store with a job about to be encoded by ``enqueue``, ``enqueue_many`` or
        ``call`` (in the producer's task, before Redis has it): a trace context, say. The
        consumer's events of the job then have them as ``carried``. Keep them small; a job
        carrying nothing costs nothing. Called only on hooks that override it; its
        ``on_enqueue`` follows once Redis has the job (not after a failed enqueue)."""
        return None

    def on_enqueue(self, event: EnqueueEvent) -> None:
        """After Redis accepted an enqueue (in the producer's task)."""

    def on_start(self, event: JobEvent) -> None:
        """Just before the handler runs (in the task that runs it)."""

    def on_success(self, event: JobEvent) -> None:
        """The handler returned; its completion is on its way to Redis."""

    def on_failure(self, event: JobEvent) -> None:
        """The attempt failed: ``event.retry_in`` says when it runs again, if it does."""

    def on_cancel(self, event: JobEvent) -> None:
        """The job was cancelled (``Queue.cancel``) while this consumer held it: its handler
        was stopped, or never started (``duration`` None)."""

    def on_reclaim(self, event: ReclaimEvent) -> None:
        """Taken over from a consumer that stopped heart-beating; it runs here next."""


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
    event: EnqueueEvent | JobEvent | ReclaimEvent,
) -> None:
    """``hook.<method>(event)`` for each hook; an exception is logged once and swallowed."""
    for hook in hooks:
        try:
            getattr(hook, method)(event)
        except Exception:
            _report(hook, method)


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

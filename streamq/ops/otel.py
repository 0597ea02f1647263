"""OpenTelemetry tracing and metrics (``streamq[otel]``): a :class:`~streamq.Hooks` following
OpenTelemetry's messaging semantic conventions.

::

    tracing = OpenTelemetryHooks()                  # the global tracer and meter providers
    async with QueueManager(url, hooks=[tracing]) as qm: ...

An enqueue (``enqueue``, ``enqueue_many``, ``call``) is a PRODUCER span ``send <queue>``, in
the enqueuing code's trace; its context is stored in the job (W3C ``traceparent``, through the
globally configured propagator) and each attempt in a consumer is a CONSUMER span ``process
<queue>`` whose parent is that context, also linked: one trace holds the enqueue and every
attempt, retries included, and the handler's own spans nest under its attempt's span (it is
the current span while the handler runs). Writing completions is a CLIENT span ``ack <queue>``
(operation type ``settle``) per call of the finishing script: acknowledgements coalesce, so one
span settles a batch (``messaging.batch.message_count``) and links each job's process span; a
call for one job is also its process span's child. Metrics: ``messaging.process.duration``
(seconds, a histogram) and ``streamq.job.outcomes`` (a counter by ``streamq.job.outcome``).

A flow (``enqueue_flow``) is a ``send`` span per step, all in the enqueuing code's trace, so
each step's attempts join that trace too. Only a producer and consumers with these hooks
attached carry and read the context; jobs from a producer without them run in traces of their
own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import Token
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from .hooks import EnqueueEvent, Hooks, JobEvent, SettleEvent

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = ("SYSTEM", "OpenTelemetryHooks")

#: ``messaging.system``: not a value the conventions list, as none fits a queue on streams.
SYSTEM = "streamq"
K = TypeVar("K")
V = TypeVar("V")

#: Sends whose enqueue never confirmed (it raised) are forgotten past this many, oldest first.
MAX_PENDING_SENDS = 10_000
#: Completed attempts whose acknowledgement is not written yet (a consumer that stopped before
#: writing them) are forgotten past this many, oldest first.
MAX_PENDING_SETTLES = 10_000


class OpenTelemetryHooks(Hooks):
    """Spans and metrics of the jobs of every manager it is attached to.

    ``tracer_provider``: the OpenTelemetry ``TracerProvider`` that makes the spans, and
    ``meter_provider``: the ``MeterProvider`` that makes the metrics; None (the default)
    uses the globally configured one.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer("streamq", tracer_provider=tracer_provider)
        meter = metrics.get_meter("streamq", meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "messaging.process.duration", unit="s", description="Duration of processing a job"
        )
        self._outcomes = meter.create_counter(
            "streamq.job.outcomes",
            unit="{job}",
            description="Attempts by outcome: success, retry, dead_letter, cancelled",
        )
        #: Send spans from ``carry`` until their ``on_enqueue``, by (queue, job id).
        self._sending: dict[tuple[str, str], trace.Span] = {}
        #: Process spans and the context tokens making them current, by (queue, group, job id).
        self._running: dict[tuple[str, str, str], tuple[trace.Span, Token[Context]]] = {}
        #: Successful process spans until their acknowledgement is written, by (queue, group,
        #: job id): the ``ack`` span links them.
        self._settling: dict[tuple[str, str, str], SpanContext] = {}

    def carry(self, queue: str, job_id: str) -> Mapping[str, str] | None:
        span = self._tracer.start_span(
            f"send {queue}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": queue,
                "messaging.message.id": job_id,
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        # Past the bound, the oldest send's enqueue raised: never ended, never exported.
        _remember(self._sending, (queue, job_id), span, MAX_PENDING_SENDS)
        return carrier or None

    def on_enqueue(self, event: EnqueueEvent) -> None:
        span = self._sending.pop((event.queue, event.job_id), None)
        if span is not None:
            if event.duplicate:
                span.set_attribute("streamq.job.duplicate", True)
            span.end()

    def on_start(self, event: JobEvent) -> None:
        attributes: dict[str, AttributeValue] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": event.queue,
            "messaging.consumer.group.name": event.group,
            "messaging.client.id": event.consumer,
            "messaging.message.id": event.job_id,
            "streamq.job.attempt": event.attempt,
        }
        # The creation context as parent (one message per process span: the conventions allow
        # it, and it keeps a job's attempts in its producer's trace) and as the link they ask for.
        parent = Context()  # a root span when nothing was carried
        links: list[Link] = []
        if event.carried:
            parent = propagate.extract(event.carried, context=parent)
            sent = trace.get_current_span(parent).get_span_context()
            if sent.is_valid:
                links.append(Link(sent))
        span = self._tracer.start_span(
            f"process {event.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )
        # Current while the handler runs: on_start is called in its task.
        token = otel_context.attach(trace.set_span_in_context(span))
        self._running[event.queue, event.group, event.job_id] = (span, token)

    def on_success(self, event: JobEvent) -> None:
        self._finish(event, "success")

    def on_failure(self, event: JobEvent) -> None:
        self._finish(event, "dead_letter" if event.retry_in is None else "retry")

    def on_cancel(self, event: JobEvent) -> None:
        self._finish(event, "cancelled")

    def _finish(self, event: JobEvent, outcome: str) -> None:
        attributes: dict[str, AttributeValue] = {
            "messaging.system": SYSTEM,
            "messaging.operation.name": "process",
            "messaging.destination.name": event.queue,
            "messaging.consumer.group.name": event.group,
        }
        error_type = None
        if event.error is not None:
            raised = event.exception
            error_type = "_OTHER" if raised is None else type(raised).__qualname__
            attributes["error.type"] = error_type
        if event.duration is not None:
            self._duration.record(event.duration, attributes)
        self._outcomes.add(1, {**attributes, "streamq.job.outcome": outcome})
        running = self._running.pop((event.queue, event.group, event.job_id), None)
        if running is None:
            return  # never started here (a bad entry, a cancel before its start)
        span, token = running
        span.set_attribute("streamq.job.outcome", outcome)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            if event.exception is not None:
                span.record_exception(event.exception)
            else:
                span.add_event("exception", {"exception.message": event.error or ""})
            span.set_status(Status(StatusCode.ERROR, event.error))
        if event.retry_in is not None:
            span.set_attribute("streamq.job.retry_in", event.retry_in)
        span.end()
        otel_context.detach(token)
        if outcome == "success":
            key = (event.queue, event.group, event.job_id)
            _remember(self._settling, key, span.get_span_context(), MAX_PENDING_SETTLES)

    def on_settle(self, event: SettleEvent) -> None:
        # One CLIENT span per call that wrote completions (acknowledgements coalesce), linking
        # each job's process span; a call for one job is also that span's child.
        end = time.time_ns()
        settling = self._settling
        links = [
            Link(context)
            for job_id in event.job_ids
            if (context := settling.pop((event.queue, event.group, job_id), None)) is not None
        ]
        parent = Context()
        attributes: dict[str, AttributeValue] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "settle",
            "messaging.operation.name": "ack",
            "messaging.destination.name": event.queue,
            "messaging.consumer.group.name": event.group,
            "messaging.client.id": event.consumer,
        }
        if len(event.job_ids) == 1:
            attributes["messaging.message.id"] = event.job_ids[0]
            if links:
                parent = trace.set_span_in_context(NonRecordingSpan(links[0].context), parent)
        else:
            attributes["messaging.batch.message_count"] = len(event.job_ids)
        span = self._tracer.start_span(
            f"ack {event.queue}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=links,
            start_time=end - round(event.duration * 1e9),
        )
        span.end(end_time=end)


def _remember(pending: dict[K, V], key: K, value: V, most: int) -> None:
    """``pending[key] = value``, forgetting the oldest entry past ``most`` (its end never came:
    the dict stays bounded)."""
    if len(pending) >= most:
        del pending[next(iter(pending))]
    pending[key] = value

"""A consumer process with OpenTelemetry tracing, for the test that follows a trace across
processes.

    python tests/tools/otel_worker.py URL QUEUE COUNT

It runs QUEUE's jobs (each handler opens a span ``handle``) with an in-memory span exporter
until COUNT process spans have ended, then prints every finished span as one JSON line
(trace_id, span_id, parent, name, kind, attributes; ids in hex) and exits.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import streamq
from streamq.ops.otel import OpenTelemetryHooks


class Counting(SpanProcessor):
    """Sets ``done`` once ``count`` process spans have ended."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = anyio.Event()

    def on_end(self, span: ReadableSpan) -> None:
        if span.name.startswith("process "):
            self.left -= 1
            if self.left <= 0:
                self.done.set()


async def main(url: str, queue_name: str, count: int) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    counting = Counting(count)
    provider.add_span_processor(counting)
    tracer = provider.get_tracer("otel_worker")

    async def handle(job: streamq.Job[Any]) -> Any:
        with tracer.start_as_current_span("handle"):
            return job.data

    async with streamq.QueueManager(url, hooks=[OpenTelemetryHooks(provider)]) as qm:
        await qm.get_queue(queue_name).consume(handle)
        await counting.done.wait()  # the test's timeout bounds this
    spans = []
    for span in exporter.get_finished_spans():
        context = span.get_span_context()
        assert context is not None
        spans.append(
            {
                "trace_id": f"{context.trace_id:032x}",
                "span_id": f"{context.span_id:016x}",
                "parent": None if span.parent is None else f"{span.parent.span_id:016x}",
                "name": span.name,
                "kind": span.kind.name,
                "attributes": dict(span.attributes or {}),
            }
        )
    print(json.dumps(spans), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))

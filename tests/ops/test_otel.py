"""OpenTelemetry hooks with the real SDK: producer and consumer spans share a trace, within a
process and across two; retries stay in it; handlers' spans nest; metrics are recorded; and
streamq works without opentelemetry installed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import streamq
from streamq.ops.otel import OpenTelemetryHooks

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

OTEL_WORKER = Path(__file__).parent.parent / "tools" / "otel_worker.py"


class Tracing:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.hooks = OpenTelemetryHooks(self.provider, MeterProvider(metric_readers=[self.reader]))

    def spans(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            metric.name: list(metric.data.data_points)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    tracing = Tracing()
    yield tracing
    tracing.provider.shutdown()


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


async def test_enqueue_and_attempts_are_one_trace(
    qm: streamq.QueueManager, queue_name: str, tracing: Tracing
) -> None:
    qm.add_hooks(tracing.hooks)
    queue = qm.get_queue(queue_name)
    tracer = tracing.provider.get_tracer("test")

    async def handle(job: streamq.Job[str]) -> str:
        with tracer.start_as_current_span("handle"):
            if job.data == "flaky" and job.attempt == 1:
                raise ValueError("first time")
        return job.data

    await queue.consume(handle, max_retries=1, backoff=0.01, concurrency=2)
    ok = await queue.enqueue("ok")
    flaky = await queue.enqueue("flaky")
    assert await queue.wait_for(ok, timeout=10) == "ok"
    assert await queue.wait_for(flaky, timeout=10) == "flaky"
    await wait_until(lambda: len(tracing.spans("process ")) == 3, what="three process spans")

    sends = {s.attributes["messaging.message.id"]: s for s in tracing.spans("send ")}  # type: ignore[index]
    assert set(sends) == {ok, flaky}
    send = sends[ok]
    assert (send.name, send.kind) == (f"send {queue_name}", SpanKind.PRODUCER)
    assert dict(send.attributes or {}) == {
        "messaging.system": "streamq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": queue_name,
        "messaging.message.id": ok,
    }
    assert trace_id(sends[ok]) != trace_id(sends[flaky])  # each enqueue its own root

    processes = tracing.spans("process ")
    by_job: dict[str, list[ReadableSpan]] = {}
    for span in processes:
        by_job.setdefault(str((span.attributes or {})["messaging.message.id"]), []).append(span)
    for job_id, spans in by_job.items():
        for span in spans:
            assert trace_id(span) == trace_id(sends[job_id])
            assert span.parent is not None and span.parent.span_id == span_id(sends[job_id])
            assert [link.context.span_id for link in span.links] == [span_id(sends[job_id])]

    (done,) = by_job[ok]
    assert (done.name, done.kind) == (f"process {queue_name}", SpanKind.CONSUMER)
    attributes = dict(done.attributes or {})
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.destination.name"] == queue_name
    assert attributes["messaging.consumer.group.name"] == queue_name
    assert (attributes["streamq.job.attempt"], attributes["streamq.job.outcome"]) == (1, "success")
    assert done.status.status_code == StatusCode.UNSET

    first, second = sorted(by_job[flaky], key=lambda s: s.start_time or 0)
    assert (first.attributes or {})["streamq.job.attempt"] == 1
    assert (second.attributes or {})["streamq.job.attempt"] == 2
    assert first.status.status_code == StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "ValueError"
    assert (first.attributes or {})["streamq.job.outcome"] == "retry"
    assert [event.name for event in first.events] == ["exception"]
    assert second.status.status_code == StatusCode.UNSET

    # The handler's span is a child of its attempt's.
    handles = tracing.spans("handle")
    assert len(handles) == 3
    attempt_ids = {span_id(span) for span in processes}
    assert all(h.parent is not None and h.parent.span_id in attempt_ids for h in handles)

    metrics = tracing.metrics()
    (duration, failed_duration) = sorted(
        metrics["messaging.process.duration"], key=lambda p: "error.type" in p.attributes
    )
    assert (duration.count, failed_duration.count) == (2, 1)
    assert failed_duration.attributes["error.type"] == "ValueError"
    outcomes = {
        p.attributes["streamq.job.outcome"]: p.value for p in metrics["streamq.job.outcomes"]
    }
    assert outcomes == {"success": 2, "retry": 1}


async def test_enqueue_many_and_call_carry_the_caller_trace(
    qm: streamq.QueueManager, queue_name: str, tracing: Tracing
) -> None:
    qm.add_hooks(tracing.hooks)
    queue = qm.get_queue(queue_name)
    await queue.consume(lambda job: job.data)
    with tracing.provider.get_tracer("test").start_as_current_span("request") as request:
        ids = await queue.enqueue_many(["a", "b"])
        assert await queue.call("c", timeout=10) == "c"
    for job_id in ids:
        assert await queue.wait_for(job_id, timeout=10) in ("a", "b")
    await wait_until(lambda: len(tracing.spans("process ")) == 3, what="three process spans")
    sends = tracing.spans("send ")
    assert len(sends) == 3
    trace = request.get_span_context().trace_id
    for span in sends:
        assert trace_id(span) == trace
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
    assert all(trace_id(span) == trace for span in tracing.spans("process "))


async def test_a_flow_s_steps_and_their_attempts_join_the_caller_trace(
    qm: streamq.QueueManager, queue_name: str, tracing: Tracing
) -> None:
    qm.add_hooks(tracing.hooks)
    parts = qm.get_queue(f"{queue_name}-parts")
    report = qm.get_queue(queue_name)
    await parts.consume(lambda job: job.data)
    await report.consume(lambda job: job.data)
    flow = streamq.group(
        streamq.Step(parts.name, "a"),
        streamq.Step(parts.name, "b"),
        then=streamq.Step(report.name, "all", job_id=f"{queue_name}-root"),
    )
    with tracing.provider.get_tracer("test").start_as_current_span("request") as request:
        root = await qm.enqueue_flow(flow)
        assert await qm.enqueue_flow(flow) == root  # deduplicated by its root id
    assert await report.wait_for(root, timeout=10) == "all"
    await wait_until(lambda: len(tracing.spans("process ")) == 3, what="three process spans")

    trace = request.get_span_context().trace_id
    sends = tracing.spans("send ")
    assert len(sends) == 6  # three steps, twice
    assert all(trace_id(span) == trace for span in sends)
    assert all(
        span.parent is not None and span.parent.span_id == request.get_span_context().span_id
        for span in sends
    )
    written = {
        (span.name, str((span.attributes or {})["messaging.message.id"])): span
        for span in sends
        if not (span.attributes or {}).get("streamq.job.duplicate")
    }
    assert sorted(name for name, _ in written) == sorted(
        [f"send {parts.name}", f"send {parts.name}", f"send {report.name}"]
    )
    assert (f"send {report.name}", root) in written
    assert len(sends) - len(written) == 3  # the second enqueue_flow's steps, duplicates
    for span in tracing.spans("process "):
        attributes = span.attributes or {}
        send = written[
            f"send {attributes['messaging.destination.name']!s}",
            str(attributes["messaging.message.id"]),
        ]
        assert trace_id(span) == trace
        assert span.parent is not None and span.parent.span_id == span_id(send)


async def test_acknowledgements_are_settle_spans_linking_each_completed_attempt(
    qm: streamq.QueueManager, queue_name: str, tracing: Tracing
) -> None:
    qm.add_hooks(tracing.hooks)
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[int]) -> int:
        if job.data == 0 and job.attempt == 1:
            raise ValueError("a failed attempt is not settled by an ack")
        return job.data

    consumer = await queue.consume(handle, concurrency=10, max_retries=1, backoff=0.01)
    ids = await queue.enqueue_many(list(range(30)))
    for job_id in ids:
        await queue.wait_for(job_id, timeout=10)

    def linked() -> list[int]:
        return [link.context.span_id for span in tracing.spans("ack ") for link in span.links]

    await wait_until(lambda: len(linked()) >= 30, what="30 acknowledged attempts")
    successes = {
        span_id(span): span
        for span in tracing.spans("process ")
        if (span.attributes or {})["streamq.job.outcome"] == "success"
    }
    assert len(successes) == 30
    assert sorted(linked()) == sorted(successes)  # each completed attempt once, nothing else
    for ack in tracing.spans("ack "):
        attributes = dict(ack.attributes or {})
        assert (ack.name, ack.kind) == (f"ack {queue_name}", SpanKind.CLIENT)
        assert attributes["messaging.operation.type"] == "settle"
        assert attributes["messaging.operation.name"] == "ack"
        assert attributes["messaging.consumer.group.name"] == queue_name
        assert attributes["messaging.client.id"] == consumer.name
        assert ack.start_time is not None and ack.end_time is not None
        assert ack.start_time <= ack.end_time
        processed = [successes[link.context.span_id] for link in ack.links]
        if len(processed) == 1:  # one job: its process span's child, in its trace
            (job,) = processed
            message_id = (job.attributes or {})["messaging.message.id"]
            assert attributes["messaging.message.id"] == message_id
            assert ack.parent is not None and ack.parent.span_id == span_id(job)
            assert trace_id(ack) == trace_id(job)
        else:
            assert attributes["messaging.batch.message_count"] == len(processed)
            assert ack.parent is None
        # Written after the attempts it settles ended.
        assert all((job.end_time or 0) <= ack.end_time for job in processed)


async def test_a_job_without_a_carried_context_is_a_root_span(
    redis_url: str, queue_name: str, tracing: Tracing
) -> None:
    async with streamq.QueueManager(redis_url) as plain:  # no hooks: nothing carried
        job_id = await plain.get_queue(queue_name).enqueue("x")
    async with streamq.QueueManager(redis_url, hooks=[tracing.hooks]) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(lambda job: job.data)
        assert await queue.wait_for(job_id, timeout=10) == "x"
        await wait_until(lambda: len(tracing.spans("process ")) == 1, what="a process span")
    (span,) = tracing.spans("process ")
    assert span.parent is None and not span.links


async def test_the_trace_crosses_into_another_process(
    qm: streamq.QueueManager, redis_url: str, queue_name: str, tracing: Tracing
) -> None:
    qm.add_hooks(tracing.hooks)
    queue = qm.get_queue(queue_name)
    ids = [await queue.enqueue(f"job {n}") for n in range(3)]
    # subprocess.run kills the worker (by its PID) should it outlast the timeout.
    worker = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, str(OTEL_WORKER), redis_url, queue_name, str(len(ids))],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=40,
            check=False,
        )
    )
    assert worker.returncode == 0, worker.stderr
    spans = json.loads(worker.stdout)
    sends = {
        span.attributes["messaging.message.id"]: span  # type: ignore[index]
        for span in tracing.spans("send ")
    }
    processes = [span for span in spans if span["name"] == f"process {queue_name}"]
    assert sorted(span["attributes"]["messaging.message.id"] for span in processes) == sorted(ids)
    for span in processes:
        send = sends[span["attributes"]["messaging.message.id"]]
        assert span["kind"] == "CONSUMER"
        assert span["trace_id"] == f"{trace_id(send):032x}"
        assert span["parent"] == f"{span_id(send):016x}"
    handles = [span for span in spans if span["name"] == "handle"]
    assert {span["parent"] for span in handles} == {span["span_id"] for span in processes}


async def test_streamq_works_without_opentelemetry(redis_url: str, queue_name: str) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # an import of it now fails
        import anyio, streamq

        async def main(url, name):
            async with streamq.QueueManager(url) as qm:
                queue = qm.get_queue(name)
                await queue.consume(lambda job: job.data * 2)
                print(await queue.call(21, timeout=10))
            assert not any(m.startswith("opentelemetry") for m in sys.modules if sys.modules[m])

        anyio.run(main, sys.argv[1], sys.argv[2])
        """
    )
    done = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-c", script, redis_url, queue_name],
            capture_output=True,
            text=True,
            timeout=40,
            check=False,
        )
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"

"""Prometheus metrics: the worker command's ``/metrics`` endpoint scraped over HTTP and parsed with
prometheus-client's parser, for one process and for a supervised pool; the hooks in-process."""

from __future__ import annotations

import re
import signal
import subprocess
import urllib.request
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import streamq
from streamq.ops.metrics import PrometheusMetrics

from .. import processes
from ..helpers import wait_until
from ..processes import Workers, exited
from ..tools.handlers import Nap

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

HANDLERS = "tests.tools.handlers"

# A Redis of this module's own, and the worker fixtures (pytest finds them among its names).
anyio_backend, redis_url = processes.anyio_backend, processes.redis_url
workers, producer = processes.workers, processes.producer
#: name (with its suffix, e.g. ``_total``) and sorted labels -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(port: int) -> Samples:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: bytes = response.read()
        return body.decode()

    return parse(await anyio.to_thread.run_sync(get))


async def metrics_port(workers: Workers, process: subprocess.Popen[bytes]) -> int:
    """The port the worker command logged it serves the metrics on (it was given 0)."""
    found: list[str] = []

    def logged() -> bool:
        found[:] = re.findall(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", workers.log(process))
        return bool(found)

    await wait_until(logged, timeout=15, what="the metrics endpoint")
    return int(found[0])


def qg(queue: str) -> tuple[tuple[str, str], ...]:
    return (("group", queue), ("queue", queue))


def depth(queue: str, state: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("streamq_queue_jobs", (("queue", queue), ("state", state)))


async def test_a_worker_serves_counters_histograms_and_depth(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    worker = workers.start(
        f"{HANDLERS}:fail_on_negative",
        "--queue",
        queue_name,
        "--max-retries",
        "1",
        "--metrics-port",
        "0",
        "--metrics-interval",
        "0.1",
    )
    port = await metrics_port(workers, worker)
    queue = producer.get_queue(queue_name, int)
    ok = [await queue.enqueue(n) for n in range(5)]
    bad = await queue.enqueue(-1)
    await queue.enqueue(7, start_delay=600)  # stays delayed
    assert [await queue.wait_for(job_id, timeout=15) for job_id in ok] == list(range(5))
    with pytest.raises(streamq.JobFailed, match="negative"):
        await queue.wait_for(bad, timeout=15)  # retried once (after ~1 s), then dead

    samples: Samples = {}

    async def settled() -> bool:
        samples.update(await scrape(port))
        return samples.get(depth(queue_name, "dead")) == 1.0

    await wait_until(settled, timeout=10, what="the depth gauges to show the dead job")
    counts = {
        name: samples.get((f"streamq_jobs_{name}_total", qg(queue_name)))
        for name in ("started", "completed", "failed", "retried", "dead_lettered")
    }
    assert counts == {"started": 7, "completed": 5, "failed": 2, "retried": 1, "dead_lettered": 1}
    # Every series of a queue's group exists from its first job, at 0 until counted (so rate()
    # and alerts see it).
    assert samples[("streamq_jobs_reclaimed_total", qg(queue_name))] == 0
    assert samples[("streamq_job_run_seconds_count", qg(queue_name))] == 7
    # First attempts only: the retry's wait is the backoff, not the queue's.
    assert samples[("streamq_job_start_latency_seconds_count", qg(queue_name))] == 6
    inf = (("group", queue_name), ("le", "+Inf"), ("queue", queue_name))
    assert samples[("streamq_job_start_latency_seconds_bucket", inf)] == 6
    assert 0 < samples[("streamq_job_start_latency_seconds_sum", qg(queue_name))] < 30
    states = {
        state: samples[depth(queue_name, state)]
        for state in ("waiting", "active", "delayed", "retrying", "dead")
    }
    assert states == {"waiting": 0, "active": 0, "delayed": 1, "retrying": 0, "dead": 1}
    assert ("streamq_queue_oldest_waiting_age_seconds", (("queue", queue_name),)) in samples
    assert samples[("streamq_queue_fairness_keys", (("queue", queue_name),))] == 0

    worker.send_signal(signal.SIGTERM)
    assert await exited(worker, 15) == 0
    assert '"error"' not in workers.log(worker)  # text lines by default


async def test_a_pool_of_processes_is_one_scrape(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    supervisor = workers.start(
        f"{HANDLERS}:nap",
        "--queue",
        queue_name,
        "--processes",
        "2",
        "--concurrency",
        "2",
        "--metrics-port",
        "0",
        "--metrics-interval",
        "0.1",
        "--log-format",
        "json",
    )
    port = await metrics_port(workers, supervisor)
    queue = producer.get_queue(queue_name, Nap)
    # Jobs of 20 ms: one process alone would need 0.4 s, so both take a share.
    ids = await queue.enqueue_many([Nap(0.02)] * 40)
    pids = {await queue.wait_for(job_id, timeout=30) for job_id in ids}
    assert len(pids) == 2

    samples: Samples = {}

    async def counted() -> bool:
        samples.update(await scrape(port))
        return (
            samples.get(("streamq_jobs_completed_total", qg(queue_name))) == 40
            and samples.get(depth(queue_name, "waiting")) == 0  # read by the supervisor
        )

    await wait_until(counted, timeout=10, what="both processes' completions in one scrape")
    assert samples[("streamq_jobs_started_total", qg(queue_name))] == 40
    assert samples[("streamq_job_run_seconds_count", qg(queue_name))] == 40
    assert samples[("streamq_job_run_seconds_sum", qg(queue_name))] >= 40 * 0.02

    supervisor.send_signal(signal.SIGTERM)
    assert await exited(supervisor, 30) == 0
    log = workers.log(supervisor)
    assert '"logger": "streamq.worker"' in log  # the workers logged JSON lines too
    assert sum("consuming queue" in line for line in log.splitlines()) == 2


async def test_the_hooks_count_in_process_and_serve(redis_url: str, queue_name: str) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    async with streamq.QueueManager(redis_url, hooks=[metrics]) as qm:
        queue = qm.get_queue(queue_name)
        await queue.enqueue(1, job_id="once")
        await queue.enqueue(1, job_id="once")  # a duplicate: not counted
        await queue.enqueue_many([2, 3])
        async with anyio.create_task_group() as tg:
            tg.start_soon(metrics.track_depth, qm, None, 0.05)

            async def tracked() -> bool:
                return (
                    parse(generate_latest(registry).decode()).get(depth(queue_name, "waiting")) == 3
                )

            await wait_until(tracked, what="the depth of every registered queue")
            port = metrics.serve(0)
            samples = await scrape(port)
            tg.cancel_scope.cancel()
    assert samples[("streamq_jobs_enqueued_total", (("queue", queue_name),))] == 3
    assert samples[depth(queue_name, "waiting")] == 3


async def test_a_cancelled_running_job_is_counted(redis_url: str, queue_name: str) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    started = anyio.Event()

    async def handle(job: streamq.Job[Any]) -> None:
        started.set()
        await anyio.sleep(30)

    async with streamq.QueueManager(redis_url, hooks=[metrics]) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(handle)
        job_id = await queue.enqueue(1)
        with anyio.fail_after(10):
            await started.wait()
        await queue.cancel(job_id)

        def counted() -> bool:
            samples = parse(generate_latest(registry).decode())
            return samples.get(("streamq_jobs_cancelled_total", qg(queue_name))) == 1

        await wait_until(counted, what="the cancel to be counted")
    samples = parse(generate_latest(registry).decode())
    assert samples[("streamq_jobs_failed_total", qg(queue_name))] == 0
    assert samples[("streamq_job_run_seconds_count", qg(queue_name))] == 1

"""Prometheus metrics: a :class:`~streamq.Hooks` that counts and times jobs, queue depth
gauges, and an HTTP endpoint to scrape them (``prometheus-client``).

::

    metrics = PrometheusMetrics()
    async with QueueManager(url, hooks=[metrics]) as qm:
        metrics.serve(9464)                       # http://127.0.0.1:9464/metrics
        async with anyio.create_task_group() as tg:
            tg.start_soon(metrics.track_depth, qm, ["emails"])
            ...

Counters and histograms are counted in the process where jobs are enqueued and run. Worker
processes started by ``python -m streamq worker --processes N`` count into files under a
directory of prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), which the
supervising process reads for each scrape: one scrape shows every process, and counts of a
worker that died and was replaced are kept. Queue depth comes from Redis (``Queue.stats``), so
one process tracks it for all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from redis.exceptions import RedisError

from ..errors import StreamqError
from ..job import QueueStats
from .hooks import EnqueueEvent, Hooks, JobEvent, ReclaimEvent

if TYPE_CHECKING:
    from ..client.manager import QueueManager

__all__ = ("DEPTH_STATES", "PrometheusMetrics", "QueueDepth", "multiprocess_registry", "serve")

log = logging.getLogger("streamq.metrics")

#: The states the depth gauge reports, as ``QueueStats`` counts them.
DEPTH_STATES = ("waiting", "active", "delayed", "retrying", "dead")
#: Seconds between two reads of the queues' depth.
DEPTH_INTERVAL = 5.0
#: Histogram buckets (seconds) for run time and enqueue-to-start latency: 1 ms to 5 minutes.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _Series(NamedTuple):
    """The metrics of one queue and consumer group, labelled."""

    started: Counter
    completed: Counter
    failed: Counter
    retried: Counter
    dead_lettered: Counter
    cancelled: Counter
    reclaimed: Counter
    run_time: Histogram
    start_latency: Histogram


class PrometheusMetrics(Hooks):
    """Counters and histograms of the jobs of every manager it is attached to.

    ``registry``: where the metrics are registered (default: prometheus-client's global
    registry, which ``serve`` and most frameworks' exporters expose). Create one per process
    and registry: the metric names can be registered once.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = "streamq"):
        self.registry = REGISTRY if registry is None else registry
        self._depth: QueueDepth | None = None
        qg = ("queue", "group")

        def counter(name: str, doc: str, labels: Sequence[str] = qg) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=self.registry)

        def histogram(name: str, doc: str) -> Histogram:
            return Histogram(
                name, doc, qg, namespace=namespace, registry=self.registry, buckets=BUCKETS
            )

        self.enqueued = counter(
            "jobs_enqueued", "Jobs enqueued (duplicates not counted).", ("queue",)
        )
        self.started = counter("jobs_started", "Attempts started.")
        self.completed = counter("jobs_completed", "Jobs whose handler returned.")
        self.failed = counter("jobs_failed", "Failed attempts (retried or dead-lettered).")
        self.retried = counter("jobs_retried", "Failed attempts that will be retried.")
        self.dead_lettered = counter("jobs_dead_lettered", "Jobs moved to the dead letters.")
        self.cancelled = counter(
            "jobs_cancelled", "Jobs cancelled while a consumer held them (Queue.cancel)."
        )
        self.reclaimed = counter(
            "jobs_reclaimed", "Jobs taken over from a consumer that stopped heart-beating."
        )
        self.run_time = histogram("job_run_seconds", "Seconds the handler ran.")
        self.start_latency = histogram(
            "job_start_latency_seconds",
            "Seconds from enqueue to a job's first start (a start_delay included).",
        )
        self._series: dict[tuple[str, str], _Series] = {}
        self._enqueued: dict[str, Counter] = {}

    # -- hooks ----------------------------------------------------------------------------

    def _series_of(self, queue: str, group: str) -> _Series:
        """The labelled children of one queue and group, looked up once: ``labels()`` takes a
        lock and builds a key on each call, most of the cost of a hook."""
        series = self._series.get((queue, group))
        if series is None:
            series = self._series[queue, group] = _Series(
                started=self.started.labels(queue, group),
                completed=self.completed.labels(queue, group),
                failed=self.failed.labels(queue, group),
                retried=self.retried.labels(queue, group),
                dead_lettered=self.dead_lettered.labels(queue, group),
                cancelled=self.cancelled.labels(queue, group),
                reclaimed=self.reclaimed.labels(queue, group),
                run_time=self.run_time.labels(queue, group),
                start_latency=self.start_latency.labels(queue, group),
            )
        return series

    def on_enqueue(self, event: EnqueueEvent) -> None:
        if not event.duplicate:
            counter = self._enqueued.get(event.queue)
            if counter is None:
                counter = self._enqueued[event.queue] = self.enqueued.labels(event.queue)
            counter.inc()

    def on_start(self, event: JobEvent) -> None:
        series = self._series_of(event.queue, event.group)
        series.started.inc()
        if event.attempt == 1:
            series.start_latency.observe(max(0.0, time.time() - event.enqueued_at))

    def on_success(self, event: JobEvent) -> None:
        series = self._series_of(event.queue, event.group)
        series.completed.inc()
        if event.duration is not None:
            series.run_time.observe(event.duration)

    def on_failure(self, event: JobEvent) -> None:
        series = self._series_of(event.queue, event.group)
        series.failed.inc()
        if event.retry_in is None:
            series.dead_lettered.inc()
        else:
            series.retried.inc()
        if event.duration is not None:
            series.run_time.observe(event.duration)

    def on_cancel(self, event: JobEvent) -> None:
        series = self._series_of(event.queue, event.group)
        series.cancelled.inc()
        if event.duration is not None:
            series.run_time.observe(event.duration)

    def on_reclaim(self, event: ReclaimEvent) -> None:
        self._series_of(event.queue, event.group).reclaimed.inc()

    # -- depth and serving ----------------------------------------------------------------

    async def track_depth(
        self,
        manager: QueueManager,
        queues: Sequence[str] | None = None,
        interval: float = DEPTH_INTERVAL,
    ) -> None:
        """Keep the depth gauges of ``queues`` (default: every registered queue) fresh until
        cancelled; run it in a task group."""
        if self._depth is None:
            self._depth = QueueDepth()
            self.registry.register(self._depth)
        await self._depth.track(manager, queues, interval)

    def serve(self, port: int = 9464, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP from a thread; returns the port (useful with 0)."""
        return serve(port, host, self.registry)


class QueueDepth(Collector):
    """Gauges of the jobs in each state per queue, as last read from Redis."""

    def __init__(self, namespace: str = "streamq") -> None:
        self._namespace = namespace
        self._stats: dict[str, QueueStats] = {}

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            f"{self._namespace}_queue_jobs",
            "Jobs in the queue, by state.",
            labels=("queue", "state"),
        )
        age = GaugeMetricFamily(
            f"{self._namespace}_queue_oldest_waiting_age_seconds",
            "Seconds the oldest waiting job has waited.",
            labels=("queue",),
        )
        keys = GaugeMetricFamily(
            f"{self._namespace}_queue_fairness_keys",
            "Fairness keys with waiting jobs (per queue: one series whatever their number).",
            labels=("queue",),
        )
        for name, stats in sorted(self._stats.items()):
            for state in DEPTH_STATES:
                jobs.add_metric((name, state), getattr(stats, state))
            age.add_metric((name,), stats.oldest_waiting_age)
            keys.add_metric((name,), stats.fairness_keys)
        yield jobs
        yield age
        yield keys

    def describe(self) -> Iterable[Metric]:
        return ()  # the families' names are fixed: nothing to check against other collectors

    async def refresh(self, manager: QueueManager, queues: Sequence[str] | None = None) -> None:
        """Read the depth of ``queues`` (default: every registered queue) now."""
        from ..client.inspection import overview

        rows = await overview(manager, queues)
        self._stats = {row.name: row.stats for row in rows}

    async def track(
        self,
        manager: QueueManager,
        queues: Sequence[str] | None = None,
        interval: float = DEPTH_INTERVAL,
    ) -> None:
        """:meth:`refresh` every ``interval`` seconds until cancelled; a failed read is logged
        and the last values stay."""
        failing = False
        while True:
            try:
                await self.refresh(manager, queues)
                failing = False
            except (RedisError, OSError, StreamqError) as exc:
                if not failing:
                    log.warning("could not read the queues' depth (%s); trying again", exc)
                failing = True
            await anyio.sleep(interval)


def multiprocess_registry(path: str) -> CollectorRegistry:
    """A registry of what the processes counting into ``path`` (their
    ``PROMETHEUS_MULTIPROC_DIR``) have counted."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def serve(port: int = 9464, host: str = "127.0.0.1", registry: Collector = REGISTRY) -> int:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread; the port bound
    (useful with 0)."""
    server, _ = start_http_server(port, addr=host, registry=registry)
    bound: int = server.server_address[1]
    return bound

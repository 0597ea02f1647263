"""``python -m streamq worker``: run a handler on a queue's jobs, in supervised processes."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import tempfile

import anyio
import click

from ...client.manager import QueueManager
from ...transport.connection import URL_ENV, connect, resolve_url
from ..eventloop import run
from ..hooks import Hooks
from ..logs import LOG_FORMATS, LogFormat, configure
from ..process import Background, WorkerSpec, load_handler, run_worker
from ..supervisor import Supervisor
from . import fail_cleanly, main, prefix_option, url_option

log = logging.getLogger("streamq.worker")

#: Where a supervised pool's workers count their metrics (prometheus-client's multiprocess mode).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@main.command(short_help="Run a handler on a queue's jobs, in supervised processes.")
@click.argument("target", metavar="MODULE:FUNCTION")
@click.option("-q", "--queue", help="The queue to consume [default: the handler's name].")
@url_option
@prefix_option
@click.option("-g", "--group", help="Consumer group [default: the queue's name].")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Handlers running at once in each process.",
)
@click.option(
    "-p",
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes, supervised and restarted if they die.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries after the first attempt, then the dead letters.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a handler may run before it is cancelled.",
)
@click.option(
    "--visibility-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds before a silent worker's jobs go to another.",
)
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    help="Jobs read ahead of free slots [default: as many as --concurrency while jobs run"
    " under 50 ms, else none].",
)
@click.option(
    "--rate-limit",
    callback=lambda _ctx, _param, value: _rate_limit(value),
    metavar="JOBS/SECONDS",
    help="At most JOBS starts per SECONDS across the group, e.g. 100/1.",
)
@click.option(
    "--global-concurrency",
    type=click.IntRange(min=1),
    help="At most this many jobs run at once across the group (every process and machine).",
)
@click.option(
    "--per-key-concurrency",
    type=click.IntRange(min=1),
    help="At most this many jobs of one fairness key run at once across the group.",
)
@click.option(
    "--per-key-rate-limit",
    callback=lambda _ctx, _param, value: _rate_limit(value),
    metavar="JOBS/SECONDS",
    help="At most JOBS starts of one fairness key per SECONDS across the group, e.g. 5/1.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    help="Seconds before each retry [default: exponential with jitter, 1 s, 2 s, 4 s ...].",
)
@click.option(
    "--broadcast",
    is_flag=True,
    help="Each worker process gets every job: a group of its own (QUEUE:INSTANCE_ID).",
)
@click.option(
    "--on-startup",
    metavar="MODULE:FUNCTION",
    help="Called with the QueueManager before consuming (may be async).",
)
@click.option(
    "--on-shutdown",
    metavar="MODULE:FUNCTION",
    help="Called with the QueueManager once the consumer stopped (may be async).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds running jobs get to finish on SIGTERM/SIGINT.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="json: one JSON object per line, with queue, job_id, attempt and error"
    " keys on job failures and reclaims.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port,"
    " logged); with --processes, one endpoint for every process.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics endpoint listens on.",
)
@click.option(
    "--metrics-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds between two reads of the queue's depth.",
)
@click.option("--supervisor-pid", type=int, hidden=True)
@click.option("--count-metrics", is_flag=True, hidden=True)
@fail_cleanly
def worker(
    target: str,
    queue: str | None,
    url: str | None,
    prefix: str,
    group: str | None,
    concurrency: int,
    processes: int,
    max_retries: int,
    timeout: float | None,
    visibility_timeout: float,
    prefetch: int | None,
    rate_limit: tuple[int, float] | None,
    global_concurrency: int | None,
    per_key_concurrency: int | None,
    per_key_rate_limit: tuple[int, float] | None,
    backoff: float | None,
    broadcast: bool,
    on_startup: str | None,
    on_shutdown: str | None,
    grace: float,
    log_level: str,
    log_format: LogFormat,
    metrics_port: int | None,
    metrics_host: str,
    metrics_interval: float,
    supervisor_pid: int | None,
    count_metrics: bool,
) -> None:
    """Run the handler MODULE:FUNCTION on the jobs of a queue until SIGTERM or SIGINT.

    The handler is an `async def handle(job: streamq.Job[T])` (a plain function runs in a
    thread); a `Job[T]` annotation types the queue. On SIGTERM/SIGINT running jobs get --grace
    seconds to finish; a second signal cancels them (they are handed back, not lost).

    Example: python -m streamq worker myapp.tasks:send_email --queue emails --processes 4
    --metrics-port 9464
    """
    configure(log_format, log_level)
    spec = WorkerSpec(
        target=target,
        queue=queue,
        url=url,
        prefix=prefix,
        group=group,
        concurrency=concurrency,
        max_retries=max_retries,
        timeout=timeout,
        visibility_timeout=visibility_timeout,
        grace=grace,
        prefetch=prefetch,
        rate_limit=rate_limit,
        global_concurrency=global_concurrency,
        per_key_concurrency=per_key_concurrency,
        per_key_rate_limit=per_key_rate_limit,
        backoff=backoff,
        broadcast=broadcast,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )
    spec.check()  # a bad target or name is one error here, not N workers failing to start
    if processes == 1:
        hooks: list[Hooks] = []
        background: list[Background] = []
        if metrics_port is not None or count_metrics:
            from ..metrics import PrometheusMetrics

            metrics = PrometheusMetrics()
            hooks.append(metrics)
            if metrics_port is not None:
                _serving(metrics.serve(metrics_port, metrics_host), metrics_host)
                background.append(
                    lambda qm, queue: metrics.track_depth(qm, [queue], metrics_interval)
                )
        run(
            functools.partial(
                run_worker, spec, parent_pid=supervisor_pid, hooks=hooks, background=background
            )
        )
        return
    run(_check_server, url)
    command = [sys.executable, "-m", "streamq", *_worker_args(spec, log_level, log_format)]
    # The URL goes to the workers in their environment: a password in it stays out of `ps`.
    env = {**os.environ, URL_ENV: url} if url else dict(os.environ)
    if metrics_port is None:
        sys.exit(run(Supervisor(command, processes, grace, env=env).run))
    # The workers count into files there; this process serves what they all counted.
    folder = tempfile.mkdtemp(prefix="streamq-metrics-")
    try:
        supervisor = Supervisor(
            [*command, "--count-metrics"], processes, grace, env={**env, MULTIPROC_ENV: folder}
        )
        endpoint = (metrics_port, metrics_host, metrics_interval)
        sys.exit(run(_supervise_with_metrics, supervisor, spec, folder, endpoint))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _serving(port: int, host: str) -> None:
    shown = f"[{host}]" if ":" in host else host
    log.info("metrics at http://%s:%d/metrics", shown, port)


async def _supervise_with_metrics(
    supervisor: Supervisor, spec: WorkerSpec, folder: str, endpoint: tuple[int, str, float]
) -> int:
    """Run the pool, serving the metrics its workers count into ``folder`` and the depth of
    their queue (read here, once for all of them)."""
    from ..metrics import QueueDepth, multiprocess_registry, serve

    port, host, interval = endpoint
    registry = multiprocess_registry(folder)
    depth = QueueDepth()
    registry.register(depth)
    _serving(serve(port, host, registry), host)
    queue = spec.queue_name(load_handler(spec.target)[0])
    async with QueueManager(spec.url, prefix=spec.prefix) as qm, anyio.create_task_group() as tg:
        tg.start_soon(depth.track, qm, [queue], interval)
        code = await supervisor.run()
        tg.cancel_scope.cancel()
    return code


async def _check_server(url: str | None) -> None:
    client = await connect(resolve_url(url))
    await client.aclose()


def _worker_args(spec: WorkerSpec, log_level: str, log_format: str) -> list[str]:
    """The command line of one supervised worker: the same settings, one process."""
    args = [
        "worker",
        spec.target,
        "--prefix",
        spec.prefix,
        "--concurrency",
        str(spec.concurrency),
        "--max-retries",
        str(spec.max_retries),
        "--visibility-timeout",
        str(spec.visibility_timeout),
        "--grace",
        str(spec.grace),
        "--log-level",
        log_level,
        "--log-format",
        log_format,
        "--supervisor-pid",
        str(os.getpid()),
    ]
    for flag, value in (
        ("--queue", spec.queue),
        ("--group", spec.group),
        ("--timeout", spec.timeout),
        ("--prefetch", spec.prefetch),
        ("--rate-limit", _rate_text(spec.rate_limit)),
        ("--global-concurrency", spec.global_concurrency),
        ("--per-key-concurrency", spec.per_key_concurrency),
        ("--per-key-rate-limit", _rate_text(spec.per_key_rate_limit)),
        ("--backoff", spec.backoff),
        ("--on-startup", spec.on_startup),
        ("--on-shutdown", spec.on_shutdown),
    ):
        if value is not None:
            args += [flag, str(value)]
    if spec.broadcast:
        args.append("--broadcast")
    return args


def _rate_text(rate: tuple[int, float] | None) -> str | None:
    return None if rate is None else f"{rate[0]}/{rate[1]}"


def _rate_limit(value: str | None) -> tuple[int, float] | None:
    """``JOBS/SECONDS`` as ``(jobs, seconds)``."""
    if value is None:
        return None
    jobs, _, seconds = value.partition("/")
    try:
        parsed = (int(jobs), float(seconds or "1"))
    except ValueError:
        parsed = (0, 0.0)
    if parsed[0] < 1 or not 0 < parsed[1] < float("inf"):
        raise click.BadParameter(
            f"{value!r} is not JOBS/SECONDS: give a whole number of jobs and a number of"
            " seconds, e.g. 100/1 (100 starts a second) or 5/60"
        )
    return parsed

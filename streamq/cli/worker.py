"""``python -m streamq worker``: run a handler on a queue's jobs, in supervised processes."""

from __future__ import annotations

import functools
import logging
import os
import sys

import click

from ..connection import URL_ENV, connect, resolve_url
from ..eventloop import run
from ..supervisor import Supervisor
from ..worker import WorkerSpec, run_worker
from . import fail_cleanly, main, prefix_option, url_option


@main.command(short_help="Run a handler on a queue's jobs, in supervised processes.")
@click.argument("target", metavar="MODULE:FUNCTION")
@click.option("-q", "--queue", help="The queue to consume [default: the handler's name].")
@url_option
@prefix_option
@click.option("-g", "--group", help="Consumer group [default: the queue's name].")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=10, show_default=True,
              help="Handlers running at once in each process.")  # fmt: skip
@click.option("-p", "--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes, supervised and restarted if they die.")  # fmt: skip
@click.option("--max-retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Retries after the first attempt, then the dead letters.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds a handler may run before it is cancelled.")  # fmt: skip
@click.option("--visibility-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True,
              help="Seconds before a silent worker's jobs go to another.")  # fmt: skip
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds running jobs get to finish on SIGTERM/SIGINT.")  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)  # fmt: skip
@click.option("--supervisor-pid", type=int, hidden=True)
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
    grace: float,
    log_level: str,
    supervisor_pid: int | None,
) -> None:
    """Run the handler MODULE:FUNCTION on the jobs of a queue until SIGTERM or SIGINT.

    The handler is an `async def handle(job: streamq.Job[T])` (a plain function runs in a
    thread); a `Job[T]` annotation types the queue. On SIGTERM/SIGINT running jobs get --grace
    seconds to finish; a second signal cancels them (they are handed back, not lost).

    Example: python -m streamq worker myapp.tasks:send_email --queue emails --processes 4
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = WorkerSpec(
        target=target, queue=queue, url=url, prefix=prefix, group=group,
        concurrency=concurrency, max_retries=max_retries, timeout=timeout,
        visibility_timeout=visibility_timeout, grace=grace,
    )  # fmt: skip
    spec.check()  # a bad target or name is one error here, not N workers failing to start
    if processes == 1:
        run(functools.partial(run_worker, spec, parent_pid=supervisor_pid))
        return
    run(_check_server, url)
    command = [sys.executable, "-m", "streamq", *_worker_args(spec, log_level)]
    # The URL goes to the workers in their environment: a password in it stays out of `ps`.
    env = {**os.environ, URL_ENV: url} if url else None
    sys.exit(run(Supervisor(command, processes, grace, env=env).run))


async def _check_server(url: str | None) -> None:
    client = await connect(resolve_url(url))
    await client.aclose()


def _worker_args(spec: WorkerSpec, log_level: str) -> list[str]:
    """The command line of one supervised worker: the same settings, one process."""
    args = ["worker", spec.target, "--prefix", spec.prefix, "--concurrency", str(spec.concurrency),
            "--max-retries", str(spec.max_retries), "--visibility-timeout",
            str(spec.visibility_timeout), "--grace", str(spec.grace), "--log-level", log_level,
            "--supervisor-pid", str(os.getpid())]  # fmt: skip
    for flag, value in (("--queue", spec.queue), ("--group", spec.group),
                        ("--timeout", spec.timeout)):  # fmt: skip
        if value is not None:
            args += [flag, str(value)]
    return args

"""``python -m streamq``: the command line (click).

Errors streamq raises on purpose are one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .connection import URL_ENV, connect, resolve_url
from .errors import StreamqError
from .eventloop import run
from .supervisor import Supervisor
from .worker import WorkerSpec, run_worker

__all__ = ("main",)

F = TypeVar("F", bound=Callable[..., Any])


def _fail_cleanly(command: F) -> F:
    """streamq's own errors as ``error: ...`` and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as exc:
            error = _own_error(exc)
            if error is None:
                raise
            raise click.ClickException(str(error)) from exc

    return wrapper  # type: ignore[return-value]


def _own_error(exc: BaseException) -> StreamqError | None:
    """``exc``, or the one error in a task group's exception group, if streamq raised it."""
    if isinstance(exc, StreamqError):
        return exc
    inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())
    return _own_error(inner[0]) if len(inner) == 1 else None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="streamq")
def main() -> None:
    """streamq: an asyncio-native job queue on Redis Streams."""


url_option = click.option(
    "--url",
    envvar=URL_ENV,
    show_envvar=True,
    help="Redis URL: redis://, rediss://, unix://, redis+cluster://, redis+sentinel://"
    " [default: redis://127.0.0.1:6379/0]",
)


@main.command()
@click.argument("target", metavar="MODULE:FUNCTION")
@click.option("-q", "--queue", help="The queue to consume [default: the handler's name].")
@url_option
@click.option("--prefix", default="streamq", show_default=True, help="Prefix of streamq's keys.")
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
@_fail_cleanly
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

"""``python -m streamq info | jobs | job show | watch``: the queues' counts and groups, their jobs
by state, and one job in full."""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Sequence

import anyio
import click
from rich.live import Live

from ...client.inspection import MAX_PEEK, QueueOverview, overview
from ...client.manager import QueueManager
from ...errors import JobNotFound
from ...job import JobInfo
from ...store.history import HISTORY_MINUTES
from ..eventloop import run
from . import fail_cleanly, json_option, main, prefix_option, url_option
from .render import (
    console,
    echo_json,
    history_table,
    job_details,
    jobs_table,
    overview_tables,
    show_listing,
)
from .session import known_queues, manager

#: Fairness keys ``info`` shows per queue, those with the most waiting jobs.
BUSIEST = 10


@main.command(short_help="Counts of every queue, and its consumer groups.")
@click.argument("queues", nargs=-1, metavar="[QUEUE]...")
@click.option(
    "--history",
    "with_history",
    is_flag=True,
    help="Also each queue's last minutes: completed, failed, dead, and the enqueue-to-start"
    " latency (median, 99th percentile).",
)
@click.option(
    "-m",
    "--minutes",
    type=click.IntRange(1, HISTORY_MINUTES),
    default=15,
    show_default=True,
    help="The minutes --history shows (the current one included).",
)
@url_option
@prefix_option
@json_option
@fail_cleanly
def info(
    queues: tuple[str, ...],
    with_history: bool,
    minutes: int,
    url: str | None,
    prefix: str,
    as_json: bool,
) -> None:
    """Counts of every queue (or the QUEUEs named): waiting, active, delayed, retrying, dead,
    completed, the oldest waiting job's age, the consumer groups with their consumers and lag,
    and a fair queue's busiest fairness keys (the 10 with the most waiting jobs). With
    --history, a table of each queue's last --minutes minutes (with --json, its "history").

    Example: python -m streamq info emails --json; python -m streamq info emails --history -m 30
    """

    async def show() -> None:
        async with manager(url, prefix) as qm:
            names = await known_queues(qm, queues)
            history = minutes if with_history else 0
            overviews = await overview(qm, names, busiest=BUSIEST, history=history)
        if as_json:
            echo_json(overviews)
        elif not overviews:
            click.echo(
                "no queues yet: a queue is listed once something enqueues to it,"
                " consumes it or schedules on it"
            )
        else:
            console().print(overview_tables(overviews))
            if with_history:
                console().print("", history_table(overviews, minutes))

    run(show)


@main.command(
    short_help="A queue's jobs in one state: waiting, delayed, retrying, active, completed."
)
@click.argument("queue")
@click.option(
    "-s",
    "--state",
    type=click.Choice(["waiting", "delayed", "retrying", "active", "completed"]),
    default="waiting",
    show_default=True,
)
@click.option("-n", "--limit", type=click.IntRange(1, MAX_PEEK), default=20, show_default=True)
@click.option("-k", "--key", help="The waiting jobs of this fairness key only.")
@url_option
@prefix_option
@json_option
@fail_cleanly
def jobs(
    queue: str,
    state: str,
    limit: int,
    key: str | None,
    url: str | None,
    prefix: str,
    as_json: bool,
) -> None:
    """The jobs of QUEUE in one state: waiting, delayed and retrying ones in the order they
    will run, active ones oldest first, completed ones (those still kept) newest first. Dead
    jobs: `dead list`; one job in full: `job show`.

    Example: python -m streamq jobs emails --state delayed; python -m streamq jobs imports
    --key tenant-42
    """

    async def show() -> None:
        async with manager(url, prefix) as qm:
            [name] = await known_queues(qm, [queue])
            q = qm.get_queue(name)
            listed = await q.jobs(state, limit, fairness_key=key)  # type: ignore[arg-type]
        show_listing(
            listed,
            as_json=as_json,
            empty=f"queue {queue!r} has no {state} jobs" + (f" of key {key!r}" if key else ""),
            table=lambda: jobs_table(queue, state, listed),
        )

    run(show)


@main.group(short_help="One job: show.")
def job() -> None:
    """One job of a queue."""


@job.command(name="show")
@click.argument("queue")
@click.argument("job_id")
@click.option("-g", "--group", help="A broadcast job's part in this consumer group.")
@url_option
@prefix_option
@json_option
@fail_cleanly
def job_show(
    queue: str, job_id: str, group: str | None, url: str | None, prefix: str, as_json: bool
) -> None:
    """A job of QUEUE in full: its state (per group, for a broadcast job), attempts, result
    or error, progress, when it was enqueued and finished, and its handler's log lines.

    Example: python -m streamq job show emails 8f6b4d1d77113bc936eed966
    """

    async def show() -> tuple[JobInfo | None, list[str]]:
        async with manager(url, prefix) as qm:
            [name] = await known_queues(qm, [queue])
            q = qm.get_queue(name)
            return await q.get_job(job_id, group=group), await q.job_logs(job_id)

    info, logs = run(show)
    if info is None and group is None:
        raise JobNotFound(job_id, queue=queue)
    if info is None:
        raise click.ClickException(
            f"job {job_id!r} of queue {queue!r} is unknown, or does not go to consumer group"
            f" {group!r}"
        )
    if as_json:
        fields = {name: getattr(info, name) for name in info.__struct_fields__}
        echo_json({**fields, "logs": logs})
    else:
        click.echo(job_details(queue, info, logs))


@main.command(short_help="A live view of info that refreshes.")
@click.argument("queues", nargs=-1, metavar="[QUEUE]...")
@click.option(
    "-i",
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    help="Refresh this many times, then exit [default: until Ctrl-C].",
)
@url_option
@prefix_option
@json_option
@fail_cleanly
def watch(
    queues: tuple[str, ...],
    interval: float,
    count: int | None,
    url: str | None,
    prefix: str,
    as_json: bool,
) -> None:
    """A live view of `info` that refreshes every --interval seconds (with --json: one line of
    JSON per refresh).

    Example: python -m streamq watch --interval 2
    """

    async def loop() -> None:
        async with manager(url, prefix) as qm:
            if as_json:
                await _watch(
                    qm,
                    queues,
                    interval,
                    count,
                    lambda o: echo_json({"at": time.time(), "queues": o}),
                )
            elif not sys.stdout.isatty():  # a file or a pipe: one table after another
                out = console()
                await _watch(qm, queues, interval, count, lambda o: out.print(overview_tables(o)))
            else:
                with Live(console=console(), auto_refresh=False) as live:

                    def show(overviews: list[QueueOverview]) -> None:
                        stamp = time.strftime("%H:%M:%S")
                        caption = f"{stamp} · every {interval:g}s · Ctrl-C stops"
                        live.update(overview_tables(overviews, caption), refresh=True)

                    await _watch(qm, queues, interval, count, show)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends
        run(loop)


async def _watch(
    qm: QueueManager,
    queues: Sequence[str],
    interval: float,
    count: int | None,
    show: Callable[[list[QueueOverview]], object],
) -> None:
    """Read and show the queues every ``interval`` seconds, on a fixed beat (the reads' time
    does not make it drift), ``count`` times or until cancelled."""
    beat = time.monotonic()
    for shown in itertools.count(1):
        show(await overview(qm, await known_queues(qm, queues)))
        if count is not None and shown >= count:
            return
        beat += interval
        await anyio.sleep(max(0.0, beat - time.monotonic()))

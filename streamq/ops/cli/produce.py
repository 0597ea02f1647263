"""``python -m streamq enqueue QUEUE JSON``, ``delete QUEUE`` and ``recurring list QUEUE``: for
scripts and smoke tests."""

from __future__ import annotations

from typing import Any

import click
import msgspec

from ...errors import EncodeError
from ...store.keys import QueueKeys
from ...store.schema import problem_in, schema_title
from ..eventloop import run
from . import confirm, fail_cleanly, json_option, main, prefix_option, url_option
from .render import echo_json, recurring_table, show_listing
from .session import known_queues, manager


def _json_data(_ctx: click.Context, _param: click.Parameter, value: str) -> Any:
    try:
        return msgspec.json.decode(value)
    except msgspec.DecodeError as exc:
        raise click.BadParameter(
            f'{exc} — give the job\'s data as JSON, e.g. \'{{"to": "a@example.com"}}\''
            " or '\"text\"' (quote it for the shell)"
        ) from exc


def _title(schema: bytes | str) -> str:
    return schema_title(schema) or "(as recorded by the queue's producers and consumers)"


@main.command(short_help="Add a job with JSON data to a queue.")
@click.argument("queue")
@click.argument("data", metavar="JSON", callback=_json_data)
@click.option("-p", "--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option(
    "-d",
    "--delay",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds before the job may start.",
)
@click.option(
    "--job-id", help="Deduplicates: while a job with this id is unfinished, nothing is added."
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    help="Overrides the consumer's max_retries for this job.",
)
@click.option("--timeout", type=float, help="Overrides the consumer's handler timeout.")
@url_option
@prefix_option
@json_option
@fail_cleanly
def enqueue(
    queue: str,
    data: Any,
    priority: int,
    delay: float,
    job_id: str | None,
    max_retries: int | None,
    timeout: float | None,
    url: str | None,
    prefix: str,
    as_json: bool,
) -> None:
    """Add a job with JSON data to QUEUE and print its id. When a program used the queue with
    a type, the data is checked against it first.

    Example: python -m streamq enqueue emails '{"to": "a@example.com"}' --priority 5
    """

    async def add() -> str:
        async with manager(url, prefix) as qm:
            schema = await qm.redis.get(QueueKeys(qm.prefix, queue).schema)
            if schema and (problem := problem_in(data, schema)):
                raise EncodeError(
                    f"queue {queue!r}: the data does not fit its type"
                    f" {_title(schema)} ({problem}); nothing was enqueued",
                    queue=queue,
                )
            return await qm.get_queue(queue).enqueue(
                data,
                priority=priority,
                start_delay=delay,
                job_id=job_id,
                max_retries=max_retries,
                timeout=timeout,
            )

    added = run(add)
    if as_json:
        echo_json({"queue": queue, "job_id": added})
    else:
        click.echo(added)


@main.command(short_help="Delete a queue and all its jobs.")
@click.argument("queue")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Delete it even while consumers of it are live.")
@url_option
@prefix_option
@json_option
@fail_cleanly
def delete(queue: str, yes: bool, force: bool, url: str | None, prefix: str, as_json: bool) -> None:
    """Delete QUEUE from Redis: its jobs in every state, dead letters, recurring schedules and
    groups. Refused while consumers of it are live, unless --force.

    Example: python -m streamq delete emails --yes
    """

    async def counts() -> str:
        async with manager(url, prefix) as qm:
            await known_queues(qm, [queue])
            s = await qm.get_queue(queue).stats()
            return (
                f"{s.waiting:,} waiting, {s.active:,} active, {s.delayed:,} delayed,"
                f" {s.retrying:,} retrying, {s.dead:,} dead"
            )

    confirm(yes, "deleting a queue", lambda: f"Delete queue {queue!r} ({run(counts)}) for good?")

    async def drop() -> int:
        async with manager(url, prefix) as qm:
            await known_queues(qm, [queue])
            return await qm.get_queue(queue).delete(force=force)

    deleted = run(drop)
    if as_json:
        echo_json({"queue": queue, "deleted_records": deleted})
    else:
        click.echo(f"deleted queue {queue!r} ({deleted:,} job records)")


@main.group(short_help="Recurring schedules: list.")
def recurring() -> None:
    """Recurring schedules (created in code with Queue.schedule_recurring)."""


@recurring.command("list")
@click.argument("queue")
@url_option
@prefix_option
@json_option
@fail_cleanly
def list_(queue: str, url: str | None, prefix: str, as_json: bool) -> None:
    """The recurring schedules of QUEUE, soonest next run first.

    Example: python -m streamq recurring list reports
    """

    async def show() -> None:
        async with manager(url, prefix) as qm:
            await known_queues(qm, [queue])
            schedules = await qm.get_queue(queue).recurring_schedules()
        show_listing(
            schedules,
            as_json=as_json,
            empty=f"queue {queue!r} has no recurring schedules",
            table=lambda: recurring_table(queue, schedules),
        )

    run(show)

"""``python -m streamq dead list | show | retry | purge QUEUE``: the dead letters."""

from __future__ import annotations

import click

from ...errors import InvalidArgument
from ..eventloop import run
from . import confirm, fail_cleanly, json_option, main, prefix_option, url_option
from .render import dead_letter_details, dead_letters_table, echo_json, show_listing
from .session import known_queues, manager


@main.group(short_help="Dead letters: list, show, retry, purge.")
def dead() -> None:
    """The dead letters: jobs that failed past their retries (or could not be decoded)."""


@dead.command("list")
@click.argument("queue")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
@url_option
@prefix_option
@json_option
@fail_cleanly
def list_(queue: str, limit: int, url: str | None, prefix: str, as_json: bool) -> None:
    """The dead letters of QUEUE, oldest failure first.

    Example: python -m streamq dead list emails --limit 50
    """

    async def show() -> None:
        async with manager(url, prefix) as qm:
            await known_queues(qm, [queue])
            letters = await qm.get_queue(queue).dead_letters(limit)
        show_listing(
            letters,
            as_json=as_json,
            empty=f"queue {queue!r} has no dead letters",
            table=lambda: dead_letters_table(queue, letters),
        )

    run(show)


@dead.command()
@click.argument("queue")
@click.argument("job_id")
@url_option
@prefix_option
@json_option
@fail_cleanly
def show(queue: str, job_id: str, url: str | None, prefix: str, as_json: bool) -> None:
    """One dead letter of QUEUE in full: its error, data, attempts and groups.

    Example: python -m streamq dead show emails 9f1c2e
    """

    async def read() -> None:
        async with manager(url, prefix) as qm:
            await known_queues(qm, [queue])
            letter = await qm.get_queue(queue).dead_letter(job_id)
        if letter is None:
            raise InvalidArgument(
                f"queue {queue!r} has no dead letter {job_id!r}"
                f" (see: python -m streamq dead list {queue})"
            )
        if as_json:
            echo_json(letter)
        else:
            click.echo(dead_letter_details(queue, letter))

    run(read)


@dead.command()
@click.argument("queue")
@click.argument("job_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Retry every dead letter of QUEUE.")
@url_option
@prefix_option
@json_option
@fail_cleanly
def retry(
    queue: str, job_id: str | None, all_: bool, url: str | None, prefix: str, as_json: bool
) -> None:
    """Put the dead job JOB_ID (or --all of them) back in QUEUE, with fresh attempts.

    Example: python -m streamq dead retry emails --all
    """
    if (job_id is None) == (not all_):
        raise click.UsageError("give a JOB_ID or --all (not both)")

    async def revive() -> int:
        async with manager(url, prefix) as qm:
            await known_queues(qm, [queue])
            retried = await qm.get_queue(queue).retry_dead(job_id)
        if job_id is not None and not retried:
            raise InvalidArgument(
                f"queue {queue!r} has no dead letter {job_id!r}"
                f" (see: python -m streamq dead list {queue})"
            )
        return retried

    retried = run(revive)
    if as_json:
        echo_json({"queue": queue, "retried": retried})
    else:
        click.echo(f"retried {retried} dead job{'s' * (retried != 1)} of {queue!r}")


@dead.command()
@click.argument("queue")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@url_option
@prefix_option
@json_option
@fail_cleanly
def purge(queue: str, yes: bool, url: str | None, prefix: str, as_json: bool) -> None:
    """Delete every dead letter of QUEUE (they cannot be retried afterwards).

    Example: python -m streamq dead purge emails --yes
    """
    confirm(yes, "purging", lambda: f"Delete every dead letter of {queue!r}?")

    async def drop() -> int:
        async with manager(url, prefix) as qm:
            await known_queues(qm, [queue])
            return await qm.get_queue(queue).purge_dead()

    purged = run(drop)
    if as_json:
        echo_json({"queue": queue, "purged": purged})
    else:
        click.echo(f"purged {purged} dead letter{'s' * (purged != 1)} of {queue!r}")

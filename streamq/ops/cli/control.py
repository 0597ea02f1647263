"""``python -m streamq cancel | pause | resume``: control over a queue's jobs."""

from __future__ import annotations

import click

from ..eventloop import run
from . import fail_cleanly, json_option, main, prefix_option, url_option
from .render import echo_json
from .session import known_queues, manager


@main.command(short_help="Cancel a job: waiting, delayed, retrying or running.")
@click.argument("queue")
@click.argument("job_id")
@url_option
@prefix_option
@json_option
@fail_cleanly
def cancel(queue: str, job_id: str, url: str | None, prefix: str, as_json: bool) -> None:
    """Cancel the job JOB_ID of QUEUE: out of the queue if it waits, stopped wherever it runs.
    It ends "cancelled" and is not retried. A finished job is left as it is (exit status 1).

    Example: python -m streamq cancel exports 8f6b4d1d77113bc936eed966
    """

    async def act() -> bool:
        async with manager(url, prefix) as qm:
            [name] = await known_queues(qm, [queue])
            return await qm.get_queue(name).cancel(job_id)

    cancelled = run(act)
    if as_json:
        echo_json({"queue": queue, "job_id": job_id, "cancelled": cancelled})
    elif cancelled:
        click.echo(f"cancelled job {job_id!r} of queue {queue!r}")
    if not cancelled:
        raise click.ClickException(
            f"job {job_id!r} of queue {queue!r} was not cancelled: it is unknown or finished"
            f" (see: python -m streamq job show {queue} {job_id})"
        )


def _pause_command(pause: bool) -> None:
    verb = "pause" if pause else "resume"

    @main.command(
        name=verb,
        short_help=(
            "Stop every consumer of a queue from starting jobs."
            if pause
            else "Let the consumers of a paused queue start jobs again."
        ),
    )
    @click.argument("queue")
    @url_option
    @prefix_option
    @json_option
    @fail_cleanly
    def command(queue: str, url: str | None, prefix: str, as_json: bool) -> None:
        async def act() -> bool:
            async with manager(url, prefix) as qm:
                [name] = await known_queues(qm, [queue])
                q = qm.get_queue(name)
                return await (q.pause() if pause else q.resume())

        changed = run(act)
        state = "paused" if pause else "running"
        if as_json:
            echo_json({"queue": queue, "paused": pause, "changed": changed})
        elif changed:
            click.echo(f"queue {queue!r} is {state} now")
        else:
            click.echo(f"queue {queue!r} was {state} already")

    command.__doc__ = (
        "Pause QUEUE: no consumer of any group, on any machine, starts a job until `resume`"
        " (running jobs finish; enqueueing goes on). It holds across restarts.\n\n"
        "Example: python -m streamq pause emails"
        if pause
        else "Resume QUEUE: its consumers start jobs again.\n\n"
        "Example: python -m streamq resume emails"
    )


_pause_command(True)
_pause_command(False)

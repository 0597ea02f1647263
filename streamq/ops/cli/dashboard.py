"""``python -m streamq dashboard``: the web dashboard (the ``streamq[dashboard]`` extra)."""

from __future__ import annotations

import functools

import click

from ..eventloop import run
from . import fail_cleanly, main, prefix_option, url_option

EXTRA_HINT = "the dashboard needs Starlette and uvicorn: pip install 'streamq[dashboard]'"


@main.command(short_help="A web dashboard: queues, jobs, dead letters.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; beyond loopback, other machines get in.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on; 0 picks a free one (the address is printed).",
)
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Let the page cancel jobs, pause and resume queues, retry and purge dead letters"
    " (read-only without it).",
)
@url_option
@prefix_option
@fail_cleanly
def dashboard(host: str, port: int, allow_actions: bool, url: str | None, prefix: str) -> None:
    """Serve a web page of the queues: their counts refreshing live, a queue's waiting,
    delayed, retrying, active and dead jobs, a job's progress and log, a dead job's error; with
    --allow-actions, buttons that cancel jobs, pause and resume queues, retry or purge dead
    letters. Stops on Ctrl-C or SIGTERM.

    Example: python -m streamq dashboard --port 8080 --allow-actions
    """
    try:
        from ..dashboard import serve
        from ..dashboard.guard import is_loopback
    except ImportError as exc:
        if exc.name not in ("starlette", "uvicorn") and not str(exc.name).startswith(
            ("starlette.", "uvicorn.")
        ):
            raise
        raise click.ClickException(EXTRA_HINT) from None

    def ready(address: str) -> None:
        mode = "actions allowed" if allow_actions else "read-only"
        click.echo(f"streamq dashboard on {address} ({mode}); Ctrl-C stops")
        if not is_loopback(host):
            click.echo(
                f"warning: listening on {host}: anyone who can reach it sees the jobs'"
                " data (there is no login); put it behind an authenticating proxy or"
                " bind 127.0.0.1",
                err=True,
            )

    run(functools.partial(serve, allow_actions=allow_actions, ready=ready), url, prefix, host, port)

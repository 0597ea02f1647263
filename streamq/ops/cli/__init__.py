"""``python -m streamq``: the command line (click), one module per command group.

Errors streamq raises on purpose are one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ...errors import StreamqError
from ...transport.connection import DEFAULT_URL, URL_ENV, redacted

__all__ = ("confirm", "fail_cleanly", "json_option", "main", "prefix_option", "url_option")

F = TypeVar("F", bound=Callable[..., Any])


def fail_cleanly(command: F) -> F:
    """streamq's own errors as ``Error: ...`` and exit status 1."""

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


def confirm(yes: bool, doing: str, question: Callable[[], str]) -> None:
    """Go on with something that cannot be undone only with --yes or a "y" on a terminal (a
    script without one must say --yes); ``question`` is asked only when it is needed."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{doing} cannot be undone: pass --yes to confirm")
    click.confirm(question(), abort=True)


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


#: What --url is when not given: said as it is now (the help said the built-in default even
#: with $STREAMQ_REDIS_URL set).
_URL_DEFAULT = (
    f"{redacted(os.environ[URL_ENV])} from ${URL_ENV}" if os.environ.get(URL_ENV) else DEFAULT_URL
)
url_option = click.option(
    "--url",
    envvar=URL_ENV,
    show_envvar=True,
    help="Redis URL: redis://, rediss://, unix://, redis+cluster://, redis+sentinel://"
    f" [default: {_URL_DEFAULT}]",
)
prefix_option = click.option(
    "--prefix", default="streamq", show_default=True, help="Prefix of streamq's keys."
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output: JSON (one value per line)."
)

# The commands attach themselves to `main`.
from . import control, dashboard, dead, flows, inspect, produce, worker  # noqa: E402, F401

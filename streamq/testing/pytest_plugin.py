"""streamq's pytest plugin, for the test suites of applications that use streamq. Installing
streamq registers it (the ``pytest11`` entry point ``streamq``); ``-p no:streamq`` turns it off.

Fixtures, all named ``streamq_*``:

- ``streamq_redis_url`` (session): ``$STREAMQ_TEST_REDIS_URL`` when set, else the URL of a
  throwaway ``redis-server`` started for the session on a free loopback port, keeping nothing
  on disk, stopped (by its PID) when the session ends.
- ``streamq_prefix``: a key prefix of the test's own, so tests share the server without
  seeing each other's queues and nothing has to be flushed between them.
- ``streamq_manager_options``: extra ``QueueManager`` options (override it in a conftest.py).
- ``streamq_manager``: an open ``QueueManager`` on that server with that prefix, closed after
  the test (its consumers stopped). An async fixture: for tests run by anyio's pytest plugin
  (``@pytest.mark.anyio``). On a server of your own (``STREAMQ_TEST_REDIS_URL``) it deletes the
  test's queues afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ..client.manager import QueueManager
from .localserver import LocalRedis

__all__ = (
    "URL_VARIABLE",
    "streamq_manager",
    "streamq_manager_options",
    "streamq_prefix",
    "streamq_redis_url",
)

#: A server the tests may write to (each test under a prefix of its own), instead of a
#: throwaway one.
URL_VARIABLE = "STREAMQ_TEST_REDIS_URL"

#: Long enough for a handler that is about to finish, short enough that a test which leaves
#: a hanging handler behind fails on its own timeout rather than the manager's default 30 s.
SHUTDOWN_GRACE = 5.0


@pytest.fixture(scope="session")
def streamq_redis_url() -> Iterator[str]:
    """A Redis server for the session's tests: ``$STREAMQ_TEST_REDIS_URL``, or a throwaway
    ``redis-server``."""
    if given := os.environ.get(URL_VARIABLE):
        yield given
        return
    if shutil.which("redis-server") is None:
        pytest.fail(
            "streamq's pytest plugin: redis-server was not found; install it (Debian/Ubuntu:"
            " `sudo apt-get install redis-server`, macOS: `brew install redis`) or set"
            f" {URL_VARIABLE} to a server the tests may write to",
            pytrace=False,
        )
    with LocalRedis() as server:
        yield server.url


@pytest.fixture
def streamq_prefix() -> str:
    """The test's own key prefix (``QueueManager(prefix=...)``): pass it to managers that the
    code under test opens itself, so they see the test's queues."""
    return f"streamq-test-{secrets.token_hex(6)}"


@pytest.fixture
def streamq_manager_options() -> dict[str, Any]:
    """Keyword arguments for ``streamq_manager``'s ``QueueManager`` (override in a conftest.py,
    e.g. ``{"keep_events": 0}``)."""
    return {}


@pytest.fixture
async def streamq_manager(
    streamq_redis_url: str, streamq_prefix: str, streamq_manager_options: dict[str, Any]
) -> AsyncIterator[QueueManager]:
    """An open ``QueueManager`` on ``streamq_redis_url`` under ``streamq_prefix``."""
    options: dict[str, Any] = {"shutdown_grace": SHUTDOWN_GRACE, **streamq_manager_options}
    async with QueueManager(streamq_redis_url, prefix=streamq_prefix, **options) as manager:
        yield manager
    if os.environ.get(URL_VARIABLE):
        # Someone's own server: leave nothing of the test's behind. After the manager closed,
        # so no consumer of it writes meanwhile.
        async with QueueManager(streamq_redis_url, prefix=streamq_prefix, **options) as cleaner:
            for name in await cleaner.queues():
                await cleaner.get_queue(name).delete(force=True)

"""Fixtures of the fault suite: asyncio only (the workers run on uvloop), and servers of each
test's own, since the faults damage them. Every module here sets
``pytestmark = [pytest.mark.chaos, pytest.mark.anyio]`` and records a :mod:`figures` row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamq.localserver import LocalRedis


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def own_server() -> Iterator[LocalRedis]:
    """A redis-server of this test's own (no persistence)."""
    with LocalRedis() as server:
        yield server

"""Fixtures of the fault suite: asyncio only (the workers run on uvloop), and servers of each
test's own, since the faults damage them. Every module here sets
``pytestmark = [pytest.mark.chaos, pytest.mark.anyio]`` and records a :mod:`figures` row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from streamq.testing.localserver import LocalRedis

from .processes import Processes


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def own_server() -> Iterator[LocalRedis]:
    """A redis-server of this test's own (no persistence)."""
    with LocalRedis() as server:
        yield server


@pytest.fixture
def processes(own_server: LocalRedis, tmp_path: Path) -> Iterator[Processes]:
    """Worker processes on ``own_server``; whatever still runs at the end is killed."""
    started = Processes(own_server.url, tmp_path)
    yield started
    started.close()


@pytest.fixture
async def own_redis(own_server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    """A plain client of ``own_server``, for what the handlers recorded and what streamq
    keeps (pending lists, stream lengths)."""
    client = aioredis.Redis.from_url(own_server.url)
    try:
        yield client
    finally:
        await client.aclose()

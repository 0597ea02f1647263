"""Fixtures: real redis-server processes on free loopback ports, stopped by their PID.

No in-memory stand-ins and no mocks: every test talks to a real server this suite started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

import streamq
from streamq.testing.localcluster import LocalCluster
from streamq.testing.localsentinel import LocalSentinel
from streamq.testing.localserver import INSTALL_HINT, LocalRedis
from streamq.transport.connection import connect


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker: hand this process's fault figures to the controller."""
    from .chaos import figures

    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["chaos_figures"] = figures.dump()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """In the pytest-xdist controller: a worker's fault figures join the table."""
    from .chaos import figures

    figures.load(getattr(node, "workeroutput", {}).get("chaos_figures", "[]"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault suite's figures (tests/chaos), when it ran."""
    from .chaos import figures

    if figures.FIGURES:
        scale = "full" if figures.full() else "short (STREAMQ_CHAOS=full: make chaos)"
        terminalreporter.write_sep("=", f"fault injection figures, {scale} run")
        terminalreporter.write_line(figures.table())
        figures.save()


def pytest_configure(config: pytest.Config) -> None:
    if shutil.which("redis-server") is None:
        raise pytest.UsageError(f"{INSTALL_HINT} (`make test` installs it where it can)")


@pytest.fixture(
    scope="session",
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ],
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    backend: tuple[str, dict[str, Any]] = request.param
    return backend


def _built_binary(variable: str, default: str) -> str:
    path = os.environ.get(variable, default)
    if not os.access(path, os.X_OK):
        pytest.fail(f"no redis-server at {path}: run `make test`, which builds it into .cache/")
    return path


#: The servers every test that needs one runs against, by id: the system's Redis (7.0), Redis
#: 6.2 (the oldest supported) and Valkey 8.1; tests marked ``cluster`` also run against a real
#: Redis Cluster (3 primaries, 3 replicas).
SERVER_KINDS = {"redis": "system", "redis6.2": "6.2", "valkey": "valkey"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_server" not in metafunc.fixturenames:
        return
    kinds = dict(SERVER_KINDS)
    if metafunc.definition.get_closest_marker("newest_servers"):
        kinds = {"redis": "system"}
    if metafunc.definition.get_closest_marker("cluster"):
        kinds["cluster"] = "cluster"
    metafunc.parametrize(
        "redis_server", list(kinds.values()), ids=list(kinds), indirect=True, scope="session"
    )


#: Set to 1 to run every event loop against every server kind; by default uvloop runs against
#: the system's Redis only. The loop and the server are independent axes (no code path depends
#: on both), so each pairing with the other axis' default covers them, at three quarters of the
#: run time CI has to stay within.
FULL_MATRIX_ENV = "STREAMQ_FULL_MATRIX"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(FULL_MATRIX_ENV) == "1":
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        loop = params.get("anyio_backend")
        server = params.get("redis_server", "system")
        # Some modules parametrize anyio_backend themselves, with a plain "asyncio".
        uvloop = isinstance(loop, tuple) and bool(loop[1].get("use_uvloop"))
        (dropped if uvloop and server != "system" else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Iterator[LocalRedis | LocalCluster]:
    """One server (or cluster) per kind for the session: the system's Redis, 6.2 (the oldest
    supported) and a cluster of the system's; tests keep apart by their queue names."""
    if request.param == "cluster":
        with LocalCluster() as cluster:
            yield cluster
        return
    binary = None
    if request.param == "6.2":
        binary = _built_binary("STREAMQ_REDIS_62_SERVER", ".cache/redis-6.2/redis-server")
    elif request.param == "valkey":
        binary = _built_binary("STREAMQ_VALKEY_SERVER", ".cache/valkey-8.1/valkey-server")
    with LocalRedis(binary=binary) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: LocalRedis | LocalCluster) -> str:
    return redis_server.url


@pytest.fixture
def queue_name() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def qm(redis_url: str) -> AsyncIterator[streamq.QueueManager]:
    async with streamq.QueueManager(redis_url, shutdown_grace=5) as manager:
        yield manager


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client for looking at (and tampering with) what streamq wrote."""
    # streamq's own client maker: a cluster client for a redis+cluster:// URL (typed as a plain
    # client: the tests use the commands both have).
    client = cast("aioredis.Redis", await connect(redis_url))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalRedis]:
    """A redis-server of the test module's own (the system's), for what must not see other
    modules' keys: a registry of queues, worker processes."""
    with LocalRedis() as local:
        yield local


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own: it starts with an empty registry of queues."""
    return f"t{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def old_redis_binary() -> str:
    """A real redis-server older than 6.2, built by `make test` (tests/tools/build_old_redis.sh)."""
    return _built_binary("STREAMQ_OLD_REDIS_SERVER", ".cache/redis-5.0/redis-server")


@pytest.fixture(scope="session")
def sentinel_setup() -> Iterator[LocalSentinel]:
    """A primary, its replica and three sentinels for the session (tests that kill one of them
    start their own)."""
    with LocalSentinel() as setup:
        yield setup

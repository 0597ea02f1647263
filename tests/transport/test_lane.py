"""The lane: the hot path's pipelined connection, against real servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

import streamq
from streamq.testing.localserver import LocalRedis
from streamq.transport.lane import Lane, pack

pytestmark = pytest.mark.anyio


@pytest.fixture
async def lane(redis: aioredis.Redis) -> AsyncIterator[Lane]:
    lane = Lane(redis.connection_pool.make_connection, timeout=10)
    try:
        yield lane
    finally:
        lane.close()


@pytest.fixture
def own_server() -> Iterator[LocalRedis]:
    with LocalRedis() as server:
        yield server


async def test_concurrent_callers_each_get_their_own_reply(lane: Lane) -> None:
    replies: dict[int, Any] = {}

    async def call(n: int) -> None:
        if n % 7 == 0:  # error replies in the middle must not shift the others
            with pytest.raises(ResponseError, match="unknown command"):
                await lane.execute("NO-SUCH-COMMAND", n)
            replies[n] = "error"
        else:
            replies[n] = await lane.execute("ECHO", f"reply-{n}")

    async with anyio.create_task_group() as tg:
        for n in range(500):
            tg.start_soon(call, n)
    for n in range(500):
        assert replies[n] == ("error" if n % 7 == 0 else f"reply-{n}".encode())


async def test_a_cancelled_caller_does_not_shift_the_replies(lane: Lane, queue_name: str) -> None:
    with anyio.move_on_after(0.05):
        # Blocks in Redis for 0.3 s: its caller gives up first, its reply comes later.
        await lane.execute("BLPOP", f"{queue_name}:empty", "0.3")
    assert await lane.execute("ECHO", "after") == b"after"


async def test_error_replies_are_redis_py_exceptions(lane: Lane) -> None:
    with pytest.raises(NoScriptError):
        await lane.execute("EVALSHA", "0" * 40, 0)
    assert await lane.execute("SET", "lane-key", 5) == b"OK"
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await lane.execute("LPUSH", "lane-key", "x")


async def test_large_commands_and_replies(lane: Lane, queue_name: str) -> None:
    big = os.urandom(8 * 1024 * 1024)
    assert await lane.execute("SET", queue_name, big) == b"OK"
    assert await lane.execute("GET", queue_name) == big
    await lane.execute("DEL", queue_name)


async def test_a_killed_connection_fails_its_commands_then_reconnects(
    lane: Lane, redis: aioredis.Redis, queue_name: str
) -> None:
    client_id = await lane.execute("CLIENT", "ID")
    with anyio.fail_after(5):
        blocked = anyio.Event()

        async def blocked_read() -> None:
            with pytest.raises(RedisConnectionError, match="lost"):
                blocked.set()
                await lane.execute("BLPOP", f"{queue_name}:empty", "5")

        async with anyio.create_task_group() as tg:
            tg.start_soon(blocked_read)
            await blocked.wait()
            await anyio.sleep(0.05)
            assert await redis.client_kill_filter(_id=client_id) == 1
    assert await lane.execute("ECHO", "again") == b"again"
    assert await lane.execute("CLIENT", "ID") != client_id


async def test_a_stalled_server_times_out_instead_of_blocking_forever(
    own_server: LocalRedis,
) -> None:
    client = aioredis.Redis.from_url(own_server.url, protocol=2)
    lane = Lane(client.connection_pool.make_connection, timeout=0.5)
    try:
        assert await lane.execute("PING") == b"PONG"
        os.kill(own_server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with anyio.fail_after(5), pytest.raises(RedisTimeoutError, match=r"within 0\.5s"):
                await lane.execute("PING")
            assert 0.4 < time.monotonic() - started < 2
        finally:
            os.kill(own_server.pid, signal.SIGCONT)
        assert await lane.execute("PING") == b"PONG"  # on a new connection
    finally:
        lane.close()
        await client.aclose()


@pytest.mark.parametrize("version", ["system", "6.2"])
async def test_a_server_that_turned_replica_is_left_for_a_new_connection(
    version: str, queue_name: str
) -> None:
    """A READONLY reply (a demoted primary): the next command reconnects, to wherever the
    client's pool points then (under Sentinel, the new primary)."""
    binary = None
    if version == "6.2":
        binary = os.environ.get("STREAMQ_REDIS_62_SERVER", ".cache/redis-6.2/redis-server")
        if not os.access(binary, os.X_OK):
            pytest.fail(f"no redis-server at {binary}: run `make test`, which builds it")
    with LocalRedis(binary=binary) as server, LocalRedis(binary=binary) as primary:
        client = aioredis.Redis.from_url(server.url, protocol=2)
        lane = Lane(client.connection_pool.make_connection, timeout=5)
        try:
            client_id = await lane.execute("CLIENT", "ID")
            await client.replicaof("127.0.0.1", primary.port)
            with pytest.raises(ReadOnlyError):
                await lane.execute("SET", queue_name, 1)
            assert await lane.execute("CLIENT", "ID") != client_id
            # A script's write: Redis 6.2 says READONLY inside the script's error.
            client_id = await lane.execute("CLIENT", "ID")
            with pytest.raises(ResponseError, match="read only replica"):
                await lane.execute("EVAL", "return redis.call('SET', KEYS[1], 1)", 1, queue_name)
            assert await lane.execute("CLIENT", "ID") != client_id
        finally:
            lane.close()
            await client.aclose()


async def test_a_closed_lane_refuses_commands(redis: aioredis.Redis) -> None:
    lane = Lane(redis.connection_pool.make_connection, timeout=5)
    assert await lane.execute("PING") == b"PONG"
    lane.close()
    with pytest.raises(RedisConnectionError, match="closed"):
        await lane.execute("PING")


async def test_a_lane_refuses_a_client_that_would_speak_resp3(own_server: LocalRedis) -> None:
    # redis-py 8 hand-shakes RESP3 unless protocol=2 is given; the lane parses RESP2 replies.
    client = aioredis.Redis.from_url(own_server.url, protocol=3)
    lane = Lane(client.connection_pool.make_connection, timeout=5)
    try:
        with pytest.raises(ValueError, match="protocol=2"):
            await lane.execute("PING")
    finally:
        lane.close()
        await client.aclose()


def test_pack_refuses_what_redis_cannot_take() -> None:
    assert pack(("SET", b"k", 1, 0.5)) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$3\r\n0.5\r\n"
    with pytest.raises(TypeError, match="cannot send list"):
        pack(("SET", [1]))  # type: ignore[arg-type]


async def test_password_and_database_from_the_url_hold_on_the_lanes(queue_name: str) -> None:
    # The lanes take over connections redis-py hand-shook: AUTH and SELECT must carry over.
    with LocalRedis(extra_args=["--requirepass", "s3cret"]) as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        async with streamq.QueueManager(url) as qm:
            queue = qm.get_queue(queue_name)
            consumer = await queue.consume(lambda job: job.data * 2)
            assert await queue.wait_for(await queue.enqueue(21), timeout=10) == 42
            await consumer.stop()
        assert server.port is not None
        db3 = aioredis.Redis(port=server.port, password="s3cret", db=3, protocol=2)
        db0 = aioredis.Redis(port=server.port, password="s3cret", db=0, protocol=2)
        try:
            assert await db3.exists(f"streamq:{{{queue_name}}}:completed") == 1
            assert await db0.dbsize() == 0
        finally:
            await db3.aclose()
            await db0.aclose()


async def test_scripts_are_loaded_again_after_script_flush(
    qm: streamq.QueueManager, redis: aioredis.Redis, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    consumer = await queue.consume(lambda job: job.data)
    assert await queue.wait_for(await queue.enqueue("one"), timeout=10) == "one"
    await redis.script_flush()
    assert await queue.wait_for(await queue.enqueue("two"), timeout=10) == "two"
    await consumer.stop()


class FakeServer:
    """A TCP server standing in for a Redis that hangs or answers late."""

    def __init__(self, answer_after: float | None) -> None:
        self.answer_after = answer_after
        self.port = 0
        self.connected = asyncio.Event()
        self.hung_up = asyncio.Event()  # a client closed its connection

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if self.answer_after is not None:
                    await asyncio.sleep(self.answer_after)
                    commands = sum(line.startswith(b"*") for line in data.split(b"\r\n"))
                    writer.write(b"+OK\r\n" * commands)
        self.hung_up.set()
        writer.close()


@contextlib.asynccontextmanager
async def _fake_server(answer_after: float | None) -> AsyncIterator[FakeServer]:
    fake = FakeServer(answer_after)
    server = await asyncio.start_server(fake.accept, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def silent_server() -> AsyncIterator[FakeServer]:
    """Accepts connections and never answers (a hung Redis)."""
    async with _fake_server(answer_after=None) as server:
        yield server


@pytest.fixture
async def slow_server() -> AsyncIterator[FakeServer]:
    """Answers every command with +OK, each 0.3 s late."""
    async with _fake_server(answer_after=0.3) as server:
        yield server


async def test_callers_waiting_on_one_connect_attempt_fail_together(
    silent_server: FakeServer,
) -> None:
    port = silent_server.port
    # As streamq's clients are made: from a URL (redis-py retries nothing then).
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{port}", protocol=2, socket_timeout=0.5, socket_connect_timeout=0.5
    )
    lane = Lane(client.connection_pool.make_connection, timeout=0.5)
    failed_after: list[float] = []

    async def ping() -> None:
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await lane.execute("PING")
        failed_after.append(time.monotonic() - started)

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(ping)
        # One attempt shared by all four, not four attempts one after another.
        assert len(failed_after) == 4 and max(failed_after) < 1.2
    finally:
        lane.close()
        await client.aclose()


async def test_closing_a_lane_while_it_connects_leaves_no_connection(
    slow_server: FakeServer,
) -> None:
    port = slow_server.port
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}", protocol=2, socket_timeout=5)
    lane = Lane(client.connection_pool.make_connection, timeout=5)
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def ping() -> None:
                    with pytest.raises(RedisConnectionError, match="closed"):
                        await lane.execute("PING")

                tg.start_soon(ping)
                await slow_server.connected.wait()
                lane.close()  # the handshake is still being answered
            # The server sees the connection hang up: nothing was left open.
            await slow_server.hung_up.wait()
    finally:
        await client.aclose()


@pytest.mark.parametrize("rounds", [100])
async def test_a_command_right_after_the_server_hung_up_goes_on_a_new_connection(
    lane: Lane, redis: aioredis.Redis, rounds: int
) -> None:
    for _ in range(rounds):
        client_id = await lane.execute("CLIENT", "ID")
        assert await redis.client_kill_filter(_id=client_id) == 1
        assert await lane.execute("PING") == b"PONG"

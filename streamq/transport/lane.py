"""A lean, pipelined connection for the hot path: every script call and the consumers' reads.

redis-py's pool costs about as much per command as Redis spends on it (a connection checked out
and back in, response callbacks), and streamq's hot path is one command per job or per batch,
so that cost was the client's share of every round trip. A lane is one connection that redis-py
opens and hand-shakes (TLS, AUTH, SELECT and the client name stay redis-py's), then taken over
and spoken to directly: a command is one write and one future, hiredis parses the replies, and
they answer the futures in order, so concurrent callers pipeline on the one socket.

A lane connects on first use and again after its connection is lost; the commands that were on
their way fail with redis-py's ``ConnectionError`` (or ``TimeoutError`` when Redis stopped
answering), and error replies are redis-py's exceptions, so callers handle one family of errors.
A READONLY reply means the server is now a replica (a demoted primary): the lane stops using that
connection, and the next command connects again, to whatever server the client's pool names then.
Under Sentinel the pool also knows the primary's address, and a lane whose connection goes
elsewhere (a failover happened) reconnects before its next command (``streamq.transport.sentinel``).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import hiredis
import redis.asyncio as aioredis
from redis._parsers import BaseParser
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ("Command", "CommandLane", "ConnectionFactory", "Lane", "LanePool", "lane_to", "pack")

Arg = bytes | str | int | float
Command = tuple[Arg, ...]
#: Opens a redis-py connection (not yet connected) to the server a lane speaks to.
ConnectionFactory = Callable[[], Connection]
Address = tuple[Any, Any]


class CommandLane(Protocol):
    """Where the hot path sends its commands: a :class:`Lane`, or on a Redis Cluster a lane
    per node, each command routed by its key (``streamq.transport.cluster``)."""

    async def execute(self, *args: Arg) -> Any: ...

    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        """Commands sent together on one connection (of one node), replies in order; the first
        error reply is raised once every reply is in."""
        ...

    def disconnect(self) -> None: ...

    def close(self) -> None: ...


def pack(args: tuple[Arg, ...]) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis: {arg!r}")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _error(message: str) -> RedisError:
    """The redis-py exception for an error reply (NOSCRIPT, READONLY, BUSY, NOGROUP ...)."""
    error: RedisError = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error


def _is_readonly(message: str) -> bool:
    """The reply of a write sent to a replica (Redis 7 says so first; 6.2 inside a script's
    error)."""
    return message.startswith("READONLY ") or "-READONLY " in message


class _Protocol(asyncio.Protocol):
    """Replies answer the waiting futures in the order the commands went out."""

    def __init__(self, transport: asyncio.Transport, timeout: float | None) -> None:
        self.transport = transport
        self.writer: asyncio.StreamWriter | None = None
        self.timeout = timeout
        self.lost: RedisError | None = None
        #: (host, port) the connection went to.
        self.address: Address | None = None
        #: The server answered READONLY: it is a replica now, and no new command goes to it.
        self.demoted = False
        self._parser = hiredis.Reader()
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._sent_at: collections.deque[float] = collections.deque()
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None
        self._writable: asyncio.Event | None = None  # set while the transport's buffer is full

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost is not None:
            raise type(self.lost)(*self.lost.args)
        future = self._loop.create_future()
        self._waiting.append(future)
        self._sent_at.append(self._loop.time())
        self.transport.write(command)
        if self._watchdog is None and self.timeout is not None:
            self._watchdog = self._loop.call_later(self.timeout, self._check_stalled)
        return future

    def send_many(self, commands: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Several commands in one write; their replies come back in order."""
        if self.lost is not None:
            raise type(self.lost)(*self.lost.args)
        futures = [self._loop.create_future() for _ in commands]
        self._waiting.extend(futures)
        self._sent_at.extend([self._loop.time()] * len(commands))
        self.transport.write(b"".join(commands))
        if self._watchdog is None and self.timeout is not None:
            self._watchdog = self._loop.call_later(self.timeout, self._check_stalled)
        return futures

    @property
    def usable(self) -> bool:
        # Closing: the server hung up and connection_lost has not run yet (asyncio runs it a
        # loop turn later); a command written now would be dropped.
        return self.lost is None and not self.demoted and not self.transport.is_closing()

    async def drain(self) -> None:
        while self._writable is not None and self.lost is None:
            await self._writable.wait()

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            while (reply := self._parser.gets()) is not False:
                self._sent_at.popleft()
                future = self._waiting.popleft()
                error = isinstance(reply, hiredis.ReplyError)
                if error and _is_readonly(str(reply)):
                    self.demoted = True
                if future.done():
                    continue  # its caller was cancelled: the reply is dropped
                if error:
                    future.set_exception(_error(str(reply)))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:
            self._abort(RedisConnectionError(f"garbled reply from Redis ({exc!r})"))

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f" ({exc})" if exc else ""
        self._fail_all(RedisConnectionError(f"the connection to Redis was lost{reason}"))

    def pause_writing(self) -> None:
        self._writable = asyncio.Event()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()
            self._writable = None

    def _check_stalled(self) -> None:
        """Fail everything when the oldest command has waited past the timeout: a stalled
        connection must not block its callers forever."""
        self._watchdog = None
        if not self._sent_at or self.timeout is None:
            return
        waited = self._loop.time() - self._sent_at[0]
        if waited >= self.timeout:
            self._abort(RedisTimeoutError(f"Redis did not answer within {self.timeout:g}s"))
        else:
            self._watchdog = self._loop.call_later(self.timeout - waited, self._check_stalled)

    def _abort(self, error: RedisError) -> None:
        self._fail_all(error)
        self.transport.abort()

    def _fail_all(self, error: RedisError) -> None:
        if self.lost is None:
            self.lost = error
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._sent_at.clear()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
        self.resume_writing()


def lane_to(client: aioredis.Redis) -> Lane:
    """A lane to the server ``client`` talks to, with the client's socket timeout."""
    pool = client.connection_pool
    timeout = pool.connection_kwargs.get("socket_timeout")
    primary: Callable[[], Address | None] | None = None
    if isinstance(pool, SentinelConnectionPool):
        primary = lambda: pool.master_address  # noqa: E731
    return Lane(pool.make_connection, None if timeout is None else float(timeout), primary)


class Lane:
    """One pipelined connection, opened by ``new_connection`` (redis-py hand-shakes it).

    ``timeout`` bounds how long a command may wait for its reply (longer than any blocking read
    sent on the lane); ``None`` waits as long as it takes. When it passes, every command on the
    lane fails with it, as on any connection that stops answering: whether Redis ran them is
    unknown.
    """

    def __init__(
        self,
        new_connection: ConnectionFactory,
        timeout: float | None,
        primary: Callable[[], Address | None] | None = None,
    ) -> None:
        self._new_connection = new_connection
        self._timeout = timeout
        #: Under Sentinel: where the primary is now, as far as the client knows.
        self._primary = primary
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._closed = False

    async def execute(self, *args: Arg) -> Any:
        command = pack(args)
        protocol = self._protocol
        if protocol is None or not self._current(protocol):
            protocol = await self._connect()
        future = protocol.send(command)
        try:
            await protocol.drain()
        except BaseException:
            future.cancel()  # its reply, or its error, is then dropped
            raise
        return await future

    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        protocol = self._protocol
        if protocol is None or not self._current(protocol):
            protocol = await self._connect()
        futures = protocol.send_many([pack(command) for command in commands])
        try:
            await protocol.drain()
            replies = await asyncio.gather(*futures, return_exceptions=True)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    def close(self) -> None:
        """Close the connection (a blocking read on it ends at once)."""
        self._closed = True
        self.disconnect()

    def _current(self, protocol: _Protocol) -> bool:
        """Whether commands may go on this connection: it is up, and under Sentinel it goes to
        the primary the client last heard of (a failover moves it)."""
        if not protocol.usable:
            return False
        primary = None if self._primary is None else self._primary()
        return primary is None or primary == protocol.address

    def disconnect(self) -> None:
        """Drop the connection; the next command opens a new one."""
        if self._protocol is not None:
            self._protocol.transport.close()
            self._protocol = None

    async def _connect(self) -> _Protocol:
        """The lane's connection, opened by one attempt that every caller waiting shares: one
        failure fails them all at once rather than one timeout after another."""
        if self._closed:
            raise RedisConnectionError("the connection was closed")
        if self._protocol is not None and self._current(self._protocol):
            return self._protocol  # another caller's attempt connected meanwhile
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Protocol:
        protocol = await self._take_over()
        if self._closed:  # closed while connecting: nobody may use this connection
            protocol.transport.close()
            raise RedisConnectionError("the connection was closed")
        self.disconnect()  # the broken connection this one replaces
        self._protocol = protocol
        return protocol

    def _connected(self, attempt: asyncio.Task[_Protocol]) -> None:
        self._connecting = None
        if not attempt.cancelled():
            attempt.exception()  # retrieved: every caller may have given up waiting

    async def _take_over(self) -> _Protocol:
        connection = self._new_connection()
        if int(getattr(connection, "protocol", None) or 2) != 2:
            # redis-py 8 speaks RESP3 unless told otherwise; the replies here are parsed as RESP2.
            raise ValueError("a lane speaks RESP2: open its redis-py client with protocol=2")
        try:
            await connection.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            await connection.disconnect()
            raise
        # redis-py keeps its stream pair privately; after the handshake nothing is buffered in
        # them, and the transport is handed to our protocol. Forgetting the pair keeps redis-py
        # from closing the transport when its connection object is collected; the protocol
        # keeps the writer, which would close the transport when collected too.
        reader, writer = connection._reader, connection._writer
        if reader is None or writer is None:
            raise RedisConnectionError("redis-py opened no stream for the connection")
        if reader.at_eof() or len(getattr(reader, "_buffer", b"")):
            await connection.disconnect()
            raise RedisConnectionError("unexpected data after the connection's handshake")
        transport = cast("asyncio.Transport", writer.transport)
        connection._reader = connection._writer = None
        protocol = _Protocol(transport, self._timeout)
        protocol.writer = writer
        protocol.address = (getattr(connection, "host", None), getattr(connection, "port", None))
        transport.set_protocol(protocol)
        return protocol


class LanePool:
    """Up to ``size`` lanes; each call (or group of commands) goes over one that is idle.

    For commands that hold their connection, such as ``WAIT``: on a shared lane every call would
    queue behind the one before it.
    """

    def __init__(self, new_lane: Callable[[], CommandLane], size: int) -> None:
        self._new_lane = new_lane
        self._idle: list[CommandLane] = []
        self._lanes: list[CommandLane] = []
        self._free = asyncio.Semaphore(size)

    async def execute(self, *args: Arg) -> Any:
        async with self._free:
            lane = self._take()
            try:
                return await lane.execute(*args)
            finally:
                self._idle.append(lane)

    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        async with self._free:
            lane = self._take()
            try:
                return await lane.execute_many(commands)
            except asyncio.CancelledError:
                lane.disconnect()  # what it sent may still hold the connection
                raise
            finally:
                self._idle.append(lane)

    def disconnect(self) -> None:
        for lane in self._lanes:
            lane.disconnect()

    def close(self) -> None:
        for lane in self._lanes:
            lane.close()

    def _take(self) -> CommandLane:
        if self._idle:
            return self._idle.pop()
        lane = self._new_lane()
        self._lanes.append(lane)
        return lane

"""The entry point: connects to Redis, hands out queues, runs consumers and schedulers."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import anyio
from anyio.abc import TaskGroup
from redis.asyncio.cluster import RedisCluster

from .cluster import ClusterLane
from .connection import SOCKET_TIMEOUT, Client, connect, resolve_url
from .context import ConsumerContext
from .errors import InvalidArgument, StreamqError
from .hooks import Hooks, check_hooks
from .inspection import InspectScripts
from .keys import registry_key, validate_name
from .lane import CommandLane, LanePool, lane_to
from .queue import Queue
from .scheduler import Scheduler, WakeListener
from .scripts import Scripts
from .sentinel import SentinelRedis
from .serialization import DEFAULT_MAX_PAYLOAD_BYTES
from .validation import check_count, check_non_negative, check_seconds

if TYPE_CHECKING:
    from .consumer import Consumer
    from .consumer_options import ConsumerOptions
    from .queue import Handler

__all__ = ("QueueManager",)

T = TypeVar("T")

DEFAULT_RESULT_TTL = 24 * 3600
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_GROUP_IDLE_TIMEOUT = 3600.0
#: Connections that durable enqueues (``min_replicas``) may wait for replicas on at once.
DURABLE_LANES = 8


@dataclass(frozen=True, slots=True)
class _Connection:
    client: Client
    #: Where every script call goes: the pipelined lane, or on a cluster a lane per primary.
    lane: CommandLane
    scripts: Scripts
    #: ``scripts``, or with ``min_replicas`` scripts on lanes of their own whose enqueues wait
    #: for the replicas (a WAIT holds its connection: nothing else may queue behind it).
    enqueue_scripts: Scripts
    inspect: InspectScripts
    tasks: TaskGroup

    def new_lane(self) -> CommandLane:
        """A lane of its own (for a consumer's blocking reads)."""
        return _lane_for(self.client)

    def close_lanes(self) -> None:
        self.lane.close()
        self.enqueue_scripts.lane.close()


def _lane_for(client: Client) -> CommandLane:
    if isinstance(client, RedisCluster):
        timeout = client.nodes_manager.connection_kwargs.get("socket_timeout")
        return ClusterLane(client, None if timeout is None else float(timeout))
    return lane_to(client)


class QueueManager:
    """Connects to Redis and runs this process's consumers.

    ``async with QueueManager(url) as qm:`` connects and checks the server; leaving the block
    stops every consumer gracefully and closes the connections. ``options`` go to the redis-py
    client (``max_connections``, ``ssl_ca_certs`` ...).

    ``min_replicas``: an enqueue returns only once that many replicas have the job (Redis
    ``WAIT``), or raises :class:`~streamq.NotReplicated` after ``replica_timeout`` seconds; so
    a failover to one of those replicas cannot lose a job that ``enqueue`` returned for.

    ``max_payload_bytes``: the largest encoded job (its data as MessagePack, plus ~20 bytes of
    metadata) that ``enqueue`` accepts; a bigger one is an :class:`~streamq.EncodeError`. A
    consumer dead-letters, without decoding, an entry over its own manager's limit (one written
    by another program): give producers and consumers the same value.

    ``hooks``: :class:`~streamq.Hooks` called as this manager's queues enqueue and its
    consumers run jobs (tracing, metrics); more with :meth:`add_hooks`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "streamq",
        instance_id: str | None = None,
        result_ttl: int = DEFAULT_RESULT_TTL,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        group_idle_timeout: float = DEFAULT_GROUP_IDLE_TIMEOUT,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        hooks: Iterable[Hooks] = (),
        **options: Any,
    ) -> None:
        self.url = resolve_url(url)
        self.prefix = validate_name(prefix, what="prefix")
        self.instance_id = validate_name(
            instance_id if instance_id is not None else _new_instance_id(), what="instance_id"
        )
        self.result_ttl = check_count(result_ttl, what="result_ttl")
        self.shutdown_grace = check_seconds(shutdown_grace, what="shutdown_grace", allow_zero=True)
        #: A consumer group with no live consumer for this long is removed, so the broadcast
        #: groups of instances that are gone do not keep the stream from being trimmed.
        self.group_idle_timeout = check_seconds(group_idle_timeout, what="group_idle_timeout")
        self.min_replicas = check_non_negative(min_replicas, what="min_replicas")
        self.replica_timeout = check_seconds(replica_timeout, what="replica_timeout")
        self.max_payload_bytes = check_count(max_payload_bytes, what="max_payload_bytes")
        socket_timeout = options.get("socket_timeout", SOCKET_TIMEOUT)
        #: How long a command may wait for its reply before its connection is taken for dead;
        #: consumers block in their reads for at most half of it.
        self.socket_timeout: float | None = (
            None if socket_timeout is None else check_seconds(socket_timeout, what="socket_timeout")
        )
        if socket_timeout is not None and self.replica_timeout >= socket_timeout:
            raise InvalidArgument(
                f"replica_timeout ({replica_timeout}s) must be shorter than socket_timeout"
                f" ({socket_timeout}s), or the wait would be taken for a dead connection"
            )
        self._options = options
        #: Read on every enqueue and job: a tuple, empty (and so false) when there are none.
        self._hooks: tuple[Hooks, ...] = check_hooks(hooks)
        self._queues: dict[str, Queue[Any]] = {}
        self._consumers: list[Consumer[Any]] = []
        self._schedulers: dict[str, Scheduler] = {}
        self._wake_listener: WakeListener | None = None
        self._consumer_numbers = itertools.count(1)
        #: Queues this manager has written to the registry (see :meth:`queues`).
        self._registered: set[str] = set()
        self._registering = anyio.Lock()
        self._connection: _Connection | None = None

    def __repr__(self) -> str:
        return f"<QueueManager {self.instance_id!r} prefix={self.prefix!r}>"

    async def __aenter__(self) -> QueueManager:
        if self._connection is not None:
            raise StreamqError("this QueueManager is already open; use one `async with` at a time")
        client = await connect(self.url, key_prefix=self.prefix, **self._options)
        lane = _lane_for(client)
        scripts = Scripts(lane, self.result_ttl)
        enqueue_scripts = scripts
        if self.min_replicas:
            lanes = LanePool(lambda: _lane_for(client), DURABLE_LANES)
            enqueue_scripts = Scripts(
                lanes, self.result_ttl,
                min_replicas=self.min_replicas, replica_timeout=self.replica_timeout,
            )  # fmt: skip
        tasks = anyio.create_task_group()
        await tasks.__aenter__()
        if isinstance(client, SentinelRedis):
            tasks.start_soon(client.follow_failovers, name="streamq sentinel failovers")
        self._connection = _Connection(
            client, lane, scripts, enqueue_scripts, InspectScripts(lane), tasks
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        connection = self._connected()
        try:
            with anyio.CancelScope(shield=True):
                await self.stop_consumers(self.shutdown_grace)
        finally:
            connection.tasks.cancel_scope.cancel()  # the schedulers
            # The block's own error goes on as it is (given to the task group, it would come out
            # wrapped in an ExceptionGroup); a cancellation is the task group's to handle.
            own_error = isinstance(exc, Exception)
            try:
                if own_error:
                    await connection.tasks.__aexit__(None, None, None)
                    suppress = False  # never swallow it
                else:
                    suppress = await connection.tasks.__aexit__(exc_type, exc, tb)
            finally:
                self._connection = None
                self._schedulers.clear()
                self._wake_listener = None
                connection.close_lanes()
                await connection.client.aclose()
        return suppress

    @property
    def hooks(self) -> tuple[Hooks, ...]:
        return self._hooks

    def add_hooks(self, *hooks: Hooks) -> None:
        """Attach more hooks; they apply at once, to running consumers too."""
        self._hooks += check_hooks(hooks)

    @overload
    def get_queue(self, name: str) -> Queue[Any]: ...
    @overload
    def get_queue(self, name: str, type: type[T]) -> Queue[T]: ...
    @overload
    def get_queue(self, name: str, type: Any) -> Queue[Any]: ...

    def get_queue(self, name: str, type: Any = Any) -> Queue[Any]:
        """The queue called ``name`` (the same object every time), typed by ``type``."""
        validate_name(name)
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(self, name, type)
        elif type is not Any and queue.type != type:
            raise InvalidArgument(
                f"queue {name!r} was already opened with type {queue.type!r}, not {type!r}:"
                " use one type per queue name"
            )
        return queue

    async def queues(self) -> list[str]:
        """The names of every queue that a manager with this prefix has enqueued to, consumed
        or scheduled on, sorted: read from a registry, not by scanning the database's keys."""
        client = self._connected().client
        names = cast("list[bytes]", await client.zrange(registry_key(self.prefix), 0, -1))
        return sorted(name.decode(errors="replace") for name in names)

    async def _register(self, queue: str) -> None:
        """Add ``queue`` to the registry (once per manager: it is never removed). Under a lock:
        the first enqueues often come together, and should not each take a connection."""
        async with self._registering:
            if queue not in self._registered:
                client = self._connected().client
                await client.zadd(registry_key(self.prefix), {queue: time.time()}, nx=True)
                self._registered.add(queue)

    async def stop_consumers(self, grace: float | None = None) -> None:
        """Stop every consumer of this manager (they finish running jobs within ``grace``)."""
        grace = self.shutdown_grace if grace is None else grace
        consumers, self._consumers = self._consumers, []
        async with anyio.create_task_group() as tg:
            for consumer in consumers:
                tg.start_soon(consumer.stop, grace)

    # -- used by Queue --------------------------------------------------------------------

    def _connected(self) -> _Connection:
        if self._connection is None:
            raise StreamqError(
                "the QueueManager is not connected: use it as `async with QueueManager(...) as qm:`"
            )
        return self._connection

    async def _start_consumer(
        self, queue: Queue[T], handler: Handler[T], options: ConsumerOptions
    ) -> Consumer[T]:
        from .consumer import Consumer

        connection = self._connected()
        scheduler = self._schedulers.get(queue.name)
        if scheduler is None:
            scheduler = self._schedulers[queue.name] = Scheduler(connection.scripts, queue._keys)
            if self._wake_listener is None:
                self._wake_listener = WakeListener(connection.client, self.prefix)
                self._wake_listener.add(scheduler)
                connection.tasks.start_soon(self._wake_listener.run, name="streamq wake-ups")
            else:
                self._wake_listener.add(scheduler)
            connection.tasks.start_soon(scheduler.run, name=f"streamq scheduler {queue.name}")
        name = f"{self.instance_id}-{next(self._consumer_numbers)}"
        context = ConsumerContext(
            queue=queue,
            keys=queue._keys,
            codec=queue._codec,
            client=connection.client,
            scripts=connection.scripts,
            new_lane=connection.new_lane,
            hooks=lambda: self._hooks,
            wake_scheduler=scheduler.wake,
            group_idle_timeout=self.group_idle_timeout,
            socket_timeout=self.socket_timeout,
        )
        consumer = Consumer(context, handler, options, name)
        await connection.tasks.start(consumer.run, name=f"streamq consumer {name}")
        self._consumers.append(consumer)
        return consumer


def _new_instance_id() -> str:
    host = re.sub(r"[{}\s]", "-", socket.gethostname())[:100] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"

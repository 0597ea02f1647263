"""The entry point: connects to Redis, hands out queues, runs consumers and schedulers."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import anyio
from redis.exceptions import RedisError

from ..errors import InvalidArgument, StreamqError
from ..ops.hooks import Hooks, check_hooks
from ..store.control import ControlScripts
from ..store.flows import FlowScripts, FlowWriter
from ..store.keys import QueueKeys, registry_key, validate_name
from ..store.scripts import Retention, Scripts
from ..store.serialization import DEFAULT_MAX_PAYLOAD_BYTES
from ..transport.cluster import lane_for
from ..transport.connection import (
    SOCKET_TIMEOUT,
    Client,
    connect,
    replica_warning,
    replicas_connected,
    resolve_url,
)
from ..transport.lane import LanePool
from ..transport.sentinel import SentinelRedis
from ..validation import check_count, check_non_negative, check_seconds
from ..worker.context import ConsumerContext
from ..worker.relay import FlowRelay
from ..worker.scheduler import Scheduler
from .background import Background
from .flows import Step, build_spec, tell_steps_enqueued
from .host import Connection
from .inspection import InspectScripts
from .notices import QueueNotices, Subscriber
from .queue import Queue
from .redis_errors import as_streamq_error

if TYPE_CHECKING:
    from ..store.serialization import Codec
    from ..worker.consumer import Consumer
    from ..worker.options import ConsumerOptions
    from .queue import Handler

__all__ = ("QueueManager",)

log = logging.getLogger("streamq")

T = TypeVar("T")

DEFAULT_RESULT_TTL = 24 * 3600
#: Finished jobs whose records a queue keeps (the newest): with the ttl alone, 1,000 jobs a
#: second held ~29 GB of records at any time.
DEFAULT_KEEP_FINISHED = 10_000
DEFAULT_KEEP_EVENTS = 10_000
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_GROUP_IDLE_TIMEOUT = 3600.0
#: Long enough that a producer merely slowed down (a stalled connection) is not undone under
#: its feet; a flow half-written by a stopped one waits this long for its consumers.
DEFAULT_FLOW_SWEEP_AFTER = 30.0
#: Connections that durable enqueues (``min_replicas``) may wait for replicas on at once.
DURABLE_LANES = 8


class QueueManager:
    """Connects to Redis and runs this process's consumers.

    ``async with QueueManager(url) as qm:`` connects and checks the server (Redis or Valkey
    6.2 or later); leaving the block stops every consumer gracefully and closes the
    connections. ``url``: ``redis://host:port/db``, ``rediss://`` (TLS), ``unix:///path``,
    ``redis+cluster://host:port[,host:port...]`` (Redis Cluster) or
    ``redis+sentinel://host:port[,...]/service_name``; None means ``$STREAMQ_REDIS_URL``,
    else ``redis://127.0.0.1:6379/0``. ``options`` go to the redis-py client
    (``max_connections``, ``socket_timeout``, ``ssl_ca_certs`` ...).

    ``prefix``: the start of every key and channel name streamq uses (managers that share one
    share queues). ``instance_id``: this manager's name, in its consumers' names and for groups
    of its own (``qm.instance_id``; random unless given). ``shutdown_grace``: the seconds
    running handlers get to finish when the block ends. ``group_idle_timeout``: seconds after
    which a consumer group with no live consumer is removed (so gone instances' groups do not
    pin the stream).

    ``min_replicas``: an enqueue returns only once that many replicas have the job (Redis
    ``WAIT``), or raises :class:`~streamq.NotReplicated` after ``replica_timeout`` seconds; so
    a failover to one of those replicas cannot lose a job that ``enqueue`` returned for.

    ``max_payload_bytes``: the largest encoded job (its data as MessagePack, plus ~20 bytes of
    metadata) that ``enqueue`` accepts; a bigger one is an :class:`~streamq.EncodeError`. A
    consumer dead-letters, without decoding, an entry over its own manager's limit (one written
    by another program): give producers and consumers the same value.

    ``hooks``: :class:`~streamq.Hooks` called as this manager's queues enqueue and its
    consumers run jobs (tracing, metrics); more with :meth:`add_hooks`.

    ``result_ttl`` (seconds) and ``keep_finished``: a finished job's record (its state, result
    or error, for ``get_job`` and ``wait_for``) is kept that long, and per queue only for the
    newest ``keep_finished`` finished jobs, so memory stays bounded however many jobs flow;
    ``get_queue`` overrides both per queue. Dead letters stay until purged.

    ``keep_events``: the lifecycle events (``Queue.events``) each queue keeps, the newest ones
    (about: the stream is trimmed in whole nodes); 0 writes none.

    ``flow_sweep_after``: seconds after which a flow whose producer stopped while enqueueing it
    (``enqueue_flow``) is finished or undone, by a manager consuming its root's queue.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "streamq",
        instance_id: str | None = None,
        result_ttl: int = DEFAULT_RESULT_TTL,
        keep_finished: int = DEFAULT_KEEP_FINISHED,
        keep_events: int = DEFAULT_KEEP_EVENTS,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        group_idle_timeout: float = DEFAULT_GROUP_IDLE_TIMEOUT,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        hooks: Iterable[Hooks] = (),
        flow_sweep_after: float = DEFAULT_FLOW_SWEEP_AFTER,
        **options: Any,
    ) -> None:
        self.url = resolve_url(url)
        self.prefix = validate_name(prefix, what="prefix")
        self.instance_id = validate_name(
            instance_id if instance_id is not None else _new_instance_id(), what="instance_id"
        )
        self.result_ttl = check_count(result_ttl, what="result_ttl")
        self.keep_finished = check_non_negative(keep_finished, what="keep_finished")
        self.keep_events = check_non_negative(keep_events, what="keep_events")
        self.shutdown_grace = check_seconds(shutdown_grace, what="shutdown_grace", allow_zero=True)
        #: A consumer group with no live consumer for this long is removed, so the broadcast
        #: groups of instances that are gone do not keep the stream from being trimmed.
        self.group_idle_timeout = check_seconds(group_idle_timeout, what="group_idle_timeout")
        self.min_replicas = check_non_negative(min_replicas, what="min_replicas")
        self.replica_timeout = check_seconds(replica_timeout, what="replica_timeout")
        self.max_payload_bytes = check_count(max_payload_bytes, what="max_payload_bytes")
        self.flow_sweep_after = check_seconds(flow_sweep_after, what="flow_sweep_after")
        socket_timeout = options.get("socket_timeout", SOCKET_TIMEOUT)
        self.socket_timeout: float | None = (
            None if socket_timeout is None else check_seconds(socket_timeout, what="socket_timeout")
        )
        """Seconds a command may wait for its reply before its connection is taken for dead
        (the ``socket_timeout`` option; None: no limit); consumers block in their reads for at
        most half of it."""
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
        #: The handler of each (queue, group) this manager consumes, with its latest consumer.
        self._handlers: dict[tuple[str, str], tuple[Handler[Any], Consumer[Any]]] = {}
        self._schedulers: dict[str, Scheduler] = {}
        #: Per queue name: its channel's messages, heard over ``_subscriber`` (started with
        #: the first scheduler or ``wait_for``).
        self._notices: dict[str, QueueNotices] = {}
        self._subscriber: Subscriber | None = None
        self._consumer_numbers = itertools.count(1)
        self._connection: Connection | None = None
        self._background: Background | None = None
        #: What the queues see of this manager.
        self._host = _Host(self)

    def __repr__(self) -> str:
        return f"<QueueManager {self.instance_id!r} prefix={self.prefix!r}>"

    async def __aenter__(self) -> QueueManager:
        if self._connection is not None:
            raise StreamqError("this QueueManager is already open; use one `async with` at a time")
        client = await connect(self.url, key_prefix=self.prefix, **self._options)
        if self.min_replicas:
            connected = await replicas_connected(client)
            if warning := replica_warning(connected, self.min_replicas, self.url):
                log.warning("%s", warning)
        lane = lane_for(client)
        scripts = Scripts(lane)
        enqueue_scripts = scripts
        if self.min_replicas:
            lanes = LanePool(lambda: lane_for(client), DURABLE_LANES)
            enqueue_scripts = Scripts(
                lanes,
                min_replicas=self.min_replicas,
                replica_timeout=self.replica_timeout,
            )
        self._connection = Connection(
            client,
            lane,
            scripts,
            enqueue_scripts,
            InspectScripts(lane),
            ControlScripts(lane, client),
            FlowScripts(lane),
        )
        self._background = await Background.open(f"streamq manager {self.instance_id}")
        if isinstance(client, SentinelRedis):
            self._background.start_soon(client.follow_failovers, "streamq sentinel failovers")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the consumers gracefully, then the background work, then close the
        connections: from whichever task leaves the block, whatever else was opened or closed
        since (the background work runs in a task of the manager's own)."""
        connection = self._connected()
        background = self._background
        try:
            with anyio.CancelScope(shield=True):
                await self.stop_consumers(self.shutdown_grace)
        finally:
            self._connection = None
            self._background = None
            self._schedulers.clear()
            self._handlers.clear()
            self._notices.clear()
            self._subscriber = None
            try:
                if background is not None:
                    with anyio.CancelScope(shield=True):
                        await background.stop()
            finally:
                connection.close_lanes()
                with anyio.CancelScope(shield=True):
                    await connection.client.aclose()

    @property
    def redis(self) -> Client:
        """The redis-py client this manager opened (for commands of your own while it is
        open); streamq's own traffic goes over lanes of its own."""
        return self._connected().client

    @property
    def hooks(self) -> tuple[Hooks, ...]:
        """The hooks attached (``hooks=``, then :meth:`add_hooks`'s), in the order called."""
        return self._hooks

    def add_hooks(self, *hooks: Hooks) -> None:
        """Attach more hooks; they apply at once, to running consumers too."""
        self._hooks += check_hooks(hooks)

    @overload
    def get_queue(
        self,
        name: str,
        *,
        result_ttl: int | None = None,
        keep_finished: int | None = None,
    ) -> Queue[Any]: ...
    @overload
    def get_queue(
        self,
        name: str,
        type: type[T],
        *,
        result_ttl: int | None = None,
        keep_finished: int | None = None,
    ) -> Queue[T]: ...
    @overload
    def get_queue(
        self,
        name: str,
        type: Any,
        *,
        result_ttl: int | None = None,
        keep_finished: int | None = None,
    ) -> Queue[Any]: ...

    def get_queue(
        self,
        name: str,
        type: Any = Any,
        *,
        result_ttl: int | None = None,
        keep_finished: int | None = None,
    ) -> Queue[Any]:
        """The queue called ``name`` (the same object every time): 1-200 characters without
        ``{``, ``}`` or whitespace, else a :class:`ValueError`. ``type`` checks its jobs' data
        (a msgspec Struct, a pydantic model or any type msgspec handles; ``Any`` accepts
        all), one type per name. ``result_ttl`` and ``keep_finished`` override the manager's
        for its finished jobs, given the first time only."""
        validate_name(name)
        queue = self._queues.get(name)
        if queue is None:
            retention = self._retention(result_ttl, keep_finished)
            queue = self._queues[name] = Queue(self._host, name, type, retention)
        elif type is not Any and queue.type != type:
            raise InvalidArgument(
                f"queue {name!r} was already opened with type {queue.type!r}, not {type!r}:"
                " use one type per queue name"
            )
        elif (result_ttl, keep_finished) != (None, None) and queue.retention != self._retention(
            result_ttl, keep_finished
        ):
            raise InvalidArgument(
                f"queue {name!r} was already opened with result_ttl={queue.retention.ttl} and"
                f" keep_finished={queue.retention.keep}: give them the first time only"
            )
        return queue

    def _retention(self, result_ttl: int | None, keep_finished: int | None) -> Retention:
        """The manager's retention, with what a ``get_queue`` call overrides."""
        return Retention(
            ttl=check_count(
                self.result_ttl if result_ttl is None else result_ttl, what="result_ttl"
            ),
            keep=check_non_negative(
                self.keep_finished if keep_finished is None else keep_finished,
                what="keep_finished",
            ),
            events=self.keep_events,
        )

    async def enqueue_flow(self, step: Step) -> str:
        """Enqueue a flow: ``step`` and its children, each a job of its own queue, a parent
        running once all its children completed (``streamq.chain``, ``streamq.group``).
        Returns the root step's id. The whole tree is enqueued or none of it, also when its
        queues live on different nodes of a cluster; with the root's ``job_id`` held by an
        unfinished job, nothing is enqueued (a flow is deduplicated by its root id)."""
        spec, now = await build_spec(step, self._encode_step)
        try:
            created = await self._flow_writer().create(spec, now)
        except RedisError as exc:
            raise as_streamq_error(
                exc,
                self.prefix,
                f"enqueue_flow {spec.root.id!r}",
                "the flow may be half-written: a consumer of its root's queue finishes or"
                " undoes it within a minute; enqueue it again (deduplicated by its root id)",
            ) from exc
        if self._hooks:
            tell_steps_enqueued(self._hooks, spec, now, created)
        return spec.root.id

    def _flow_writer(self) -> FlowWriter:
        return FlowWriter(
            self._connected().flows,
            lambda name: QueueKeys(self.prefix, name),
            self.keep_events,
            round(self.flow_sweep_after * 1000),
        )

    async def _encode_step(
        self, queue: str, job_id: str, data: Any, priority: int, now: float
    ) -> bytes:
        return await self.get_queue(queue).payload_for(
            data, priority=priority, enqueued_at=now, job_id=job_id
        )

    async def queues(self) -> list[str]:
        """The names of every queue that a manager with this prefix has enqueued to, consumed
        or scheduled on, sorted: read from a registry, not by scanning the database's keys."""
        client = self._connected().client
        names = cast("list[bytes]", await client.zrange(registry_key(self.prefix), 0, -1))
        return sorted(name.decode(errors="replace") for name in names)

    async def _register(self, queue: str) -> None:
        """Add ``queue`` to the registry (removed when the queue is deleted; a queue asks once)."""
        client = self._connected().client
        await client.zadd(registry_key(self.prefix), {queue: time.time()}, nx=True)

    async def _unregister(self, queue: str) -> None:
        client = self._connected().client
        await client.zrem(registry_key(self.prefix), queue)

    async def stop_consumers(self, grace: float | None = None) -> None:
        """Stop every consumer of this manager: they finish running jobs within ``grace``
        seconds (None: the manager's ``shutdown_grace``), then cancel the rest, which stay
        owed and are delivered again later."""
        grace = self.shutdown_grace if grace is None else grace
        consumers, self._consumers = self._consumers, []
        async with anyio.create_task_group() as tg:
            for consumer in consumers:
                tg.start_soon(consumer.stop, grace)

    # -- what queues see of the manager (through _Host) ---------------------------------

    def _connected(self) -> Connection:
        if self._connection is None:
            raise StreamqError(
                "the QueueManager is not connected: use it as `async with QueueManager(...) as qm:`"
            )
        return self._connection

    async def _notices_of(self, keys: QueueKeys) -> QueueNotices:
        """The queue's channel as this manager hears it, subscribed to from now on."""
        notices = self._notices.get(keys.queue)
        if notices is not None:
            return notices
        connection = self._connected()
        background = self._background
        assert background is not None  # open: set with the connection
        if self._subscriber is None:
            self._subscriber = Subscriber(connection.client, self.prefix)
            background.start_soon(self._subscriber.run, "streamq notices")
        notices = self._notices[keys.queue] = QueueNotices(self._subscriber)
        await self._subscriber.route(keys.wake.encode(), notices)
        return notices

    async def _start_consumer(
        self,
        queue: Queue[T],
        keys: QueueKeys,
        codec: Codec[T],
        handler: Handler[T],
        options: ConsumerOptions,
    ) -> Consumer[T]:
        from ..worker.consumer import Consumer

        connection = self._connected()
        background = self._background
        assert background is not None  # open: set with the connection
        consuming = self._handlers.get((queue.name, options.group))
        if consuming is not None and consuming[1].running and consuming[0] != handler:
            raise InvalidArgument(
                f"queue {queue.name!r}: group {options.group!r} is already consumed here by"
                f" {_name_of(consuming[0])}, so {_name_of(handler)} would get only some of its"
                " jobs, at random: give one of them another consumer_group (each group gets"
                " every job), or consume with one handler that dispatches on the job's data"
            )
        scheduler = self._schedulers.get(queue.name)
        if scheduler is None:
            scheduler = self._schedulers[queue.name] = Scheduler(
                connection.scripts, keys, queue.retention.events
            )
            (await self._notices_of(keys)).on_due(scheduler.wake)
            background.start_soon(scheduler.run, f"streamq scheduler {queue.name}")
            relay = FlowRelay(
                connection.flows,
                self._flow_writer(),
                keys,
                self.instance_id,
                retention_of=lambda name: self.get_queue(name).retention,
                cancel=lambda name, job_id: self.get_queue(name).cancel(job_id),
            )
            (await self._notices_of(keys)).on_flow(relay.wake)
            background.start_soon(relay.run, f"streamq flow relay {queue.name}")
        name = f"{self.instance_id}-{next(self._consumer_numbers)}"
        context = ConsumerContext(
            queue=queue,
            keys=keys,
            codec=codec,
            client=connection.client,
            scripts=connection.scripts,
            control=connection.control,
            notices=await self._notices_of(keys),
            new_lane=connection.new_lane,
            hooks=lambda: self._hooks,
            wake_scheduler=scheduler.wake,
            group_idle_timeout=self.group_idle_timeout,
            socket_timeout=self.socket_timeout,
            retention=queue.retention,
            manager=self,
        )
        consumer = Consumer(context, handler, options, name)
        await background.start(consumer.run, f"streamq consumer {name}")
        self._consumers.append(consumer)
        self._handlers[queue.name, options.group] = (handler, consumer)
        return consumer


class _Host:
    """The manager as its queues see it (:class:`~streamq.client.host.QueueHost`)."""

    __slots__ = ("_manager",)

    def __init__(self, manager: QueueManager) -> None:
        self._manager = manager

    @property
    def prefix(self) -> str:
        return self._manager.prefix

    @property
    def max_payload_bytes(self) -> int:
        return self._manager.max_payload_bytes

    @property
    def hooks(self) -> tuple[Hooks, ...]:
        return self._manager.hooks

    def connection(self) -> Connection:
        return self._manager._connected()

    def queue(self, name: str) -> Queue[Any]:
        return self._manager.get_queue(name)

    async def register(self, queue: str) -> None:
        await self._manager._register(queue)

    async def unregister(self, queue: str) -> None:
        await self._manager._unregister(queue)

    async def notices(self, keys: QueueKeys) -> QueueNotices:
        return await self._manager._notices_of(keys)

    async def start_consumer(
        self,
        queue: Queue[T],
        keys: QueueKeys,
        codec: Codec[T],
        handler: Handler[T],
        options: ConsumerOptions,
    ) -> Consumer[T]:
        return await self._manager._start_consumer(queue, keys, codec, handler, options)


def _name_of(handler: object) -> str:
    name = getattr(handler, "__qualname__", None)
    return repr(name.rpartition("<locals>.")[2] if isinstance(name, str) else handler)


def _new_instance_id() -> str:
    host = re.sub(r"[{}\s]", "-", socket.gethostname())[:100] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"

"""Messages from Redis to this process, over one pub/sub connection per manager.

Each queue has one channel (``QueueKeys.wake``) that the scripts publish to: ``due`` when an
enqueue adds an earlier due time (it wakes the queue's scheduler), ``flow`` when a flow step
finished (it wakes the queue's flow relay), ``finished<TAB>job id``
when a job that a ``wait_for`` registered on finishes, and for the queue's consumers
``cancel<TAB>entry id`` (a job they may be running was cancelled), ``paused``, ``resumed`` and
``slot<TAB>group`` (a global-concurrency slot was freed).
A :class:`Subscriber` holds the manager's one subscription and hands each channel's messages
to that queue's :class:`QueueNotices`, which wakes the scheduler, the waiting calls or the
consumers: so any number of waiters cost no connection of their own, and no command until
their job finishes.

Pub/sub delivers at most once: a message published while the subscription is not in place is
gone. So each (re)subscription, once Redis has confirmed it, wakes everything listening on the
channel to look again (the scheduler steps, each waiter reads its job's state once): whatever
finished before that is read, whatever finishes after is published to a subscriber in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, RedisError

from ..transport.acl import is_denied
from ..transport.connection import Client
from ..worker.outage import OutagePolicy

__all__ = ("JobWatch", "QueueNotices", "Subscriber")

#: What the scripts publish (store/lua/enqueue.lua, recurring_set.lua and _lib.lua's notify).
DUE = b"due"
FINISHED = b"finished"
#: A flow step of the queue finished: its parent is told through the queue's outbox.
FLOW = b"flow"
#: ``outcome<TAB>state<TAB>detail length<TAB>detail job id``: a finish with its result or error.
OUTCOME = b"outcome"
#: What the consumers hear (store/lua/cancel.lua, pause.lua).
FOR_CONSUMERS = frozenset((b"cancel", b"paused", b"resumed", b"slot"))
#: The pauses before subscribing again after a lost connection, doubling up to 5 s.
RESUBSCRIBE_PAUSES = (1.0, 2.0, 4.0, 5.0)
#: How long one read of the subscription waits for a message before it looks for channels that
#: the listening task has still to subscribe to (new channels are subscribed at once; this is
#: the safety net).
LISTEN_SLICE = 1.0

#: Called with each message of a channel, and with None when some may have been missed.
Route = Callable[[bytes | None], None]


class Subscriber:
    """One pub/sub connection per manager, handing each channel's messages to its route."""

    def __init__(self, client: Client, prefix: str) -> None:
        self._client = client
        self._outage = OutagePolicy(
            "subscription to the queues' channels", prefix, RESUBSCRIBE_PAUSES, then="resubscribing"
        )
        self._routes: dict[bytes, Route] = {}
        #: The connection being read, once it has subscribed; None while (re)connecting.
        self._live: aioredis.client.PubSub | None = None
        #: The channels a SUBSCRIBE was sent for on ``_live``.
        self._subscribed: set[bytes] = set()
        #: One SUBSCRIBE at a time, from the listening task or a task adding a channel.
        self._sending = anyio.Lock()
        self._first_route = anyio.Event()
        self._errors = 0  # in a row: a confirmed subscription starts the count again
        #: Why the subscription is refused (a missing ACL permission), until one is confirmed.
        self.denied: BaseException | None = None

    async def route(self, channel: bytes, on_message: Route) -> None:
        """Hand ``channel``'s messages to ``on_message`` from now on. It is also called with
        None, meaning "messages may have been missed: look again", each time Redis confirms
        the channel's subscription (the first time and after a lost connection)."""
        if channel in self._routes:
            raise ValueError(f"channel {channel!r} already has a route")
        self._routes[channel] = on_message
        self._first_route.set()
        await self._subscribe_new(self._live)

    async def run(self) -> None:
        await self._first_route.wait()
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                failure = exc
                if is_denied(exc):
                    self.denied = exc
                    for route in self._routes.values():
                        route(None)  # a waiter says so rather than wait for nothing
            finally:
                self._live = None
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await pubsub.aclose()
            self._errors = await self._outage.pause(failure, self._errors)

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        async with self._sending:
            self._subscribed = set(self._routes)
            await pubsub.subscribe(*self._subscribed)
            self._live = pubsub
        # A route added while that was sent found no live connection: subscribe it now.
        await self._subscribe_new(pubsub)
        while True:
            message = await pubsub.get_message(timeout=LISTEN_SLICE)
            if message is None:
                await self._subscribe_new(pubsub)
                continue
            route = self._routes.get(message["channel"])
            if route is None:
                continue
            if message["type"] == "message":
                route(message["data"])
            elif message["type"] == "subscribe":
                self._errors = 0
                self.denied = None
                route(None)

    async def _subscribe_new(self, pubsub: aioredis.client.PubSub | None) -> None:
        """Send a SUBSCRIBE for the routed channels ``pubsub`` lacks, if it is the live one
        (else the listening task subscribes to every channel when it connects)."""
        if pubsub is None:
            return
        async with self._sending:
            new = self._routes.keys() - self._subscribed
            if not new or pubsub is not self._live:
                return
            try:
                await pubsub.subscribe(*new)
            except (RedisError, OSError):
                return  # the listening task sees the connection fail, and subscribes again
            self._subscribed |= new


class JobWatch:
    """One ``wait_for`` call's wake-ups: :meth:`arm` before reading the job's state, then
    :meth:`wait`; a wake-up that came in between ends the wait at once."""

    __slots__ = ("_event", "outcome", "published")

    def __init__(self) -> None:
        self._event = anyio.Event()
        #: Whether the job's finish was published since :meth:`arm`: the script that published
        #: it took every waiter's registration back.
        self.published = False
        #: The job's final state and its result or error, when the message carried them.
        self.outcome: tuple[str, bytes] | None = None

    def arm(self) -> None:
        if self._event.is_set():
            self._event = anyio.Event()
        self.published = False
        self.outcome = None

    def wake(self, published: bool = False, outcome: tuple[str, bytes] | None = None) -> None:
        self.published = self.published or published
        self.outcome = outcome or self.outcome
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self._event.wait()


class QueueNotices:
    """One queue's channel, as this manager hears it: wakes its scheduler and its waiters."""

    def __init__(self, subscriber: Subscriber) -> None:
        self._subscriber = subscriber
        self._on_due: Callable[[], None] | None = None
        self._on_flow: Callable[[], None] | None = None
        self._watches: dict[str, set[JobWatch]] = {}
        self._listeners: set[Route] = set()

    def check(self) -> None:
        """Raise the ACL error that refuses the subscription, if one does (waiting could
        then last up to a re-read per job, silently)."""
        if (denied := self._subscriber.denied) is not None:
            raise NoPermissionError(*denied.args)

    def on_due(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` when something may be due sooner than planned."""
        self._on_due = wake

    def on_flow(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` when a flow step of the queue finished (and after a gap)."""
        self._on_flow = wake

    def listen(self, listener: Route) -> Callable[[], None]:
        """Hand the consumers' messages (cancel, paused, resumed: kind<TAB>detail) to
        ``listener``, and None when some may have been missed; returns how to stop."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    @contextmanager
    def watch(self, job_id: str) -> Iterator[JobWatch]:
        """Wake-ups for ``job_id``'s finish while the block runs."""
        watch = JobWatch()
        watches = self._watches.setdefault(job_id, set())
        watches.add(watch)
        try:
            yield watch
        finally:
            watches.discard(watch)
            if not watches:
                del self._watches[job_id]

    def __call__(self, message: bytes | None) -> None:
        if message is None:  # some may have been missed: everyone looks again
            if self._on_due is not None:
                self._on_due()
            if self._on_flow is not None:
                self._on_flow()
            for watches in self._watches.values():
                for watch in watches:
                    watch.wake()
            for listener in tuple(self._listeners):
                listener(None)
            return
        kind, _, job_id = message.partition(b"\t")
        if kind == OUTCOME:
            state, _, rest = job_id.partition(b"\t")
            length, _, rest = rest.partition(b"\t")
            size = int(length)
            outcome = (state.decode(), rest[:size])
            for watch in self._watches.get(rest[size:].decode(errors="replace"), ()):
                watch.wake(published=True, outcome=outcome)
            return
        if kind in FOR_CONSUMERS:
            for listener in tuple(self._listeners):
                listener(message)
            return
        if kind == FINISHED:
            for watch in self._watches.get(job_id.decode(errors="replace"), ()):
                watch.wake(published=True)
        elif kind == DUE and self._on_due is not None:
            self._on_due()
        elif kind == FLOW and self._on_flow is not None:
            self._on_flow()

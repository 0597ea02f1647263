"""What differs under Redis Sentinel: the client asks the sentinels where the primary is.

redis-py's sentinel-managed pool asks the sentinels for the primary's address whenever it opens a
connection, and so does every lane (``streamq.transport.lane``), whose connections the pool makes. A
connection that is open does not move by itself, though: after a failover of a primary that is
still running (``SENTINEL FAILOVER``, a network partition), the sentinels demote the old
primary only some ten seconds later, and whatever was written to it meanwhile is lost when it
resyncs from the new one. So a manager also listens for the sentinels' ``+switch-master`` and
moves at once (:meth:`SentinelRedis.follow_failovers`).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import anyio
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ("NoPrimaryFound", "SentinelRedis", "no_primary_message", "primary_client")

log = logging.getLogger("streamq")

#: How long a sentinel may take to answer before the next one is asked.
SENTINEL_TIMEOUT = 5.0
SWITCH_CHANNEL = "+switch-master"
LISTEN_SLICE = 1.0
MAX_PAUSE = 5.0


def primary_client(
    sentinels: list[tuple[str, int]], service_name: str, options: dict[str, Any]
) -> SentinelRedis:
    """A client for the primary of ``service_name``. ``options`` are for the data nodes, as the
    URL's credentials are; sentinels that need a password of their own get it from the
    ``sentinel_password`` option, or any connection option from ``sentinel_kwargs``."""
    # A sentinel that stalls or refuses is passed over for the next at once (redis-py's
    # default retries each one with backoff: ~7 s per sentinel that is down).
    sentinel_kwargs: dict[str, Any] = {
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": options.get("socket_connect_timeout", SENTINEL_TIMEOUT),
        **(options.pop("sentinel_kwargs", None) or {}),
    }
    sentinel_password = options.pop("sentinel_password", None)
    if sentinel_password is not None:
        sentinel_kwargs["password"] = sentinel_password
    sentinel = _Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
    # RESP2 pinned, as for every client (the replies are parsed in that shape).
    client: SentinelRedis = sentinel.master_for(
        service_name, redis_class=SentinelRedis, protocol=2, decode_responses=False, **options
    )
    return client


class NoPrimaryFound(MasterNotFoundError):
    """No sentinel named a primary for the service; ``reasons`` says why (the sentinels that
    gave each reason), and ``answered`` counts the sentinels that answered at all."""

    def __init__(self, service_name: str, errors: list[tuple[str, str]], answered: int) -> None:
        by_reason: dict[str, list[str]] = {}
        for where, reason in errors:
            by_reason.setdefault(reason, []).append(where)
        self.reasons = "; ".join(f"{', '.join(w)}: {r}" for r, w in by_reason.items())
        super().__init__(f"no primary found for {service_name!r} ({self.reasons})")
        self.service_name = service_name
        self.answered = answered


class _Sentinel(Sentinel):
    """redis-py's, with a lookup that concurrent callers cannot garble.

    redis-py moves the sentinel that answered to the front of its list by an index taken before
    an await, so concurrent lookups (every connection reconnecting after a failover) can leave
    one sentinel in the list twice and another not at all. Here the list is walked as a copy
    and reordered by identity; :meth:`prefer` puts a sentinel first (the one that announced a
    failover knows of it before the others)."""

    def prefer(self, sentinel: aioredis.Redis) -> None:
        self.sentinels[:] = [sentinel, *(s for s in self.sentinels if s is not sentinel)]

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        errors: list[tuple[str, str]] = []
        answered = 0
        for sentinel in list(self.sentinels):
            where = _where(sentinel)
            try:
                masters = cast("dict[str, Any]", await sentinel.sentinel_masters())
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                errors.append((where, str(exc)))
                continue
            except ResponseError as exc:  # not a sentinel, say
                answered += 1
                errors.append((where, str(exc)))
                continue
            answered += 1
            state = masters.get(service_name)
            if state and self.check_master_state(state, service_name):
                self.prefer(sentinel)
                return state["ip"], state["port"]
            errors.append((where, "no usable primary" if state else "unknown service"))
        raise NoPrimaryFound(service_name, errors, answered)


class SentinelRedis(aioredis.Redis):
    """A client for the primary the sentinels name, following it through failovers.

    Closing it also closes the clients redis-py keeps for asking the sentinels: they belong to
    the :class:`~redis.asyncio.sentinel.Sentinel` object, which nothing else closes (left open,
    their transports hang uvloop's ``loop.close()`` when warnings are errors, as in the tests).
    """

    #: The primary's address as :meth:`follow_failovers` last saw it.
    _primary: Any = None

    @property
    def pool(self) -> SentinelConnectionPool:
        pool: SentinelConnectionPool = self.connection_pool  # type: ignore[assignment]
        return pool

    @property
    def sentinel_manager(self) -> _Sentinel:
        """The client of the sentinels (``.sentinels``: a client for each)."""
        manager: _Sentinel = self.pool.sentinel_manager
        return manager

    @property
    def service_name(self) -> str:
        name: str = self.pool.service_name
        return name

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.aclose()

    async def follow_failovers(self) -> None:
        """Until cancelled: when a sentinel announces a failover of the service, point the pool
        at the new primary and drop the connections to the old one (lanes drop theirs before
        their next command: ``Lane`` compares their address with the pool's).

        Every sentinel is listened to: the one that ran the failover announces it at once, the
        others only once they hear of it (up to a couple of seconds later)."""
        self._primary = self.pool.master_address
        async with anyio.create_task_group() as tg:
            for sentinel in self.sentinel_manager.sentinels:
                tg.start_soon(self._listen, sentinel)

    async def _listen(self, sentinel: aioredis.Redis) -> None:
        errors = 0
        while True:
            pubsub = sentinel.pubsub()
            try:
                await pubsub.subscribe(SWITCH_CHANNEL)
                if errors:  # one may have been announced while this sentinel was not heard
                    await self._follow(sentinel)
                errors = 0
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=LISTEN_SLICE
                    )
                    if message is not None and self._names_us(message["data"]):
                        await self._follow(sentinel)
            except (RedisError, OSError) as exc:
                if not errors:  # once per outage: a sentinel may stay down for long
                    log.warning("sentinel %s: %s; listening to the others", _where(sentinel), exc)
                errors += 1
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await pubsub.aclose()
            await anyio.sleep(min(LISTEN_SLICE * 2 ** (errors - 1), MAX_PAUSE))

    def _names_us(self, data: bytes | str) -> bool:
        """``+switch-master`` says ``<service> <old ip> <old port> <new ip> <new port>``."""
        text = data.decode() if isinstance(data, bytes) else data
        return text.split(" ", 1)[0] == self.service_name

    async def _follow(self, sentinel: aioredis.Redis) -> None:
        """Ask for the primary, ``sentinel`` first (redis-py asks its list in order, and the
        others may not know of the failover yet); when it moved, drop the connections to the
        old one (redis-py drops the pool's idle ones; the ones in use, a pub/sub, here)."""
        self.sentinel_manager.prefer(sentinel)
        try:
            address = await self.pool.get_master_address()  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            # No primary yet (the failover is under way): the next announcement, or the next
            # connection that is opened, finds it.
            log.warning("sentinel: no primary for %r yet (%s)", self.service_name, exc)
            return
        if self._primary is not None and address != self._primary:
            log.warning(
                "sentinel: %r failed over from %s:%s to %s:%s",
                self.service_name,
                *self._primary,
                *address,
            )
            await self.pool.disconnect(inuse_connections=True)
        self._primary = address


def _where(sentinel: aioredis.Redis) -> str:
    kwargs = sentinel.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


def no_primary_message(exc: NoPrimaryFound, where: str) -> str:
    """What to check when no primary was found."""
    if not exc.answered:
        return (
            f"no Redis Sentinel answered at {where} ({exc.reasons}): check that the"
            " sentinels run and the URL names them; pass sentinel_password=... if they need a"
            " password"
        )
    return (
        f"the sentinels at {where} name no reachable primary for service {exc.service_name!r}"
        f" ({exc.reasons}): check"
        " that the URL's path is the name the sentinels monitor (`sentinel monitor <name>"
        " ...`); during a failover, try again in a few seconds"
    )

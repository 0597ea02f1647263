"""The hot path on a Redis Cluster: a pipelined :class:`~streamq.transport.lane.Lane` per primary.

Every key of a queue carries the queue's hash tag, so every script and every read of a queue
runs on the one primary that owns its slot. redis-py's cluster client keeps the slot map (and
all the commands off the hot path); a command here goes over the lane of its slot's primary, so
a cluster gets the same lean round trip as a single server, and commands sent together (a
script call and its ``WAIT``) share one connection.

Redirections are followed here: MOVED updates the slot map and goes again, ASK sends
``ASKING`` and the command to the node named, TRYAGAIN (a slot migrating mid-operation) waits
a little and goes again. A lost connection is raised to the caller, as on a single server (the
command may have run), after marking the map for a refresh, so the next command finds the
replica promoted in a failover.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .lane import Arg, Command, CommandLane, Lane, lane_to

if TYPE_CHECKING:
    from .connection import Client

__all__ = ("ClusterLane", "lane_for")

#: Redirections followed for one command before its error is raised.
MAX_REDIRECTS = 5
#: How long a command waits out TRYAGAIN or CLUSTERDOWN (a slot moving, a failover) before
#: the error is raised; the pauses between tries double up to the last.
SETTLE_PATIENCE = 10.0
SETTLE_PAUSES = (0.01, 0.02, 0.05, 0.1, 0.2)


class ClusterLane:
    """Routes each command (and each group of commands) to its slot's primary."""

    def __init__(self, client: RedisCluster, timeout: float | None) -> None:
        self._client = client
        self._timeout = timeout
        self._lanes: dict[str, Lane] = {}
        self._stale = False  # the slot map needs a refresh before the next command
        self._closed = False

    async def execute(self, *args: Arg) -> Any:
        (reply,) = await self._route([args], single=True)
        return reply

    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        return await self._route(commands, single=False)

    async def _route(self, commands: Sequence[Command], *, single: bool) -> list[Any]:
        slot = self._client.keyslot(_key_of(commands))
        asking: ClusterNode | None = None
        redirects = 0
        settling = _Settling()
        while True:
            node: ClusterNode | None = None
            try:
                if self._stale:
                    await self._refresh()
                node = asking or self._client.nodes_manager.get_node_from_slot(slot)
                lane = self._lane(node)
                if asking:
                    asking = None
                    replies = await lane.execute_many([("ASKING",), *commands])
                    return replies[1:]
                if single:
                    return [await lane.execute(*commands[0])]
                return await lane.execute_many(commands)
            except (MovedError, AskError) as exc:
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise
                if isinstance(exc, MovedError):  # (a MovedError is an AskError too)
                    await self._client.nodes_manager.move_slot(exc)
                else:
                    asking = self._node_at(exc.host, exc.port)
            except TryAgainError as exc:
                # A script whose keys a resharding has split over two nodes: it did not run,
                # and runs once the slot's keys are all moved.
                await settling.pause_or_raise(exc)
            except (ClusterDownError, SlotNotCoveredError) as exc:
                self._stale = True  # a failover under way: the map changes
                await settling.pause_or_raise(exc)
            except RedisClusterException as exc:
                # No node answered the refresh: the caller pauses and retries, as for any
                # lost connection.
                self._stale = True
                raise RedisConnectionError(f"the Redis Cluster is unreachable ({exc})") from exc
            except (RedisConnectionError, RedisTimeoutError, OSError):
                # The node may be a primary that died: look for its replica before the next
                # command (the lane reconnects by itself if the node comes back).
                if node is not None:
                    self._client.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
                self._stale = True
                raise

    def disconnect(self) -> None:
        for lane in self._lanes.values():
            lane.disconnect()

    def close(self) -> None:
        self._closed = True
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()

    def _lane(self, node: ClusterNode) -> Lane:
        if self._closed:
            raise RedisConnectionError("the connection was closed")
        lane = self._lanes.get(node.name)
        if lane is None:
            kwargs = node.connection_kwargs
            lane = self._lanes[node.name] = Lane(
                lambda: node.connection_class(**kwargs), self._timeout
            )
        return lane

    async def _refresh(self) -> None:
        self._stale = False
        try:
            await self._client.nodes_manager.initialize()
        except BaseException:
            self._stale = True
            raise

    def _node_at(self, host: str, port: int | str) -> ClusterNode:
        node = self._client.get_node(host=host, port=int(port))
        if node is None:
            node = ClusterNode(host, int(port), **self._client.nodes_manager.connection_kwargs)
        return node


class _Settling:
    """Pauses between the tries of a command the cluster asked to try again."""

    def __init__(self) -> None:
        self._deadline = time.monotonic() + SETTLE_PATIENCE
        self._tries = 0

    async def pause_or_raise(self, error: Exception) -> None:
        """Pause before the next try; past the patience, raise ``error``."""
        if time.monotonic() >= self._deadline:
            raise error
        await anyio.sleep(SETTLE_PAUSES[min(self._tries, len(SETTLE_PAUSES) - 1)])
        self._tries += 1


def _key_of(commands: Sequence[Command]) -> Arg:
    """The key that routes commands sent together: the first script's first key, or the
    stream a read blocks on (``SCRIPT LOAD`` and ``WAIT`` go where it goes)."""
    for command in commands:
        name = command[0]
        if name == "EVALSHA" and command[2] != 0:
            return command[3]
        if name == "XREADGROUP":
            return command[command.index("STREAMS") + 1]
    raise ValueError(f"no key to route {[c[0] for c in commands]} by on a cluster")


def lane_for(client: Client) -> CommandLane:
    """A lane of its own to the server (on a cluster, a lane per node) ``client`` talks to."""
    if isinstance(client, RedisCluster):
        timeout = client.nodes_manager.connection_kwargs.get("socket_timeout")
        return ClusterLane(client, None if timeout is None else float(timeout))
    return lane_to(client)

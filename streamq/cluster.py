"""What differs on a Redis Cluster: commands go through redis-py's cluster client.

Every key of a queue carries the queue's hash tag, so every script and every command of a queue
runs on the one node that owns its slot; the cluster client finds that node, follows MOVED and
ASK, and finds the new primary after a failover. (The lean :class:`~streamq.lane.Lane` speaks to
one server; on a cluster the client's routing is worth more than the pool's cost.)
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .lane import Arg

__all__ = ("ClusterLane",)

#: Least time between two refreshes of the slot map after connection errors.
REFRESH_EVERY = 0.5


class ClusterLane:
    """The hot path's commands on a cluster: routed by their keys."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._refreshed_at = -math.inf

    async def execute(self, *args: Arg) -> Any:
        try:
            return await self._client.execute_command(*args)
        except (RedisConnectionError, RedisTimeoutError, ClusterDownError):
            await self._refresh_slots()
            raise

    async def _refresh_slots(self) -> None:
        """Ask the cluster again who serves which slot: after a primary died, the client would
        otherwise keep sending its queue's commands to the dead node. At most twice a second;
        the caller's own retry picks the new primary up."""
        now = time.monotonic()
        if now - self._refreshed_at < REFRESH_EVERY:
            return
        self._refreshed_at = now
        with contextlib.suppress(RedisError, RedisClusterException, OSError):
            await self._client.nodes_manager.initialize()

    async def load_script(self, source: str) -> None:
        await self._client.script_load(source)  # on every primary

    def disconnect(self) -> None:
        """Nothing to drop: the client's connections are per command (a cancelled blocking
        read takes its connection down with it)."""

    def close(self) -> None:
        """The manager closes the client itself."""

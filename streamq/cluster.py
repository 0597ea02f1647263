"""What differs on a Redis Cluster: commands go through redis-py's cluster client.

Every key of a queue carries the queue's hash tag, so every script and every command of a queue
runs on the one node that owns its slot; the cluster client finds that node, follows MOVED and
ASK, and finds the new primary after a failover. (The lean :class:`~streamq.lane.Lane` speaks to
one server; on a cluster the client's routing is worth more than the pool's cost.)
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from .lane import Arg

__all__ = ("ClusterLane",)


class ClusterLane:
    """The hot path's commands on a cluster: routed by their keys."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client

    async def execute(self, *args: Arg) -> Any:
        return await self._client.execute_command(*args)

    async def load_script(self, source: str) -> None:
        await self._client.script_load(source)  # on every primary

    def disconnect(self) -> None:
        """Nothing to drop: the client's connections are per command (a cancelled blocking
        read takes its connection down with it)."""

    def close(self) -> None:
        """The manager closes the client itself."""

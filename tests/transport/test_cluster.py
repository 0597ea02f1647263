"""Redis Cluster faults: the queue's primary killed under load, with and without min_replicas."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

import streamq
from streamq.testing.localcluster import LocalCluster
from streamq.transport.connection import connect

from ..helpers import Producer, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own: the test kills one of its primaries."""
    with LocalCluster() as cluster:
        yield cluster


@pytest.mark.parametrize("min_replicas", [0, 1])
async def test_consumers_resume_after_the_queues_primary_is_killed(
    own_cluster: LocalCluster, queue_name: str, min_replicas: int
) -> None:
    client = await connect(own_cluster.url)
    assert isinstance(client, RedisCluster)
    try:
        slot = key_slot(f"streamq:{{{queue_name}}}:stream".encode())
        primary = client.nodes_manager.get_node_from_slot(slot)
    finally:
        await client.aclose()
    victim = next(n for n in own_cluster.nodes if n.port == primary.port)
    survivor = next(n for n in own_cluster.nodes if n is not victim)

    done: set[int] = set()
    finished_at: dict[int, float] = {}  # when each job finished
    async with streamq.QueueManager(
        own_cluster.url, min_replicas=min_replicas, replica_timeout=0.5
    ) as qm:
        queue = qm.get_queue(queue_name)

        def handle(job: streamq.Job[int]) -> None:
            done.add(job.data)
            finished_at.setdefault(job.data, time.monotonic())

        await queue.consume(handle, concurrency=10)
        # Ten producers; refusals: the failover, or (min_replicas) no replica yet.
        producer = Producer(queue)
        await producer.produce_all(range(300), producers=10)
        await wait_until(lambda: len(done) >= 300, what="the first 300 jobs")
        async with anyio.create_task_group() as tg:
            # Killed while enqueues are on their way: 300-399 before it, 400-599 from then on
            # (they can land only once a replica took over).
            await producer.produce_all(range(300, 400), producers=10)
            victim.crash()
            killed_at = time.monotonic()
            tg.start_soon(producer.produce_all, range(400, 600), 10)
            await wait_until(
                lambda: _promoted(survivor.port, slot, victim.port), timeout=30, what="promotion"
            )
            promoted_at = time.monotonic()
            # The old primary comes back (empty: no persistence) as the new one's replica, so
            # min_replicas can be met again.
            victim.start()
        after = set(range(300, 600))
        await wait_until(lambda: after <= done, timeout=30, what="the jobs after the failover")
        all_ran_after = time.monotonic() - promoted_at
        # The first job enqueued after the kill to finish; it may beat the test's noticing
        # the promotion (polled), hence at least 0.
        resumed_after = max(0.0, min(finished_at[n] for n in range(400, 600)) - promoted_at)
        with contextlib.suppress(AssertionError):  # what is still missing then is lost
            await wait_until(lambda: producer.acknowledged <= done, timeout=5)
    # Replication is asynchronous: without min_replicas, a job the dead primary acknowledged
    # but had not yet sent to its replica is lost with it. Reported, never hidden.
    lost = sorted(producer.acknowledged - done)
    print(
        f"failover, min_replicas={min_replicas}: promoted {promoted_at - killed_at:.1f}s after"
        f" the kill; {producer.refused} enqueues refused meanwhile and retried; consumers resumed"
        f" {resumed_after:.1f}s and every job had run {all_ran_after:.1f}s after the promotion;"
        f" acknowledged jobs lost: {len(lost)} {lost[:10]}"
    )
    assert resumed_after < 5
    if min_replicas:
        assert not lost  # each acknowledged job was on the replica that took over


async def _promoted(port: int | None, slot: int, old_primary: int | None) -> bool:
    """Whether the node at ``port`` sees another primary than ``old_primary`` serve ``slot``."""
    async with aioredis.Redis(port=port or 0, socket_timeout=2) as node:
        for start, end, owner, *_ in await node.execute_command("CLUSTER", "SLOTS"):  # type: ignore[no-untyped-call]
            if start <= slot <= end:
                return bool(int(owner[1]) != old_primary)
    return False


async def test_consumers_ride_out_the_whole_cluster_going_down(
    own_cluster: LocalCluster, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every node down: no node can even tell the slot map. The consumer pauses and retries,
    as it does when a single server is down, and carries on once the cluster is back."""
    done: set[int] = set()
    async with streamq.QueueManager(own_cluster.url) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(lambda job: done.add(job.data))
        await queue.enqueue(1)
        await wait_until(lambda: 1 in done, what="the first job")
        for node in own_cluster.nodes:
            node.crash()
        await wait_until(
            lambda: "the Redis Cluster is unreachable" in caplog.text,
            what="the consumer to find no node",
        )
        for node in own_cluster.nodes:
            node.start()  # with its nodes.conf: the same cluster, empty
        producer = Producer(queue)  # refused until the cluster is ok again
        await producer.produce_all([2])
        await wait_until(lambda: 2 in done, timeout=30, what="a job after the outage")


@dataclass
class _Primary:
    client: aioredis.Redis
    port: int
    node_id: str

    async def command(self, *args: object) -> Any:
        return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]


async def test_work_goes_on_while_the_queues_slot_moves_to_another_primary(
    own_cluster: LocalCluster, queue_name: str
) -> None:
    """A live resharding: the slot migrates a few keys at a time (ASK for what has moved,
    TRYAGAIN for a script whose keys are split), then the cluster hands it over (MOVED)."""
    slot = key_slot(f"streamq:{{{queue_name}}}:stream".encode())
    clients = [aioredis.Redis(port=n.port or 0, socket_timeout=5) for n in own_cluster.nodes]
    try:
        primaries = []
        for client, server in zip(clients, own_cluster.nodes, strict=True):
            role = await client.execute_command("ROLE")  # type: ignore[no-untyped-call]
            if role[0] == b"master":
                node_id = await client.execute_command("CLUSTER", "MYID")  # type: ignore[no-untyped-call]
                primaries.append(_Primary(client, server.port or 0, node_id.decode()))
        source = await _serving(primaries, slot)
        target = next(p for p in primaries if p is not source)

        done: set[int] = set()
        async with streamq.QueueManager(own_cluster.url) as qm:
            queue = qm.get_queue(queue_name)
            await queue.consume(lambda job: done.add(job.data), concurrency=10)
            producer = Producer(queue, pause=0.05)
            async with anyio.create_task_group() as tg:
                tg.start_soon(producer.produce_all, range(600), 1, 0.002)
                await wait_until(lambda: len(done) >= 100, what="jobs flowing")
                await _migrate(source, target, slot, primaries)
            await wait_until(
                lambda: producer.acknowledged <= done, timeout=30, what="every job to run"
            )
            assert await _serving(primaries, slot) is target
            # The MOVED replies updated the slot map: later commands go to the new owner at
            # once (the old one answers them with MOVED no more), and the consumer reads there.
            moved_before = await _moved_replies(source)
            for n in range(600, 800):
                await queue.enqueue(n)
            await wait_until(lambda: len(done) >= 800, what="the jobs after the move")
            assert await _moved_replies(source) - moved_before <= 5
        print(f"resharding: {producer.refused} enqueues refused meanwhile")
        assert producer.acknowledged == set(range(600))
        assert producer.refused == 0  # redirects and TRYAGAIN are followed, not raised
    finally:
        for client in clients:
            await client.aclose()


async def _moved_replies(node: _Primary) -> int:
    """How many MOVED redirections the node has answered."""
    stats = await node.client.info("errorstats")
    return int(stats.get("errorstat_MOVED", {}).get("count", 0))


async def _serving(primaries: list[_Primary], slot: int) -> _Primary:
    """The primary that owns ``slot``."""
    slots = await primaries[0].command("CLUSTER", "SLOTS")
    port = next(int(owner[1]) for start, end, owner, *_ in slots if start <= slot <= end)
    return next(p for p in primaries if p.port == port)


async def _migrate(
    source: _Primary, target: _Primary, slot: int, primaries: list[_Primary]
) -> None:
    """What ``redis-cli --cluster reshard`` does for one slot, a few keys at a time."""
    await target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
    await source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
    while keys := await source.command("CLUSTER", "GETKEYSINSLOT", slot, 3):
        await source.command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        await anyio.sleep(0.05)  # jobs flow meanwhile, against a slot split over two nodes
    for node in primaries:
        await node.command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)

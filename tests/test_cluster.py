"""Redis Cluster faults: a primary killed under load."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import anyio
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

import streamq
from streamq.connection import connect
from streamq.localcluster import LocalCluster

from .helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own: the test kills one of its primaries."""
    with LocalCluster() as cluster:
        yield cluster


async def test_consumers_resume_after_the_queues_primary_is_killed(
    own_cluster: LocalCluster, queue_name: str
) -> None:
    client = await connect(own_cluster.url)
    assert isinstance(client, RedisCluster)
    stream_key = f"streamq:{{{queue_name}}}:stream".encode()
    primary = client.nodes_manager.get_node_from_slot(key_slot(stream_key))
    victim = next(n for n in own_cluster.nodes if n.port == primary.port)

    done: set[int] = set()
    acknowledged: set[int] = set()
    enqueue_errors = 0
    async with streamq.QueueManager(own_cluster.url) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(lambda job: done.add(job.data), concurrency=10)

        async def produce(numbers: range) -> None:
            nonlocal enqueue_errors
            for n in numbers:
                while True:
                    try:
                        await queue.enqueue(n, job_id=f"job-{n}")
                        acknowledged.add(n)
                        break
                    except (RedisError, streamq.StreamqError, OSError):
                        enqueue_errors += 1  # the failover: try again
                        await anyio.sleep(0.1)

        await produce(range(300))
        await wait_until(lambda: len(done) >= 300, what="the first 300 jobs")
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        with anyio.fail_after(30):
            await produce(range(300, 600))
        recovered_at = time.monotonic()
        after_failover = set(range(300, 600))
        # Consumers resume on the new primary.
        await wait_until(lambda: after_failover <= done, what="the jobs after the failover")
        resumed_after = time.monotonic() - recovered_at
        with contextlib.suppress(AssertionError):  # what is still missing then is lost
            await wait_until(lambda: acknowledged <= done, timeout=5)
    await client.aclose()
    # Replication is asynchronous: a job the dead primary acknowledged but had not yet sent to
    # its replica is lost with it. Reported, never hidden (the durability option is for that).
    lost = sorted(acknowledged - done)
    print(
        f"failover: enqueues back {recovered_at - killed_at:.1f}s after the kill"
        f" ({enqueue_errors} refused meanwhile); jobs enqueued after it all ran"
        f" {resumed_after:.1f}s later; acknowledged jobs lost: {len(lost)} {lost[:10]}"
    )
    assert resumed_after < 5

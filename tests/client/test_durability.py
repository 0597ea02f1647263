"""``min_replicas``: an enqueue returns only once the replicas have the job.

A real primary and replica (``--replicaof``) on loopback; the replica is SIGSTOPped to make
replication stall.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.testing.localserver import LocalRedis

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def primary() -> Iterator[LocalRedis]:
    with LocalRedis() as server:
        yield server


@pytest.fixture(scope="module")
def replica(primary: LocalRedis) -> Iterator[LocalRedis]:
    with LocalRedis(extra_args=["--replicaof", "127.0.0.1", str(primary.port)]) as server:
        deadline = time.monotonic() + 20
        while b"master_link_status:up" not in _info_replication(server):
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        # A replica just synced may be slow to acknowledge its first write: the tests' short
        # replica_timeouts start once it answers WAIT.
        _wait_until_acknowledging(primary)
        yield server


def _wait_until_acknowledging(primary: LocalRedis) -> None:
    """Until a write to ``primary`` reaches its replica within 100 ms."""
    assert primary.port is not None
    deadline = time.monotonic() + 20
    with socket.create_connection(("127.0.0.1", primary.port), timeout=2) as s:
        while True:
            s.sendall(b"SET streamq-test-ack 1\r\nWAIT 1 100\r\n")
            replies = b""
            while replies.count(b"\r\n") < 2:
                replies += s.recv(1024)
            if replies.endswith(b":1\r\n"):
                return
            assert time.monotonic() < deadline, f"the replica does not acknowledge: {replies!r}"


def _info_replication(server: LocalRedis) -> bytes:
    assert server.port is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall(b"INFO replication\r\n")
        return s.recv(65536)


@pytest.fixture
async def on_replica(replica: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(replica.url)
    yield client
    await client.aclose()


def job_key(queue_name: str, job_id: str) -> str:
    return f"streamq:{{{queue_name}}}:job:{job_id}"


async def test_an_enqueue_returns_once_the_replica_has_the_job(
    primary: LocalRedis, replica: LocalRedis, on_replica: aioredis.Redis, queue_name: str
) -> None:
    async with streamq.QueueManager(primary.url, min_replicas=1, replica_timeout=5) as qm:
        queue = qm.get_queue(queue_name)
        for n in range(3):
            # The replica stops for 0.3 s: the enqueue returns only after it is back and has
            # the job (without min_replicas it would return at once).
            resumed_at = 0.0

            async def resume() -> None:
                nonlocal resumed_at
                await anyio.sleep(0.3)
                resumed_at = time.monotonic()
                os.kill(replica.pid, signal.SIGCONT)

            os.kill(replica.pid, signal.SIGSTOP)
            async with anyio.create_task_group() as tg:
                tg.start_soon(resume)
                job_id = await queue.enqueue(n)
                returned_at = time.monotonic()
            assert resumed_at and returned_at >= resumed_at, n
            assert await on_replica.exists(job_key(queue_name, job_id)), n
        ids = await queue.enqueue_many(range(1200))  # several script calls, each waited for
        assert await on_replica.exists(job_key(queue_name, ids[-1]))


async def test_a_stalled_replica_makes_the_enqueue_raise_not_replicated(
    primary: LocalRedis, replica: LocalRedis, on_replica: aioredis.Redis, queue_name: str
) -> None:
    async with streamq.QueueManager(primary.url, min_replicas=1, replica_timeout=0.3) as qm:
        queue = qm.get_queue(queue_name)
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(streamq.NotReplicated, match="reached 0 of the 1 replica") as info:
                await queue.enqueue("x", job_id="kept")
            assert 0.3 <= time.monotonic() - started < 5
            assert info.value.job_ids == ["kept"] and info.value.queue == queue_name
            with pytest.raises(streamq.NotReplicated):
                await queue.enqueue_many(["a", "b"])
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        _wait_until_acknowledging(primary)  # caught up after its stop
        # The job was written to the primary all the same; enqueueing it again is harmless.
        assert await queue.enqueue("x", job_id="kept") == "kept"
        assert (await queue.stats()).waiting == 3
        assert await on_replica.exists(job_key(queue_name, "kept"))


async def test_concurrent_durable_enqueues_wait_side_by_side_not_in_turn(
    primary: LocalRedis, replica: LocalRedis, queue_name: str
) -> None:
    # A WAIT holds its connection: five queues enqueueing at once must not wait in turn.
    async with streamq.QueueManager(primary.url, min_replicas=1, replica_timeout=0.5) as qm:
        failed_after: list[float] = []

        async def enqueue(queue: streamq.Queue[int]) -> None:
            with pytest.raises(streamq.NotReplicated):
                await queue.enqueue(1)
            failed_after.append(time.monotonic() - started)

        os.kill(replica.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for n in range(5):
                    tg.start_soon(enqueue, qm.get_queue(f"{queue_name}-{n}", int))
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        assert len(failed_after) == 5 and max(failed_after) < 1.2, failed_after


async def test_enqueue_many_writes_every_batch_and_names_every_unconfirmed_job(
    primary: LocalRedis, replica: LocalRedis, queue_name: str
) -> None:
    async with streamq.QueueManager(primary.url, min_replicas=1, replica_timeout=0.2) as qm:
        queue = qm.get_queue(queue_name, int)
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            with pytest.raises(streamq.NotReplicated) as info:
                await queue.enqueue_many(range(1200))  # three script calls
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        assert len(set(info.value.job_ids)) == 1200
        assert (await queue.stats()).waiting == 1200


async def test_more_replicas_than_the_server_has_is_not_replicated(
    primary: LocalRedis, replica: LocalRedis, queue_name: str
) -> None:
    async with streamq.QueueManager(primary.url, min_replicas=2, replica_timeout=0.1) as qm:
        with pytest.raises(streamq.NotReplicated, match="reached 1 of the 2 replica"):
            await qm.get_queue(queue_name).enqueue(1)


async def test_consumers_do_not_wait_behind_a_stalled_replication(
    primary: LocalRedis, replica: LocalRedis, queue_name: str
) -> None:
    # The manager's durable enqueues wait on a connection of their own: its consumers'
    # completions (and every other script call) are not held up behind a WAIT.
    async with (
        streamq.QueueManager(primary.url, min_replicas=1, replica_timeout=3) as durable,
        streamq.QueueManager(primary.url) as plain,
    ):
        done = anyio.Event()
        count = 0

        async def handle(job: streamq.Job[int]) -> None:
            nonlocal count
            count += 1
            if count == 100:
                done.set()

        await durable.get_queue(queue_name, int).consume(handle)
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            async with anyio.create_task_group() as tg:
                # Waits 3 s for the stopped replica ...
                tg.start_soon(_expect_not_replicated, durable.get_queue(queue_name, int))
                await plain.get_queue(queue_name, int).enqueue_many(range(100))
                started = time.monotonic()
                with anyio.fail_after(2.5):  # ... while the consumer runs and acks 100 jobs
                    await done.wait()
                assert time.monotonic() - started < 2.5
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        await wait_until(lambda: count == 101, what="the durable job to run too")


async def _expect_not_replicated(queue: streamq.Queue[int]) -> None:
    with pytest.raises(streamq.NotReplicated):
        await queue.enqueue(-1)


async def test_bad_durability_options_are_clear_errors() -> None:
    with pytest.raises(streamq.InvalidArgument, match="min_replicas must be an int >= 0"):
        streamq.QueueManager(min_replicas=-1)
    with pytest.raises(streamq.InvalidArgument, match="replica_timeout must be seconds > 0"):
        streamq.QueueManager(min_replicas=1, replica_timeout=0)
    with pytest.raises(streamq.InvalidArgument, match="shorter than socket_timeout"):
        streamq.QueueManager(min_replicas=1, replica_timeout=40)


async def test_too_few_replicas_are_a_warning_at_start_up(
    primary: LocalRedis, replica: LocalRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """Rather than only an enqueue that fails after replica_timeout, every time."""
    with LocalRedis() as alone:
        async with streamq.QueueManager(alone.url, min_replicas=1):
            pass
    [warning] = [r for r in caplog.records if "min_replicas" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert "has 0 replica(s) connected" in warning.getMessage()
    assert "every enqueue will raise NotReplicated" in warning.getMessage()
    caplog.clear()
    async with streamq.QueueManager(primary.url, min_replicas=1):
        pass
    async with streamq.QueueManager(primary.url, min_replicas=2):
        pass
    [warning] = [r for r in caplog.records if "min_replicas" in r.getMessage()]
    assert "min_replicas=2" in warning.getMessage() and "has 1 replica(s)" in warning.getMessage()

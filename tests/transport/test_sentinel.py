"""Redis Sentinel: redis+sentinel:// URLs, and a failover under load."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Iterator

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.testing.localsentinel import LocalSentinel
from streamq.testing.localserver import free_port
from streamq.transport.connection import connect

from ..helpers import Producer, wait_until

pytestmark = pytest.mark.anyio


async def test_round_trip_through_the_sentinels(
    sentinel_setup: LocalSentinel, queue_name: str
) -> None:
    async with streamq.QueueManager(sentinel_setup.url, shutdown_grace=5) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(lambda job: job.data * 2)
        job_id = await queue.enqueue(21)
        assert await queue.wait_for(job_id, timeout=10) == 42
    # It went to the primary the sentinels name.
    client = await connect(f"redis://127.0.0.1:{sentinel_setup.primary_port()}/0")
    try:
        assert await client.exists(f"streamq:{{{queue_name}}}:stream")
    finally:
        await client.aclose()


async def test_db_and_credentials_come_from_the_url(
    sentinel_setup: LocalSentinel, queue_name: str
) -> None:
    url = sentinel_setup.url.replace("//", "//default:@", 1) + "?db=3"
    async with streamq.QueueManager(url) as qm:
        await qm.get_queue(queue_name).enqueue(1)
    for db, expected in ((3, True), (0, False)):
        client = await connect(f"redis://127.0.0.1:{sentinel_setup.primary_port()}/{db}")
        try:
            assert bool(await client.keys(f"streamq:{{{queue_name}}}:*")) is expected
        finally:
            await client.aclose()


@pytest.fixture(scope="module")
def sentinels_with_password() -> Iterator[LocalSentinel]:
    with LocalSentinel(password="s3cret") as setup:
        yield setup


async def test_the_url_password_is_for_the_data_nodes_and_sentinels_get_their_own(
    sentinels_with_password: LocalSentinel, queue_name: str
) -> None:
    url = sentinels_with_password.url.replace("//", "//:s3cret@", 1)
    async with streamq.QueueManager(url, sentinel_password="s3cret") as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(lambda job: job.data)
        assert await queue.wait_for(await queue.enqueue("ok"), timeout=10) == "ok"
    with pytest.raises(streamq.ConnectionFailed, match="sentinel_password") as caught:
        async with streamq.QueueManager(url):
            pass
    assert "s3cret" not in str(caught.value)
    bare = sentinels_with_password.url
    with pytest.raises(streamq.ConnectionFailed, match="check the user and password"):
        async with streamq.QueueManager(bare, sentinel_password="s3cret"):
            pass


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis+sentinel://127.0.0.1:26379", "service_name"),
        ("redis+sentinel://127.0.0.1:26379/", "service_name"),
        ("redis+sentinel://127.0.0.1:26379/a/b", "service_name"),
        ("redis+sentinel://127.0.0.1/main", "host:port"),
        ("redis+sentinel://127.0.0.1:26379,:26380/main", "host:port"),
        ("redis+sentinel://127.0.0.1:26379/main?db=x", "database number"),
        ("redis+sentinel://127.0.0.1:26379/main?timeout=3", "as keywords"),
    ],
)
async def test_bad_sentinel_urls_say_what_to_fix(url: str, match: str) -> None:
    with pytest.raises(streamq.InvalidArgument, match=match):
        async with streamq.QueueManager(url):
            pass


async def test_no_sentinel_reachable_is_a_clear_error() -> None:
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/main"
    with pytest.raises(streamq.ConnectionFailed, match="no Redis Sentinel answered"):
        async with streamq.QueueManager(url):
            pass


async def test_unknown_service_is_a_clear_error(sentinel_setup: LocalSentinel) -> None:
    url = sentinel_setup.url.rpartition("/")[0] + "/no-such-service"
    with pytest.raises(
        streamq.ConnectionFailed, match="no reachable primary for service 'no-such-service'"
    ):
        async with streamq.QueueManager(url):
            pass


async def test_a_server_that_is_no_sentinel_is_a_clear_error(
    sentinel_setup: LocalSentinel,
) -> None:
    url = (
        f"redis+sentinel://127.0.0.1:{sentinel_setup.primary_port()}/{sentinel_setup.service_name}"
    )
    with pytest.raises(streamq.ConnectionFailed, match=r"no reachable primary.*unknown command"):
        async with streamq.QueueManager(url):
            pass


@pytest.fixture
def own_sentinel_setup() -> Iterator[LocalSentinel]:
    """A setup of this test's own: the test kills its primary."""
    with LocalSentinel() as setup:
        yield setup


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_consumers_resume_after_the_primary_is_killed(
    own_sentinel_setup: LocalSentinel, queue_name: str
) -> None:
    setup = own_sentinel_setup
    victim = setup.server_at(setup.primary_port())
    done: set[int] = set()
    async with streamq.QueueManager(setup.url, shutdown_grace=5) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(lambda job: done.add(job.data), concurrency=10)
        producer = Producer(queue)  # refusals: the failover
        await producer.produce_all(range(300))
        await wait_until(lambda: len(done) >= 300, what="the first 300 jobs")
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        with anyio.fail_after(30):
            await producer.produce_all(range(300, 600))
        recovered_at = time.monotonic()
        after_failover = set(range(300, 600))
        # Consumers resume on the promoted replica.
        await wait_until(lambda: after_failover <= done, what="the jobs after the failover")
        resumed_after = time.monotonic() - recovered_at
        with contextlib.suppress(AssertionError):  # what is still missing then is lost
            await wait_until(lambda: producer.acknowledged <= done, timeout=5)
    await wait_until(
        lambda: len(ports := setup.primary_ports()) == 1 and victim.port not in ports,
        what="every sentinel to name the new primary",
    )
    # Replication is asynchronous: a job the dead primary acknowledged but had not yet sent to
    # its replica is lost with it. Reported, never hidden.
    lost = sorted(producer.acknowledged - done)
    print(
        f"sentinel failover: enqueues back {recovered_at - killed_at:.1f}s after the kill"
        f" ({producer.refused} refused meanwhile); jobs enqueued after it all ran"
        f" {resumed_after:.1f}s later; acknowledged jobs lost: {len(lost)} {lost[:10]}"
    )
    assert resumed_after < 5


#: How long after a sentinel names the new primary a manager may still write to the old one.
SWITCH_WINDOW = 0.5


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_failover_of_a_running_primary_moves_every_connection_at_once(
    own_sentinel_setup: LocalSentinel, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``SENTINEL FAILOVER`` (as for maintenance) promotes the replica while the old primary
    runs on; the sentinels demote it only ~10 s later, and what it took meanwhile is lost when
    it resyncs. The manager moves on the sentinels' announcement instead."""
    setup = own_sentinel_setup
    old_port = setup.primary_port()
    done: set[int] = set()
    async with streamq.QueueManager(setup.url, shutdown_grace=5) as qm:
        queue = qm.get_queue(queue_name)
        await queue.consume(lambda job: done.add(job.data), concurrency=10)
        producer = Producer(queue, pause=0.05)
        acknowledged_at = producer.acknowledged_at

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer.produce_all, itertools.count(), 1, 0.002)
            await wait_until(lambda: len(done) >= 100, what="the first 100 jobs")
            # Not the sentinel the manager asks first: the others learn of it a little later.
            leader = aioredis.Redis(port=setup.sentinels[-1].port or 0, protocol=2)
            try:
                await leader.sentinel_failover(setup.service_name)

                async def switched() -> bool:
                    address = await leader.execute_command(  # type: ignore[no-untyped-call]
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", setup.service_name
                    )
                    return int(address[1]) != old_port

                await wait_until(switched, what="the failover")
            finally:
                await leader.aclose()
            switched_at = time.monotonic()
            switched_wall = time.time()
            # Well before the sentinels demote the old primary.
            await anyio.sleep(2)
            tg.cancel_scope.cancel()
        # The manager moves when its own listener hears the announcement, a little after the
        # sentinel this test asks; what it wrote to the old primary in between is the loss
        # measured below, so only what came after that window must run.
        moved = {n for n, at in acknowledged_at.items() if at > switched_at + SWITCH_WINDOW}
        manager_lag = [
            f"{record.created - switched_wall:+.2f}s"
            for record in caplog.records
            if "failed over" in record.getMessage()
        ]
        await wait_until(
            lambda: moved <= done,
            what=f"the jobs after the failover (the manager moved at {manager_lag})",
        )
    await wait_until(
        lambda: len(ports := setup.primary_ports()) == 1 and old_port not in ports,
        what="every sentinel to name the new primary",
    )
    async with streamq.QueueManager(setup.url) as fresh:  # connects to the new primary
        queue = fresh.get_queue(queue_name)
        # Acknowledged, yet unknown to the new primary: written to the old one after the
        # promotion (lost with it unless a consumer happened to run them there).
        unknown = [n for n in sorted(acknowledged_at) if await queue.get_job(f"job-{n}") is None]
    lost = [n for n in unknown if n not in done]
    late = [n for n in unknown if acknowledged_at[n] > switched_at + SWITCH_WINDOW]
    print(
        f"forced failover: {len(acknowledged_at)} jobs acknowledged, {len(moved)} more than"
        f" {SWITCH_WINDOW}s after the sentinels named the new primary;"
        f" {len(unknown)} went to the old primary"
        f" ({len(late)} of them more than {SWITCH_WINDOW}s after the switch; acknowledged from"
        f" {min((acknowledged_at[n] - switched_at for n in unknown), default=0):+.2f}s to"
        f" {max((acknowledged_at[n] - switched_at for n in unknown), default=0):+.2f}s),"
        f" of which {len(lost)} never"
        f" ran: {lost[:10]}"
    )
    # Only what was written between the promotion and the announcement can miss the new primary.
    assert not late

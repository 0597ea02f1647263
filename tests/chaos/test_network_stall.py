"""Scenario 6: the network between streamq and Redis stalls (a proxy holds every byte, and
closes nothing) for longer than the socket timeout, then flows again.

No reader, producer or consumer, stays blocked: a command waits at most ``socket_timeout``
before its connection is taken for dead, consumers block in their reads for at most half of it
(so an idle read is never taken for a stalled one), and once the network flows again work
carries on with nothing lost.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

import anyio
import pytest

import streamq
from streamq.testing.localserver import LocalRedis

from ..helpers import Producer, wait_until
from . import figures
from .proxy import StallingProxy

pytestmark = [pytest.mark.chaos, pytest.mark.anyio, pytest.mark.timeout(300)]

SOCKET_TIMEOUT = 2.0


@pytest.fixture
async def proxy(own_server: LocalRedis) -> AsyncIterator[StallingProxy]:
    assert own_server.port is not None
    stalling = await StallingProxy(own_server.port).start()
    try:
        yield stalling
    finally:
        await stalling.close()


async def test_a_stalled_network_blocks_no_one_and_loses_nothing(
    own_server: LocalRedis,
    proxy: StallingProxy,
    queue_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="streamq")
    stalls = figures.scaled(1, 4)
    per_stall = figures.scaled(500, 5_000)
    stall_for = 2.5 * SOCKET_TIMEOUT
    runs: Counter[int] = Counter()
    started = time.monotonic()
    producer_waits: list[float] = []
    resumed_in: list[float] = []
    options = {"socket_timeout": SOCKET_TIMEOUT, "shutdown_grace": 5}
    async with (
        streamq.QueueManager(proxy.url, **options) as through_proxy,  # type: ignore[arg-type]
        streamq.QueueManager(own_server.url) as direct,
    ):

        async def handle(job: streamq.Job[int]) -> None:
            runs[job.data] += 1

        await through_proxy.get_queue(queue_name, int).consume(handle, concurrency=8)
        # Idle for longer than the socket timeout: the consumer's blocking reads are shorter.
        await anyio.sleep(1.5 * SOCKET_TIMEOUT)
        assert not caplog.records, [r.getMessage() for r in caplog.records]

        producer = Producer(direct.get_queue(queue_name, int), pause=0.05)
        n = 0
        try:
            for _ in range(stalls):
                await producer.produce_all(range(n, n + per_stall), 4)
                n += per_stall
                await wait_until(lambda n=n: len(runs) >= n, what="jobs to flow")
                proxy.stall()
                stalled_at = time.monotonic()
                # A producer on the stalled path gets an error, not a hang.
                blocked = through_proxy.get_queue(queue_name, int)
                with pytest.raises(streamq.RedisTimeout, match="may or may not have been added"):
                    await blocked.enqueue(-1, job_id="stalled")
                producer_waits.append(time.monotonic() - stalled_at)
                # Jobs keep arriving over the other path meanwhile.
                await producer.produce_all(range(n, n + per_stall), 4)
                n += per_stall
                await anyio.sleep(max(0.0, stalled_at + stall_for - time.monotonic()))
                proxy.resume()
                resumed_at = time.monotonic()
                await wait_until(lambda n=n: len(runs) >= n, timeout=60, what="jobs after it")
                resumed_in.append(time.monotonic() - resumed_at)
        finally:
            figures.record(
                figures.Row(
                    "6. network stalled past the socket timeout",
                    enqueued=n,
                    acknowledged=len(producer.acknowledged),
                    completed=sum(1 for k in runs if k >= 0),
                    lost=len(producer.acknowledged - runs.keys()),
                    reruns=sum(r - 1 for r in runs.values()),
                    faults=f"{stalls} x {stall_for:g} s stall",
                    seconds=time.monotonic() - started,
                    notes=f"socket_timeout {SOCKET_TIMEOUT:g} s: an enqueue on the stalled path"
                    f" failed after {max(producer_waits, default=0):.1f} s; consumers ran the"
                    f" backlog {max(resumed_in, default=0):.1f} s after the network came back",
                )
            )
    assert producer.acknowledged == set(range(n))
    assert runs.keys() >= producer.acknowledged
    assert all(wait < SOCKET_TIMEOUT + 1.0 for wait in producer_waits), producer_waits
    # Taken for dead within the socket timeout, reconnected after a pause of at most 2 s.
    assert all(seconds < SOCKET_TIMEOUT + 3.0 for seconds in resumed_in), resumed_in

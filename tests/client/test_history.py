"""A queue's per-minute history (``Queue.history``, ``python -m streamq info --history``): the
counts the finishing scripts keep, the latency estimates, the keys' lifetime and deletion."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner

import streamq
from streamq.ops.cli import main
from streamq.store.history import LATENCY_BUCKETS, latency_bucket, percentile
from streamq.store.keys import HISTORY_TTL, QueueKeys
from streamq.testing.localserver import LocalRedis

from ..helpers import wait_until

anyio_test = pytest.mark.anyio


def _sums(points: list[streamq.HistoryPoint]) -> tuple[int, int, int, int]:
    return (
        sum(p.completed for p in points),
        sum(p.failed for p in points),
        sum(p.dead for p in points),
        sum(p.started for p in points),
    )


async def _run_mixed(queue: streamq.Queue[Any]) -> streamq.Consumer[Any]:
    """10 jobs that complete, 3 that fail once then complete, 2 that go to the dead letters
    (one unrecoverable, one out of retries, after two attempts): 13 completed, 6 failed
    attempts, 2 dead."""

    async def handler(job: streamq.Job[Any]) -> str:
        kind = job.data["kind"]
        if kind == "flaky" and job.attempt == 1:
            raise RuntimeError("first attempt fails")
        if kind == "fatal":
            raise streamq.Unrecoverable("no way")
        if kind == "doomed":
            raise RuntimeError("always fails")
        return "ok"

    consumer = await queue.consume(handler, max_retries=1, backoff=0)
    kinds = ["ok"] * 10 + ["flaky"] * 3 + ["fatal", "doomed"]
    await queue.enqueue_many([{"kind": k} for k in kinds])

    async def settled() -> bool:
        return _sums(await queue.history(5)) == (13, 6, 2, 15)

    await wait_until(settled, what="the history to count every job")
    return consumer


def test_latency_buckets_and_estimates() -> None:
    assert latency_bucket(-1.0) == latency_bucket(0.0005) == latency_bucket(0.001) == 0
    assert latency_bucket(0.0015) == latency_bucket(0.002) == 1
    assert latency_bucket(0.003) == 2
    assert latency_bucket(1.0) == 10  # (512 ms, 1024 ms]
    assert latency_bucket(1e9) == LATENCY_BUCKETS - 1
    assert percentile({}, 0.5) is None
    # Placed geometrically inside the bucket by the rank's share of it.
    assert percentile({10: 2}, 0.5) == pytest.approx(0.512 * 2**0.5)
    assert percentile({10: 1}, 1.0) == pytest.approx(1.024)
    assert percentile({0: 1}, 0.5) == pytest.approx(0.0005)
    # 99 fast ones and one slow one: the median is fast, the 99th percentile is not the slow one.
    counts = {3: 99, 14: 1}
    assert percentile(counts, 0.5) == pytest.approx(0.004 * 2 ** (50 / 99))
    assert percentile(counts, 0.99) == pytest.approx(0.008)
    # Anything past the last bucket's lower bound (about 70 minutes) reads as that bound.
    assert percentile({LATENCY_BUCKETS - 1: 3}, 0.5) == pytest.approx(2**22 / 1000)
    for wait in (0.0007, 0.003, 0.25, 1.7, 42.0, 3000.0):
        estimate = percentile({latency_bucket(wait): 1}, 0.5)
        assert estimate is not None and wait / 2 <= estimate <= wait * 2


@anyio_test
@pytest.mark.cluster
@pytest.mark.timeout(30)
async def test_history_counts_completions_failed_attempts_and_dead_letters(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    consumer = await _run_mixed(queue)
    await consumer.stop()
    points = await queue.history(5)
    assert len(points) == 5
    minutes = [p.minute for p in points]
    assert all(m % 60 == 0 for m in minutes)
    assert minutes == list(range(minutes[0], minutes[0] + 300, 60))
    # The server's clock names the minutes: the last is now's (give or take a clock skew).
    assert abs(minutes[-1] - (time.time() // 60) * 60) <= 60
    assert _sums(points) == (13, 6, 2, 15)
    busy = [p for p in points if p.started]
    assert busy and all(p.latency_p50 is not None and p.latency_p99 is not None for p in busy)
    assert all(0 <= p.latency_p50 <= p.latency_p99 < 30 for p in busy)  # type: ignore[operator]
    assert all(p.latency_p50 is None for p in points if not p.started)
    stats = await queue.stats()
    assert (stats.completed, stats.dead) == (13, 2)
    # The default window is the last hour; each minute's hash expires about two hours after it.
    hour = await queue.history()
    assert len(hour) == 60 and _sums(hour) == (13, 6, 2, 15)
    keys = QueueKeys(qm.prefix, queue_name)
    for p in points:
        ttl = await redis.ttl(keys.history(p.minute))
        if p.completed or p.failed or p.started:
            assert HISTORY_TTL - 60 <= ttl <= HISTORY_TTL
        else:
            assert ttl == -2  # nothing happened: no hash


@anyio_test
@pytest.mark.timeout(30)
async def test_latency_percentiles_measure_the_wait_before_the_first_start(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    waited = qm.get_queue(queue_name)
    at_once = qm.get_queue(queue_name + "-now")
    done = anyio.Event()
    finished = 0

    async def handler(job: streamq.Job[Any]) -> None:
        nonlocal finished
        finished += 1
        if finished == 40:
            done.set()

    # Enqueued while nothing consumes, started once WAIT seconds passed: each waited at least
    # that. The estimate is within a factor of 2 of the true wait.
    wait = 1.0
    enqueued = anyio.current_time()
    await waited.enqueue_many(list(range(20)))
    await anyio.sleep_until(enqueued + wait)
    consumers = [await waited.consume(handler), await at_once.consume(handler)]
    await at_once.enqueue_many(list(range(20)))
    with anyio.fail_after(10):
        await done.wait()

    async def counted(queue: streamq.Queue[Any]) -> bool:
        return sum(p.started for p in await queue.history(5)) == 20

    await wait_until(lambda: counted(waited), what="the waited jobs' starts")
    await wait_until(lambda: counted(at_once), what="the prompt jobs' starts")
    for consumer in consumers:
        await consumer.stop()
    slow = [p for p in await waited.history(5) if p.started]
    fast = [p for p in await at_once.history(5) if p.started]
    assert all(p.latency_p50 is not None and p.latency_p50 >= wait / 2 for p in slow)
    assert all(p.latency_p99 is not None and p.latency_p99 < (wait + 10) * 2 for p in slow)
    assert all(p.latency_p50 is not None and p.latency_p50 < wait / 2 for p in fast)


@anyio_test
@pytest.mark.timeout(30)
async def test_deleting_a_queue_deletes_its_history(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name)
    consumer = await _run_mixed(queue)
    await consumer.stop()
    keys = QueueKeys(qm.prefix, queue_name)
    written = [keys.history(p.minute) for p in await queue.history(5) if p.completed]
    assert written and await redis.exists(*written) == len(written)
    await queue.delete(force=True)
    assert await redis.exists(*written) == 0
    assert _sums(await queue.history(120)) == (0, 0, 0, 0)


@anyio_test
@pytest.mark.timeout(30)
async def test_bad_history_arguments_are_clear_errors(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    for bad in (0, -1, 121, True, 1.5, "60"):
        with pytest.raises(streamq.InvalidArgument, match="minutes"):
            await queue.history(bad)  # type: ignore[arg-type]
    assert len(await queue.history(120)) == 120
    assert len(await queue.history(1)) == 1


@pytest.mark.timeout(30)
def test_info_history_shows_the_last_minutes(server: LocalRedis, prefix: str) -> None:
    async def setup() -> None:
        async with streamq.QueueManager(server.url, prefix=prefix) as qm:
            consumer = await _run_mixed(qm.get_queue("mixed"))
            await consumer.stop()

    anyio.run(setup)

    def cli(*args: str) -> str:
        result = CliRunner().invoke(
            main, [*args, "--prefix", prefix], env={"STREAMQ_REDIS_URL": server.url}
        )
        assert result.exit_code == 0 and result.exception is None, result.output
        return result.output

    table = cli("info", "mixed", "--history", "--minutes", "3")
    assert "History, the last 3 minutes" in table and "latency p50" in table
    rows = [line for line in table.splitlines() if line.startswith("│ mixed") and ":" in line]
    assert len(rows) == 3
    [mixed] = json.loads(cli("info", "mixed", "--history", "-m", "3", "--json"))
    history = mixed["history"]
    assert len(history) == 3
    assert sum(p["completed"] for p in history) == 13
    assert sum(p["failed"] for p in history) == 6
    assert sum(p["dead"] for p in history) == 2
    assert all(set(p) >= {"minute", "latency_p50", "latency_p99"} for p in history)
    # Without --history: no table, and no history in the JSON.
    assert "History" not in cli("info", "mixed")
    assert json.loads(cli("info", "mixed", "--json"))[0]["history"] == []

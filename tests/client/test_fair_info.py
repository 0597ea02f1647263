"""What fair queues show: stats count every key with waiting jobs (held back by per-key limits
too) and see the oldest keyed job, the waiting listing lists held-back keys' jobs, and the
busiest keys (``Queue.busiest_keys``, ``python -m streamq info``)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

import streamq
from streamq.ops.cli import main
from streamq.store.keys import QueueKeys
from streamq.testing.localserver import LocalRedis

from ..helpers import wait_until


async def _hold_back(redis: Any, keys: QueueKeys, fairness_key: str, where: str) -> None:
    """Move a key out of the ring into ``fair:parked`` or ``fair:full``, as a per-key limit
    does (by hand: QueueKeys has no names for them yet)."""
    assert await redis.zrem(keys.fair, fairness_key) == 1
    await redis.zadd(f"{keys.fair}:{where}", {fairness_key: 0})


@pytest.mark.anyio
@pytest.mark.cluster
async def test_stats_count_every_waiting_key_and_see_the_oldest_keyed_job(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    queue = qm.get_queue(queue_name)
    keys = QueueKeys(qm.prefix, queue_name)
    started = time.time()
    await queue.enqueue("oldest", fairness_key="m")
    enqueued = time.time()
    await wait_until(lambda: time.time() - enqueued >= 0.3, what="0.3 s to pass")
    # Newer jobs: a better one of the same key (its oldest is then the first of its lowest
    # priority), and keys before and after it in the ring.
    await queue.enqueue("urgent", fairness_key="m", priority=5)
    await queue.enqueue_many(["a1", "a2"], fairness_key="a")
    await queue.enqueue("z1", fairness_key="z")

    async def check() -> None:
        before = time.time()
        stats = await queue.stats()
        after = time.time()
        assert (stats.fairness_keys, stats.waiting) == (3, 5)
        # The server's clock in ms (rounded down) less the client's enqueue time.
        assert before - enqueued - 0.002 <= stats.oldest_waiting_age <= after - started + 0.002

    await check()
    # Keys held back by per-key limits still wait.
    await _hold_back(redis, keys, "a", "parked")
    await _hold_back(redis, keys, "m", "full")
    await check()


@pytest.mark.anyio
@pytest.mark.cluster
async def test_stats_of_a_queue_without_waiting_jobs(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    job_id = await queue.enqueue("x", fairness_key="k")
    assert await queue.cancel(job_id)
    stats = await queue.stats()
    assert (stats.fairness_keys, stats.waiting, stats.oldest_waiting_age) == (0, 0, 0.0)
    assert await queue.busiest_keys() == []


@pytest.mark.anyio
@pytest.mark.cluster
async def test_the_waiting_listing_lists_held_back_keys_jobs_after_the_rings(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    queue = qm.get_queue(queue_name)
    keys = QueueKeys(qm.prefix, queue_name)
    await queue.enqueue_many(["a1", "a2"], fairness_key="a")
    await queue.enqueue_many(["f1", "f2"], fairness_key="f")
    await queue.enqueue("p1", fairness_key="p")
    await _hold_back(redis, keys, "p", "parked")
    await _hold_back(redis, keys, "f", "full")
    assert [j.data for j in await queue.jobs("waiting")] == ["a1", "a2", "p1", "f1", "f2"]
    assert [j.data for j in await queue.jobs("waiting", limit=3)] == ["a1", "a2", "p1"]
    assert [j.data for j in await queue.jobs("waiting", fairness_key="p")] == ["p1"]
    assert (await queue.stats()).fairness_keys == 3


@pytest.mark.anyio
@pytest.mark.cluster
@pytest.mark.timeout(120)
async def test_busiest_keys_walk_every_key_in_chunks(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    """2,500 keys of one job (more than one call's chunk of 2,000), the busiest of all after
    them in the ring, and keys held back: the busiest come first, with their counts; the
    unkeyed jobs' turn in the ring is no key."""
    queue = qm.get_queue(queue_name)
    keys = QueueKeys(qm.prefix, queue_name)
    many = [f"k{n:04}" for n in range(2500)]

    async def enqueue(share: list[str]) -> None:
        for key in share:
            await queue.enqueue(key, fairness_key=key)

    async with anyio.create_task_group() as tasks:
        for n in range(10):
            tasks.start_soon(enqueue, many[n::10])
    await queue.enqueue_many(range(5), fairness_key="zz-busiest")
    await queue.enqueue_many(range(3), fairness_key="mid")
    await queue.enqueue_many(range(2), fairness_key="small")
    await queue.enqueue("no key", priority=1)  # staged: takes turns in the ring as no key
    await _hold_back(redis, keys, "mid", "parked")
    await _hold_back(redis, keys, "small", "full")

    stats = await queue.stats()
    assert (stats.fairness_keys, stats.waiting) == (2503, 2511)
    top = [("zz-busiest", 5), ("mid", 3), ("small", 2)]
    assert await queue.busiest_keys() == [*top, *((key, 1) for key in many[:7])]
    assert await queue.busiest_keys(2) == top[:2]
    busiest = await queue.busiest_keys(1000)
    assert len(busiest) == 1000 and "\t" not in dict(busiest)
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            await queue.busiest_keys(bad)


def _cells(line: str) -> list[str]:
    """A table row's cells (rich draws their borders)."""
    return [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]


def _cli(url: str, prefix: str, *args: str) -> Result:
    result = CliRunner().invoke(main, [*args, "--prefix", prefix], env={"STREAMQ_REDIS_URL": url})
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    return result


def test_info_shows_the_busiest_keys_of_queues_that_have_keys(
    server: LocalRedis, prefix: str
) -> None:
    async def enqueue() -> None:
        async with streamq.QueueManager(server.url, prefix=prefix) as qm:
            tenants = qm.get_queue("tenants")
            await tenants.enqueue_many(["a1", "a2", "a3"], fairness_key="acme")
            await tenants.enqueue("g1", fairness_key="globex")
            await qm.get_queue("plain").enqueue("p1")

    anyio.run(enqueue)
    table = _cli(server.url, prefix, "info").output
    assert "Busiest fairness keys" in table
    rows = [_cells(line) for line in table.splitlines() if "acme" in line or "globex" in line]
    assert rows == [["tenants", "acme", "3"], ["tenants", "globex", "1"]]
    plain, tenants = json.loads(_cli(server.url, prefix, "info", "--json").output)
    assert tenants["busiest_keys"] == [["acme", 3], ["globex", 1]]
    assert tenants["stats"]["fairness_keys"] == 2
    assert plain["busiest_keys"] == []
    assert "Busiest fairness keys" not in _cli(server.url, prefix, "info", "plain").output

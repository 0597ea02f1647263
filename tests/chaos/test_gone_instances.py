"""Broadcast groups of instances that die and never come back.

Five instances (processes of :mod:`tests.chaos.instance`) each read the queue in a group of
their own, ``sync:<instance id>``; three are SIGKILLed one after another while jobs flow. Their
groups must be removed once they were silent for ``group_idle_timeout``, so that the stream
stays bounded, while the two live instances receive every job exactly once.

Why the bound holds: with several groups, entries every group acknowledged are trimmed every
``TRIM_INTERVAL``; a dead group pins the stream from its last acknowledgement (about its death)
until a trim removes it: at most ``group_idle_timeout`` after its last registration (which is
at most a registration interval before the death) plus a trim interval. So XLEN stays under
``rate x (idle + registration interval + 2 x trim interval + 1 s of slack)`` plus what the
live consumers hold and the ready window (each consumer's prefetch, twice over). Were the
groups not removed, the first dead one would pin everything enqueued after it (~80%).
"""

from __future__ import annotations

import random
import time

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.store.keys import QueueKeys
from streamq.worker.consumer import TRIM_INTERVAL, register_interval
from streamq.worker.options import READY_WINDOW_FACTOR

from .figures import Row, full, record, scaled
from .instance import CONCURRENCY, count_key, got_key
from .processes import Processes, settle

pytestmark = [pytest.mark.chaos, pytest.mark.anyio]

#: 10 s of flow in the short run (over three times IDLE), 200 s in make chaos.
JOBS = scaled(10_000, 200_000)
#: Jobs per second the producer enqueues (the live instances keep up with it on 2 cores).
RATE = scaled(1_000, 1_000)
IDLE = scaled(3, 10)
LIVE, GONE = 2, 3
BATCH = 100
SAMPLE_EVERY = 0.05


@pytest.mark.timeout(600 if full() else 120)
async def test_groups_of_gone_instances_are_removed_and_the_stream_stays_bounded(
    processes: Processes, own_redis: aioredis.Redis
) -> None:
    seed = random.randrange(2**32)
    print(f"\ngone instances: seed {seed}")
    rng = random.Random(seed)
    name = f"sync-{seed}"
    stream = QueueKeys("streamq", name).stream
    started = time.monotonic()
    live = [f"live-{n}" for n in range(LIVE)]
    gone = [f"gone-{n}" for n in range(GONE)]
    for instance in live + gone:
        processes.spawn(instance, "-m", "tests.chaos.instance", name, instance, str(IDLE))
    groups = {f"sync:{instance}" for instance in live + gone}

    async def group_names() -> set[str]:
        infos = await own_redis.xinfo_groups(stream) if await own_redis.exists(stream) else []
        return {info["name"].decode() for info in infos}

    async def all_groups() -> bool:
        return await group_names() >= groups

    await settle(all_groups, 30, "every instance's group")
    # The n-th gone instance dies once this many jobs were enqueued.
    kill_at = {round(JOBS * (n + 1) / (GONE + 2)): instance for n, instance in enumerate(gone)}
    killed_at: dict[str, float] = {}
    removed_at: dict[str, float] = {}
    max_xlen = 0
    producing = True

    async def sample() -> None:
        nonlocal max_xlen
        while producing or len(removed_at) < GONE:
            max_xlen = max(max_xlen, await own_redis.xlen(stream))
            present_instances = {group.removeprefix("sync:") for group in await group_names()}
            for instance in gone:
                if instance in killed_at and instance not in removed_at.keys() | present_instances:
                    removed_at[instance] = time.monotonic()
            await anyio.sleep(SAMPLE_EVERY)

    async with streamq.QueueManager(processes.redis_url) as qm, anyio.create_task_group() as tg:
        queue = qm.get_queue(name, int)
        tg.start_soon(sample)
        # Paced: never faster than RATE (a late batch does not make up for lost time).
        with anyio.move_on_after(JOBS / RATE * 2):
            for start in range(0, JOBS, BATCH):
                await queue.enqueue_many(range(start, min(start + BATCH, JOBS)))
                for threshold, instance in kill_at.items():
                    if start < threshold <= start + BATCH:
                        processes.kill(processes.started[instance].pid)
                        killed_at[instance] = time.monotonic()
                await anyio.sleep(BATCH / RATE * rng.uniform(0.9, 1.1))
        enqueued = JOBS if start + BATCH >= JOBS else start + BATCH
        producing = False

        async def everyone_got_everything() -> bool:
            for instance in live:
                if await own_redis.bitcount(got_key(name, f"sync:{instance}")) < enqueued:
                    return False
            return True

        settled = await settle(everyone_got_everything, 60, "the live instances to catch up")
        settled &= await settle(lambda: len(removed_at) == GONE, IDLE + 30, "the gone groups")
        received = {
            i: (
                await own_redis.bitcount(got_key(name, f"sync:{i}")),
                int(await own_redis.get(count_key(name, f"sync:{i}")) or 0),
            )
            for i in live
        }
        left = await group_names()
        tg.cancel_scope.cancel()

    interval = register_interval(IDLE)
    window = (LIVE + GONE) * READY_WINDOW_FACTOR * CONCURRENCY
    bound = round(RATE * (IDLE + interval + 2 * TRIM_INTERVAL + 1) + 2 * window)
    removal = {i: removed_at[i] - killed_at[i] for i in removed_at}
    missed = sum(enqueued - got for got, _ in received.values())
    twice = sum(count - got for got, count in received.values())
    record(
        Row(
            scenario=f"8. broadcast: {GONE} of {LIVE + GONE} instances gone for good",
            enqueued=enqueued,
            acknowledged=enqueued,
            completed=min(got for got, _ in received.values()),
            lost=missed,
            reruns=twice,
            faults=f"{len(killed_at)} SIGKILL",
            seconds=time.monotonic() - started,
            notes=(
                f"seed {seed}; max XLEN {max_xlen:,} (bound {bound:,}); gone groups removed"
                f" {', '.join(f'{s:.1f}' for s in sorted(removal.values()))} s after their"
                f" death (group_idle_timeout {IDLE} s); lost and reruns per live group"
            ),
            extra={"max_xlen": max_xlen, "xlen_bound": bound},
        )
    )
    assert enqueued == JOBS
    assert settled
    assert missed == 0 and twice == 0, received
    assert left == {f"sync:{i}" for i in live}, left
    for instance, seconds in removal.items():
        # Not before its idle time since its last mark (at most an interval before its death),
        # and soon after it: the next trim.
        assert IDLE - interval - 0.5 <= seconds <= IDLE + interval + TRIM_INTERVAL + 2, (
            instance,
            seconds,
        )
    assert max_xlen <= bound

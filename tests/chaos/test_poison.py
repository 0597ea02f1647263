"""Poison jobs in worker processes: one that always raises and one that kills its worker in
mid-run (``os._exit``). Each runs exactly ``max_retries + 1`` times and then is in the dead
letters with its error and attempts, while ordinary jobs keep flowing past them.
"""

from __future__ import annotations

import itertools
import random
import time

import anyio
import pytest
import redis.asyncio as aioredis

import streamq

from .figures import Row, full, record, scaled
from .handlers import Task
from .processes import Processes, settle
from .runs import job_states, read_runs

pytestmark = [pytest.mark.chaos, pytest.mark.anyio]

MAX_RETRIES = 2
#: Poison jobs of each kind.
POISONS = scaled(1, 3)
VISIBILITY_TIMEOUT = 2.0
#: Ordinary jobs enqueued per tick while the poison jobs cycle, and the tick.
FLOW, TICK = 10, 0.1


@pytest.mark.timeout(600 if full() else 120)
async def test_poison_jobs_are_dead_lettered_after_their_attempts_while_others_flow(
    processes: Processes, own_redis: aioredis.Redis
) -> None:
    seed = random.randrange(2**32)
    print(f"\npoison: seed {seed}")
    rng = random.Random(seed)
    name = f"poison-{seed}"
    started = time.monotonic()
    processes.worker(
        "pool",
        name,
        "--processes",
        "2",
        "--concurrency",
        "4",
        "--max-retries",
        str(MAX_RETRIES),
        "--visibility-timeout",
        str(VISIBILITY_TIMEOUT),
    )
    raising = [f"raises-{n}" for n in range(POISONS)]
    exiting = [f"exits-{n}" for n in range(POISONS)]
    poison = set(raising + exiting)
    ordinary: list[str] = []
    async with streamq.QueueManager(processes.redis_url) as qm:
        queue = qm.get_queue(name, Task)
        await settle(lambda: len(processes.consuming("pool")) == 2, 30, "the workers")
        for job_id in raising:
            await queue.enqueue(Task(poison="raise"), job_id=job_id)
        for job_id in exiting:
            await queue.enqueue(Task(poison="exit", nap=0.05), job_id=job_id)

        async def all_dead() -> bool:
            return {d.job_id for d in await queue.dead_letters()} >= poison

        # Ordinary jobs keep coming while the poison jobs cycle.
        with anyio.move_on_after(180 if full() else 60):
            while not await all_dead():
                batch = [Task(nap=rng.uniform(0, 0.1)) for _ in range(FLOW)]
                ordinary += await queue.enqueue_many(batch)
                await anyio.sleep(TICK)
        cycle_end = time.time()

        async def ordinary_done() -> bool:
            states = await job_states(queue, ordinary)
            return all(state in ("completed", "dead") for state in states.values())

        settled = await settle(ordinary_done, 60, "the ordinary jobs to finish")
        letters = {d.job_id: d for d in await queue.dead_letters()}
        infos = {job_id: await queue.get_job(job_id) for job_id in ordinary}
        runs = await read_runs(own_redis, name)

    first_poison_run = min(r.started_ms for j in poison for r in runs.started.get(j, [])) / 1000
    finished = sorted(
        info.finished_at for info in infos.values() if info and info.finished_at is not None
    )
    during = [t for t in finished if first_poison_run <= t <= cycle_end]
    marks = [first_poison_run, *during, cycle_end]
    longest_stall = max(b - a for a, b in itertools.pairwise(marks))
    completed = sum(info is not None and info.state == "completed" for info in infos.values())
    ordinary_dead = [job_id for job_id in ordinary if job_id in letters]
    # Processes that ran an exiting job died in it: only they explain a second run.
    died = {r.pid for j in exiting for r in runs.started.get(j, [])}
    ordinary_reruns = sum(runs.count(job_id) - 1 for job_id in ordinary if runs.count(job_id))
    delays = processes.restart_delays("pool")
    record(
        Row(
            scenario="3. poison jobs (raise, os._exit) in 2 processes",
            enqueued=len(ordinary) + len(poison),
            acknowledged=len(ordinary) + len(poison),
            completed=completed,
            lost=len(ordinary) - completed - len(ordinary_dead),
            reruns=ordinary_reruns,
            faults=f"{len(poison)} poison jobs, {len(died)} worker exits",
            seconds=time.monotonic() - started,
            notes=(
                f"seed {seed}; poison runs {sorted(runs.count(j) for j in poison)}"
                f" (max_retries={MAX_RETRIES}); {len(during)} ordinary jobs completed during the"
                f" {cycle_end - first_poison_run:.1f}s the poison cycled, longest stall"
                f" {longest_stall:.1f}s; restart delays up to {max(delays, default=0):g}s;"
                f" ordinary dead-lettered {len(ordinary_dead)}"
            ),
            extra={"longest_stall": longest_stall, "ordinary_during_cycle": len(during)},
        )
    )
    assert settled
    for job_id in sorted(poison):
        assert runs.count(job_id) == MAX_RETRIES + 1, (job_id, runs.started.get(job_id))
        assert job_id in letters, job_id
        assert letters[job_id].attempts == MAX_RETRIES + 1, letters[job_id]
    for job_id in raising:
        assert letters[job_id].error == f"RuntimeError: poison job {job_id} fails every time"
    for job_id in exiting:
        assert "without finishing: the consumer running it died each time" in letters[job_id].error
    assert not ordinary_dead, [(j, letters[j].error, runs.started.get(j)) for j in ordinary_dead]
    assert completed == len(ordinary)
    # (A poison job's retries are runs by design.)
    assert not set(runs.unexplained_reruns(died)) - poison
    assert len(during) > 0, "no ordinary job completed while the poison jobs cycled"
    # No worker consumes only while a slot waits out its restart delay and starts again.
    assert longest_stall < max(delays, default=0) + VISIBILITY_TIMEOUT + 5

"""Schedulers killed and restarted: delayed jobs of mixed priorities wait while the supervised
worker processes (each a manager whose consumer runs the queue's scheduler) are SIGKILLed at
random and come back.

Every job is promoted and run once (a second run only where a killed process had the job),
and none starts before its due time, by the Redis server's clock: the handler records the
server's TIME as it starts; the due time is what the enqueue script put in the delayed set.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.store.keys import QueueKeys

from .figures import Row, full, record, scaled
from .handlers import Task
from .processes import Processes, settle
from .runs import job_states, read_runs

pytestmark = [pytest.mark.chaos, pytest.mark.anyio]

JOBS = scaled(1_000, 5_000)
#: Jobs are due 1 s to this many seconds after their enqueue, while the kills go on.
SPREAD = scaled(8, 25)
PRIORITIES = (-5, 0, 0, 5, 10)
VISIBILITY_TIMEOUT = 2.0


@pytest.mark.timeout(600 if full() else 120)
async def test_delayed_jobs_run_once_and_never_early_while_schedulers_die(
    processes: Processes, own_redis: aioredis.Redis
) -> None:
    seed = random.randrange(2**32)
    print(f"\nschedulers: seed {seed}")
    rng = random.Random(seed)
    name = f"sched-{seed}"
    keys = QueueKeys("streamq", name)
    started = time.monotonic()
    processes.worker(
        "pool",
        name,
        "--processes",
        "3",
        "--concurrency",
        "8",
        "--visibility-timeout",
        str(VISIBILITY_TIMEOUT),
    )
    due_ms: dict[str, int] = {}
    exact = 0  # due times read from the delayed set (the rest: a lower bound)
    kills: list[int] = []
    async with streamq.QueueManager(processes.redis_url) as qm:
        queue = qm.get_queue(name, Task)
        await settle(lambda: len(processes.consuming("pool")) == 3, 30, "the workers")

        # One call per (delay, priority): the delays in 0.1 s steps.
        batches: dict[tuple[float, int], int] = defaultdict(int)
        for _ in range(JOBS):
            delay = round(rng.uniform(1.0, SPREAD), 1)
            batches[delay, rng.choice(PRIORITIES)] += 1
        for (delay, priority), count in sorted(batches.items()):
            tasks = [Task(nap=rng.uniform(0, 0.05)) for _ in range(count)]
            seconds, micros = await own_redis.time()
            floor_ms = seconds * 1000 + micros // 1000 + round(delay * 1000)
            ids = await queue.enqueue_many(tasks, start_delay=delay, priority=priority)
            # The due time the script set; still in the delayed set (due 1 s on at the soonest),
            # else at least the server's time before the call plus the delay.
            scores = await own_redis.zmscore(keys.delayed, ids)
            for job_id, score in zip(ids, scores, strict=True):
                due_ms[job_id] = floor_ms if score is None else int(score)
                exact += score is not None

        kill_until = time.monotonic() + SPREAD + 1
        while time.monotonic() < kill_until:  # while jobs wait to be due
            await anyio.sleep(rng.uniform(0.5, 2.0))
            victim = await processes.kill_a_worker("pool", rng, timeout=60)
            if victim is not None:
                kills.append(victim)

        async def finished() -> bool:
            stats = await queue.stats()
            return stats.completed + stats.dead >= JOBS

        settled = await settle(finished, 120 if full() else 60, "every job to run")
        states = await job_states(queue, list(due_ms))
        runs = await read_runs(own_redis, name)

    completed = sum(state == "completed" for state in states.values())
    early = {
        job_id: (run.started_ms - due_ms[job_id])
        for job_id, job_runs in runs.started.items()
        for run in job_runs
        if run.started_ms < due_ms[job_id]
    }
    late_ms = sorted(job_runs[0].started_ms - due_ms[j] for j, job_runs in runs.started.items())
    unexplained = runs.unexplained_reruns(set(processes.killed))
    never_ran = [job_id for job_id in due_ms if runs.count(job_id) == 0]
    p50, p99 = (statistics.quantiles(late_ms, n=100)[i] for i in (49, 98)) if late_ms else (0, 0)
    record(
        Row(
            scenario="7. delayed jobs, schedulers killed (3 processes)",
            enqueued=JOBS,
            acknowledged=len(due_ms),
            completed=completed,
            lost=sum(state not in ("completed", "dead") for state in states.values()),
            reruns=runs.reruns,
            faults=f"{len(kills)} SIGKILL",
            seconds=time.monotonic() - started,
            notes=(
                f"seed {seed}; started before due {len(early)}; first start after due: median"
                f" {p50:.0f} ms, p99 {p99:.0f} ms, max {max(late_ms, default=0)} ms (workers down"
                f" while due count); unexplained reruns {len(unexplained)}; due times exact for"
                f" {exact:,} jobs"
            ),
            extra={"late_p50_ms": p50, "late_p99_ms": p99, "early": len(early)},
        )
    )
    assert settled
    assert not early, f"started before due (ms early): {dict(list(early.items())[:10])}"
    assert completed == JOBS
    assert not never_ran, never_ran[:10]
    assert not unexplained, f"run again with no kill to explain it: {unexplained[:10]}"

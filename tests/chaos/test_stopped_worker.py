"""A stopped worker comes back: SIGSTOP a single-process worker while it runs a job, past its
visibility timeout, so that another worker takes the job over; then SIGCONT it.

The stale owner's handler then returns and it tries to acknowledge the job, and its heartbeat
fires: neither may take the job back or complete it a second time. Resumed once the new owner
completed the job, and again while the new owner still runs it.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from dataclasses import dataclass

import anyio
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.store.keys import QueueKeys

from .figures import Row, full, record, scaled
from .handlers import Task
from .processes import Processes, settle
from .runs import read_runs

pytestmark = [pytest.mark.chaos, pytest.mark.anyio]

ROUNDS = scaled(1, 4)
VISIBILITY_TIMEOUT = 2.0
#: Long enough that the new owner still runs the job when the stale one resumes ("during").
NAP = 3.0
LATE_ACK = "finished after its entry was reclaimed by another consumer"


@pytest.mark.timeout(600 if full() else 120)
@pytest.mark.parametrize("resume", ["after", "during"])
async def test_a_stopped_worker_that_resumes_neither_steals_nor_completes_twice(
    processes: Processes, own_redis: aioredis.Redis, resume: str
) -> None:
    seed = random.randrange(2**32)
    print(f"\nstopped worker ({resume}): seed {seed}")
    rng = random.Random(seed)
    started = time.monotonic()
    outcomes = [await _round(processes, own_redis, resume, n, rng) for n in range(ROUNDS)]
    record(
        Row(
            scenario=f"2. SIGSTOP past the visibility timeout, SIGCONT {resume} the takeover",
            enqueued=ROUNDS,
            acknowledged=ROUNDS,
            completed=sum(o.completions == 1 for o in outcomes),
            lost=sum(o.state != "completed" for o in outcomes),
            reruns=sum(o.runs - 1 for o in outcomes),
            faults=f"{ROUNDS} SIGSTOP/SIGCONT",
            seconds=time.monotonic() - started,
            notes=(
                f"seed {seed}; results by the new owner {sum(o.by_new_owner for o in outcomes)}"
                f"/{ROUNDS}; completions recorded {sum(o.completions for o in outcomes)};"
                f" stale finishes rejected {sum(o.stale_finished for o in outcomes)}"
            ),
        )
    )
    for outcome in outcomes:
        assert outcome.settled, outcome
        assert outcome.state == "completed", outcome
        assert outcome.by_new_owner, outcome  # the result is the new owner's PID
        assert outcome.attempts == 2, outcome
        assert outcome.runs == 2 and outcome.completions == 1, outcome
        assert outcome.stale_finished, outcome  # the stale run did finish, and was turned down
        assert outcome.finished_at_kept, outcome
        assert outcome.pending == 0, outcome


@dataclass(frozen=True)
class Outcome:
    settled: bool
    state: str
    by_new_owner: bool
    attempts: int
    runs: int
    completions: int
    stale_finished: bool
    #: The completion's time did not change after the new owner's completion.
    finished_at_kept: bool
    pending: int


async def _round(
    processes: Processes, client: aioredis.Redis, resume: str, n: int, rng: random.Random
) -> Outcome:
    name = f"stopped-{uuid.uuid4().hex[:8]}"
    vt = ("--visibility-timeout", str(VISIBILITY_TIMEOUT))
    stale = processes.worker(f"stale-{n}", name, *vt)
    async with streamq.QueueManager(processes.redis_url) as qm:
        queue = qm.get_queue(name, Task)
        await settle(lambda: f"worker {stale.pid}: " in processes.log(f"stale-{n}"), 30, "A up")
        job_id = await queue.enqueue(Task(nap=NAP))

        async def started_on(pids: list[int]) -> bool:
            runs = (await read_runs(client, name)).started.get(job_id, [])
            return [run.pid for run in runs] == pids

        async def completed_at() -> float | None:
            info = await queue.get_job(job_id)
            return info.finished_at if info is not None and info.state == "completed" else None

        async def completed() -> bool:
            return await completed_at() is not None

        ok = await settle(lambda: started_on([stale.pid]), 30, "the run on the first worker")
        await anyio.sleep(rng.uniform(0, 0.5))  # somewhere in the run
        os.kill(stale.pid, signal.SIGSTOP)
        new = processes.worker(f"new-{n}", name, *vt)
        ok = ok and await settle(
            lambda: started_on([stale.pid, new.pid]), 30, "the takeover by the second worker"
        )
        if resume == "after":
            ok = ok and await settle(completed, 30, "the new owner to complete the job")
        os.kill(stale.pid, signal.SIGCONT)
        ok = ok and await settle(
            lambda: LATE_ACK in processes.log(f"stale-{n}"), 30, "the stale owner's late ack"
        )
        ok = ok and await settle(completed, 30, "the job to complete")
        first_finished_at = await completed_at()
        # Whatever the stale worker still does (heartbeat, acks, hand-back on stop) is done
        # once it exited.
        for process in (stale, new):
            process.send_signal(signal.SIGTERM)
            ok = ok and await settle(lambda p=process: p.poll() is not None, 30, "an exit")
        info = await queue.get_job(job_id)
        runs = await read_runs(client, name)
        stats = await queue.stats()
        pending = (await client.xpending(QueueKeys("streamq", name).stream, name))["pending"]
    return Outcome(
        settled=ok,
        state=info.state if info else "unknown",
        by_new_owner=info is not None and info.result == new.pid,
        attempts=info.attempts if info else 0,
        runs=runs.count(job_id),
        completions=stats.completed,
        stale_finished=stale.pid in runs.finished.get(job_id, []),
        finished_at_kept=info is not None and info.finished_at == first_finished_at,
        pending=pending,
    )

"""``python -m streamq worker``: one process and a supervised pool, against a real Redis.

The worker processes are real ``python -m streamq worker`` commands; a job's result is the PID
of the process that ran it (``tests/tools/handlers.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any, cast

import anyio
import pytest
from click.testing import CliRunner

import streamq
from streamq.ops.cli import main
from streamq.testing.localserver import free_port

from .. import processes
from ..helpers import wait_until
from ..processes import Workers, alive, children, exited
from ..tools.handlers import Nap

pytestmark = [pytest.mark.timeout(90)]

HANDLERS = "tests.tools.handlers"

# A Redis of this module's own, and the worker fixtures (pytest finds them among its names).
anyio_backend, redis_url = processes.anyio_backend, processes.redis_url
workers, producer = processes.workers, processes.producer


# -- the command line itself ------------------------------------------------------------------


def test_help_names_the_commands_and_options() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "worker" in result.output
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0
    for option in (
        "--queue",
        "--url",
        "--processes",
        "--concurrency",
        "--grace",
        "MODULE:FUNCTION",
    ):
        assert option in result.output
    assert "STREAMQ_REDIS_URL" in result.output


def test_help_says_the_url_it_would_use() -> None:
    """It said the built-in default even when $STREAMQ_REDIS_URL named another server."""
    env = {**os.environ, "STREAMQ_REDIS_URL": "redis://user:secret@example.com:6380/2"}
    shown = _worker_help(env)
    assert "[default: redis://user:***@example.com:6380/2 from $STREAMQ_REDIS_URL]" in shown
    assert "secret" not in shown
    del env["STREAMQ_REDIS_URL"]
    assert "[default: redis://127.0.0.1:6379/0]" in _worker_help(env)


def _worker_help(env: dict[str, str]) -> str:
    """``worker --help`` in a process of its own (the help is made at import), as one line."""
    command = [sys.executable, "-m", "streamq", "worker", "--help"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=True)
    return " ".join(done.stdout.split())


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "is not module:function"),
        ("no_such_module_here:handle", "no module named 'no_such_module_here'"),
        (f"{HANDLERS}:missing", "has no 'missing'"),
        (f"{HANDLERS}:NOT_A_FUNCTION", "handler must be callable, got a int"),
        (f"{HANDLERS}:AClass", "handler 'AClass' is a class, not a function"),
        (f"{HANDLERS}:takes_nothing", "handler 'takes_nothing' cannot be called with one argument"),
    ],
)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_bad_target_is_one_clear_line(target: str, message: str, processes: str) -> None:
    result = CliRunner().invoke(main, ["worker", target, "--processes", processes])
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue", "a{b"], "queue name (--queue) 'a{b' contains '{'"),
        (["--group", "two words"], "consumer group 'two words' contains ' '"),
    ],
)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_bad_queue_or_group_name_is_one_clear_line(
    args: list[str], message: str, processes: str
) -> None:
    result = CliRunner().invoke(
        main, ["worker", f"{HANDLERS}:report_pid", *args, "--processes", processes]
    )
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output


@pytest.mark.parametrize("processes", ["1", "2"])
def test_an_unreachable_server_is_one_clear_line(processes: str) -> None:
    port = free_port()  # nothing listens there
    result = CliRunner().invoke(
        main,
        [
            "worker",
            f"{HANDLERS}:report_pid",
            "--url",
            f"redis://127.0.0.1:{port}/0",
            "--processes",
            processes,
        ],
    )
    assert result.exit_code == 1
    assert "cannot connect to Redis" in result.output and "Traceback" not in result.output


def test_bad_numbers_are_usage_errors() -> None:
    for args in (["--processes", "0"], ["--concurrency", "-1"], ["--timeout", "0"]):
        result = CliRunner().invoke(main, ["worker", f"{HANDLERS}:report_pid", *args])
        assert result.exit_code == 2, args
        assert "Invalid value" in result.output


# -- one worker process -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_worker_runs_jobs_typed_by_the_handlers_annotation(
    workers: Workers, producer: streamq.QueueManager, queue_name: str, redis_url: str
) -> None:
    worker = workers.start(f"{HANDLERS}:nap", "--queue", queue_name)
    queue = producer.get_queue(queue_name, Nap)
    ids = await queue.enqueue_many([Nap(0.01)] * 20)
    results = {await queue.wait_for(job_id, timeout=30) for job_id in ids}
    assert results == {worker.pid}
    # The worker decodes with the handler's type: what does not match it is a dead letter.
    async with streamq.QueueManager(redis_url) as untyped_side:
        untyped = untyped_side.get_queue(queue_name)
        bad = await untyped.enqueue({"seconds": "not a number"})
        with pytest.raises(streamq.JobFailed, match="seconds"):
            await untyped.wait_for(bad, timeout=30)
    worker.send_signal(signal.SIGTERM)
    assert await exited(worker, 15) == 0


@pytest.mark.anyio
async def test_a_plain_function_handler_and_the_default_queue_name(
    workers: Workers, producer: streamq.QueueManager
) -> None:
    worker = workers.start(f"{HANDLERS}:sync_report_pid")  # consumes the queue "sync_report_pid"
    queue = producer.get_queue("sync_report_pid", int)
    job_id = await queue.enqueue(1)
    assert await queue.wait_for(job_id, timeout=30) == worker.pid
    worker.send_signal(signal.SIGINT)
    assert await exited(worker, 15) == 0


@pytest.mark.anyio
async def test_sigterm_lets_the_running_job_finish(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    worker = workers.start(f"{HANDLERS}:nap", "--queue", queue_name)
    queue = producer.get_queue(queue_name, Nap)
    job_id = await queue.enqueue(Nap(1.5))
    await wait_until(lambda: _state(queue, job_id, "active"), timeout=30, what="the job to start")
    worker.send_signal(signal.SIGTERM)
    assert await exited(worker, 15) == 0
    info = await queue.get_job(job_id)
    assert info is not None and info.state == "completed" and info.result == worker.pid


@pytest.mark.anyio
async def test_a_second_signal_cancels_the_running_job_which_is_handed_back(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    worker = workers.start(f"{HANDLERS}:nap", "--queue", queue_name, "--grace", "60")
    queue = producer.get_queue(queue_name, Nap)
    job_id = await queue.enqueue(Nap(3600))
    await wait_until(lambda: _state(queue, job_id, "active"), timeout=30, what="the job to start")
    worker.send_signal(signal.SIGTERM)
    await wait_until(lambda: "get 60s to finish" in workers.log(worker), what="the first signal")
    await anyio.sleep(0.2)
    assert worker.poll() is None  # the job still runs: it has 60 s
    worker.send_signal(signal.SIGTERM)
    assert await exited(worker, 10) == 0
    # Handed back at once (the visibility timeout is a minute), as the same attempt.
    attempts: list[int] = []
    ran = anyio.Event()

    async def handle(job: streamq.Job[Nap]) -> None:
        attempts.append(job.attempt)
        ran.set()

    await queue.consume(handle)
    with anyio.fail_after(10):
        await ran.wait()
    assert attempts == [1]


# -- a supervised pool --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_processes_share_the_work_and_a_killed_one_is_replaced(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    supervisor = workers.start(f"{HANDLERS}:nap", "--queue", queue_name, "--processes", "2")
    first = await consuming(workers, supervisor)
    queue = producer.get_queue(queue_name, Nap)
    # Jobs of 10 ms: one process alone would need 0.4 s, so both take a share.
    ids = await queue.enqueue_many([Nap(0.01)] * 400)
    ran_by = {await queue.wait_for(job_id, timeout=30) for job_id in ids}
    assert ran_by == first

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    (replacement,) = await consuming(workers, supervisor, besides=frozenset(first))
    ids = await queue.enqueue_many([Nap(0.01)] * 400)
    ran_by = {await queue.wait_for(job_id, timeout=30) for job_id in ids}
    assert ran_by == first - {victim} | {replacement}

    supervisor.send_signal(signal.SIGTERM)
    assert await exited(supervisor, 30) == 0
    assert not any(alive(pid) for pid in (first | {replacement}))


async def consuming(
    workers: Workers,
    supervisor: subprocess.Popen[bytes],
    count: int = 2,
    besides: frozenset[int] = frozenset(),
) -> set[int]:
    """The supervisor's workers not in ``besides``, once it runs ``count`` live ones that all
    consume."""

    def ready() -> bool:
        pids = {pid for pid in children(supervisor.pid) if alive(pid)}
        log = workers.log(supervisor)
        return (
            len(pids) == count
            and not pids <= besides
            and all(f"worker {pid}: " in log for pid in pids)
        )

    await wait_until(ready, timeout=30, what=f"{count} workers consuming")
    return {pid for pid in children(supervisor.pid) if alive(pid)} - besides


@pytest.mark.anyio
async def test_ctrl_c_reaches_each_worker_once_so_running_jobs_finish(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    # A terminal's Ctrl+C signals the whole foreground process group. Were the workers in it,
    # they would get SIGINT twice (from the terminal and from the supervisor), and a second
    # signal cancels running jobs.
    supervisor = workers.start(
        f"{HANDLERS}:nap", "--queue", queue_name, "--processes", "2", new_session=True
    )
    await consuming(workers, supervisor)
    queue = producer.get_queue(queue_name, Nap)
    ids = await queue.enqueue_many([Nap(1.5), Nap(1.5)])
    for job_id in ids:
        await wait_until(lambda j=job_id: _state(queue, j, "active"), timeout=30, what="starts")
    os.killpg(supervisor.pid, signal.SIGINT)
    assert await exited(supervisor, 30) == 0
    for job_id in ids:
        info = await queue.get_job(job_id)
        assert info is not None and info.state == "completed"


@pytest.mark.anyio
async def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
    workers: Workers, queue_name: str
) -> None:
    supervisor = workers.start(f"{HANDLERS}:report_pid", "--queue", queue_name, "--processes", "2")
    orphans = await consuming(workers, supervisor)
    supervisor.kill()
    await wait_until(
        lambda: not any(alive(pid) for pid in orphans), timeout=15, what="orphans to stop"
    )


@pytest.mark.anyio
async def test_a_worker_that_keeps_crashing_is_restarted_with_a_growing_delay(
    workers: Workers, queue_name: str
) -> None:
    supervisor = workers.start(f"{HANDLERS}:report_pid", "--queue", queue_name, "--processes", "2")
    await wait_until(lambda: len(children(supervisor.pid)) == 2, timeout=30, what="2 workers")
    replaced_at: list[float] = []
    victim = min(children(supervisor.pid))
    for _ in range(3):  # the same slot's worker each time
        known = set(children(supervisor.pid))
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        await wait_until(
            lambda known=known: len(set(children(supervisor.pid)) - known) == 1,
            timeout=15,
            what="a replacement",
        )
        replaced_at.append(time.monotonic() - killed_at)
        victim = (set(children(supervisor.pid)) - known).pop()
    # 0.5 s, 1 s, 2 s (plus the start of a process)
    assert replaced_at[0] < replaced_at[1] < replaced_at[2], replaced_at
    assert replaced_at[2] >= 2.0
    supervisor.send_signal(signal.SIGTERM)
    assert await exited(supervisor, 30) == 0


async def _state(queue: streamq.Queue[Any], job_id: str, state: str) -> bool:
    info = await queue.get_job(job_id)
    return info is not None and info.state == state


# -- the worker's hooks and settings ------------------------------------------------------------


@pytest.mark.anyio
async def test_a_handler_enqueues_through_its_manager_and_the_hooks_run_around_it(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    worker = workers.start(
        f"{HANDLERS}:count_down",
        "--queue",
        queue_name,
        "--on-startup",
        f"{HANDLERS}:note_startup",
        "--on-shutdown",
        f"{HANDLERS}:note_shutdown",
    )
    queue = producer.get_queue(queue_name, int)
    await queue.enqueue(3)
    # 3 -> 2 -> 1 -> 0, each enqueued by the handler of the one before.
    await wait_until(lambda: _state(queue, "n0", "completed"), timeout=30, what="the last job")
    worker.send_signal(signal.SIGTERM)
    assert await exited(worker, 15) == 0
    raw = cast("list[bytes]", await producer.redis.lrange(f"hooks:{worker.pid}", 0, -1))
    noted = [n.decode() for n in raw]
    assert len(noted) == 2 and noted[0].startswith("startup ") and noted[1] == "shutdown"


@pytest.mark.anyio
async def test_broadcast_gives_every_worker_process_every_job(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    pool = workers.start(
        f"{HANDLERS}:report_pid", "--queue", queue_name, "--broadcast", "--processes", "2"
    )
    queue = producer.get_queue(queue_name, int)
    await wait_until(lambda: _groups(queue, 2), timeout=30, what="a group per worker")
    groups = [g.name for g in await queue.groups()]
    assert all(g.startswith(f"{queue_name}:") for g in groups)
    job_id = await queue.enqueue(1)
    pids = {await queue.wait_for(job_id, timeout=30, group=g) for g in groups}
    assert pids == set(children(pool.pid))
    pool.send_signal(signal.SIGTERM)
    assert await exited(pool, 20) == 0


async def _groups(queue: streamq.Queue[int], n: int) -> bool:
    return len(await queue.groups()) == n


@pytest.mark.anyio
async def test_backoff_and_prefetch_and_rate_limits_reach_the_consumer(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    worker = workers.start(
        f"{HANDLERS}:fail_on_negative",
        "--queue",
        queue_name,
        *("--max-retries", "2", "--backoff", "0.05", "--prefetch", "0", "--rate-limit", "50/1"),
        *("--per-key-concurrency", "2", "--per-key-rate-limit", "5/0.5"),
    )
    queue = producer.get_queue(queue_name, int)
    assert await queue.wait_for(await queue.enqueue(5), timeout=30) == 5  # the worker is up
    # The per-key limits, as the consumer registered them for its group.
    limits = await producer.redis.hget(f"streamq:{{{queue_name}}}:fair:limits", queue_name)
    assert limits == b"2 5 500"
    started = time.monotonic()
    with pytest.raises(streamq.JobFailed, match="negative"):
        await queue.wait_for(await queue.enqueue(-1), timeout=30)
    # Two retries 0.05 s apart: the default backoff would take 1 s + 2 s at least.
    assert time.monotonic() - started < 1.5
    worker.send_signal(signal.SIGTERM)
    assert await exited(worker, 15) == 0


@pytest.mark.anyio
async def test_global_concurrency_holds_across_the_worker_processes(
    workers: Workers, producer: streamq.QueueManager, queue_name: str
) -> None:
    pool = workers.start(
        f"{HANDLERS}:nap",
        "--queue",
        queue_name,
        *("--processes", "2", "--concurrency", "5", "--global-concurrency", "2"),
    )
    queue = producer.get_queue(queue_name, Nap)
    slots = f"streamq:{{{queue_name}}}:slots:{queue_name}"
    started = time.monotonic()
    ids = await queue.enqueue_many([Nap(0.3)] * 8)
    most = 0
    with anyio.fail_after(30):
        for job_id in ids:
            while (info := await queue.get_job(job_id)) is None or info.state != "completed":
                # Slots held (scored by when they lapse; a waiters' mark scores +inf).
                most = max(most, await producer.redis.zcount(slots, "-inf", "(+inf"))
                await anyio.sleep(0.01)
    # 8 naps of 0.3 s, 2 at a time: 4 rounds, where the 10 handlers would take one.
    assert time.monotonic() - started >= 4 * 0.3
    assert most == 2
    pool.send_signal(signal.SIGTERM)
    assert await exited(pool, 20) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate-limit", "ten/1"], "is not JOBS/SECONDS"),
        (["--rate-limit", "0/1"], "is not JOBS/SECONDS"),
        (["--per-key-rate-limit", "5/x"], "is not JOBS/SECONDS"),
        (["--per-key-concurrency", "0"], "Invalid value"),
        (["--global-concurrency", "0"], "Invalid value"),
        (["--prefetch", "-1"], "Invalid value"),
    ],
)
def test_bad_worker_settings_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["worker", f"{HANDLERS}:report_pid", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broadcast", "--group", "g"], "--broadcast makes a group of each worker's own"),
        (["--on-startup", f"{HANDLERS}:nope"], "has no 'nope'"),
        (["--on-shutdown", f"{HANDLERS}:takes_nothing"], "must take one argument"),
    ],
)
def test_bad_hooks_and_broadcast_with_a_group_are_one_clear_line(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["worker", f"{HANDLERS}:report_pid", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and result.output.startswith("Error: ")

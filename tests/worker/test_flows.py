"""Workflows: chains, groups and trees of steps over several queues (on a cluster, several
slots), their results, failures, deduplication and cancel."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

import streamq

from ..helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


def names(queue_name: str, count: int) -> list[str]:
    """Queues of one test: different hash tags, so different slots of a cluster."""
    return [f"{queue_name}-{i}" for i in range(count)]


async def test_a_chain_of_50_steps_over_3_queues_runs_in_order_passing_results_along(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queues = names(queue_name, 3)
    order: list[int] = []

    async def step(job: streamq.Job[int]) -> int:
        before = await job.children_results()
        previous = sum(before.values()) if before else 0
        assert len(before) == (0 if job.data == 0 else 1)
        order.append(job.data)
        return previous + job.data

    for name in queues:
        await qm.get_queue(name, int).consume(step)
    flow = streamq.chain(*(streamq.Step(queues[i % 3], i) for i in range(50)))
    root_id = await qm.enqueue_flow(flow)
    last = qm.get_queue(queues[49 % 3])
    assert await last.wait_for(root_id, timeout=30) == sum(range(50))
    assert order == list(range(50))
    info = await last.get_job(root_id)
    assert info is not None and info.state == "completed" and info.parent is None
    assert len(info.children) == 1 and info.children[0].queue == queues[48 % 3]
    child = await qm.get_queue(info.children[0].queue).get_job(info.children[0].id)
    assert child is not None and child.parent == streamq.JobRef(queues[49 % 3], root_id)


async def test_a_group_of_1000_children_then_a_callback_that_runs_once_after_the_last(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    fetch, report = names(queue_name, 2)
    finished: list[str] = []
    runs: list[dict[str, Any]] = []

    async def fetch_one(job: streamq.Job[int]) -> int:
        finished.append(job.id)
        return job.data * 2

    async def summarize(job: streamq.Job[str]) -> int:
        results = await job.children_results()
        runs.append({"results": results, "finished before": len(finished)})
        return sum(results.values())

    await qm.get_queue(fetch).consume(fetch_one, concurrency=50)
    await qm.get_queue(report).consume(summarize)
    flow = streamq.group(
        *(streamq.Step(fetch, i) for i in range(1000)), then=streamq.Step(report, "sum")
    )
    root_id = await qm.enqueue_flow(flow)
    assert await qm.get_queue(report).wait_for(root_id, timeout=60) == 2 * sum(range(1000))
    await anyio.sleep(0.5)  # a second run would have started by now
    assert len(runs) == 1
    assert runs[0]["finished before"] == 1000
    assert sorted(runs[0]["results"].values()) == [2 * i for i in range(1000)]


async def test_a_three_level_tree_runs_each_parent_after_its_own_children(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    a, b, c = names(queue_name, 3)
    done: list[str] = []

    async def handle(job: streamq.Job[str]) -> str:
        results = await job.children_results()
        done.append(job.data)
        return job.data + "(" + ",".join(sorted(results.values())) + ")"

    for name in (a, b, c):
        await qm.get_queue(name).consume(handle)
    tree = streamq.Step(
        a,
        "root",
        children=[
            streamq.Step(b, "left", children=[streamq.Step(c, "l1"), streamq.Step(c, "l2")]),
            streamq.Step(c, "right", children=[streamq.Step(b, "r1")]),
        ],
    )
    root_id = await qm.enqueue_flow(tree)
    result = await qm.get_queue(a).wait_for(root_id, timeout=30)
    assert result == "root(left(l1(),l2()),right(r1()))"
    assert done[-1] == "root"
    assert done.index("left") > max(done.index("l1"), done.index("l2"))
    assert done.index("right") > done.index("r1")


async def test_a_parent_waits_in_waiting_children_until_its_children_completed(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    work, report = names(queue_name, 2)
    release = anyio.Event()

    async def slow(job: streamq.Job[int]) -> int:
        await release.wait()
        return job.data

    await qm.get_queue(work).consume(slow)
    await qm.get_queue(report).consume(lambda job: "ran")
    root_id = await qm.enqueue_flow(
        streamq.Step(report, "r", children=[streamq.Step(work, 1), streamq.Step(work, 2)])
    )
    info = await qm.get_queue(report).get_job(root_id)
    assert info is not None and info.state == "waiting_children"
    assert [c.queue for c in info.children] == [work, work]
    release.set()
    assert await qm.get_queue(report).wait_for(root_id, timeout=10) == "ran"


async def test_a_dead_child_fails_its_parent_naming_it_and_cancels_its_siblings(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    work, report = names(queue_name, 2)
    parent_ran: list[str] = []

    async def handle(job: streamq.Job[str]) -> str:
        if job.data == "bad":
            raise ValueError("the source is down")
        if job.data == "slow":
            await anyio.sleep(30)
        return job.data

    await qm.get_queue(work).consume(handle, max_retries=0)
    await qm.get_queue(report).consume(lambda job: parent_ran.append(job.id))
    bad = streamq.Step(work, "bad", job_id=f"{queue_name}-bad")
    slow = streamq.Step(work, "slow", job_id=f"{queue_name}-slow")
    root_id = await qm.enqueue_flow(
        streamq.Step(report, "r", children=[bad, slow, streamq.Step(work, "ok")])
    )
    with pytest.raises(streamq.JobFailed, match=f"child {queue_name}-bad .*the source is down"):
        await qm.get_queue(report).wait_for(root_id, timeout=10)
    [letter] = await qm.get_queue(report).dead_letters()
    assert letter.job_id == root_id and f"{queue_name}-bad" in letter.error
    await wait_until(
        _state_is(qm.get_queue(work), f"{queue_name}-slow", "cancelled"),
        what="the running sibling to be cancelled",
    )
    assert parent_ran == []


async def test_a_dead_child_is_left_out_of_the_results_with_on_child_failure_ignore(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    work, report = names(queue_name, 2)

    async def handle(job: streamq.Job[str]) -> str:
        if job.data == "bad":
            raise ValueError("nope")
        return job.data

    async def collect(job: streamq.Job[str]) -> list[str]:
        return sorted((await job.children_results()).values())

    await qm.get_queue(work).consume(handle, max_retries=0)
    await qm.get_queue(report).consume(collect)
    root_id = await qm.enqueue_flow(
        streamq.Step(
            report,
            "r",
            children=[streamq.Step(work, "a"), streamq.Step(work, "bad"), streamq.Step(work, "b")],
            on_child_failure="ignore",
        )
    )
    assert await qm.get_queue(report).wait_for(root_id, timeout=10) == ["a", "b"]


async def test_a_flow_is_deduplicated_by_its_root_id(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    work, report = names(queue_name, 2)
    root_id = f"{queue_name}-monthly"
    flow = streamq.Step(report, "r", job_id=root_id, children=[streamq.Step(work, 1)])
    assert await qm.enqueue_flow(flow) == root_id
    assert await qm.enqueue_flow(flow) == root_id
    stats = await qm.get_queue(work).stats()
    assert stats.waiting == 1, "the second enqueue_flow added nothing"
    ran: list[int] = []
    await qm.get_queue(work).consume(lambda job: ran.append(job.data))
    await qm.get_queue(report).consume(lambda job: "done")
    assert await qm.get_queue(report).wait_for(root_id, timeout=10) == "done"
    assert ran == [1], "the second enqueue_flow added nothing"
    # Finished: the id may be used again.
    assert await qm.enqueue_flow(flow) == root_id
    await wait_until(lambda: ran == [1, 1], what="the flow to run again")


async def test_cancelling_a_running_flow_cancels_its_tree(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    a, b = names(queue_name, 2)
    started = anyio.Event()

    async def long(job: streamq.Job[str]) -> None:
        started.set()
        await anyio.sleep(30)

    await qm.get_queue(b).consume(long)
    await qm.get_queue(a).consume(lambda job: "ran")
    leaf = streamq.Step(b, "leaf", job_id=f"{queue_name}-leaf")
    middle = streamq.Step(a, "middle", job_id=f"{queue_name}-middle", children=[leaf])
    root_id = await qm.enqueue_flow(streamq.Step(a, "root", children=[middle]))
    with anyio.fail_after(10):
        await started.wait()
    assert await qm.get_queue(a).cancel(root_id) is True
    for queue, job_id in ((a, root_id), (a, f"{queue_name}-middle"), (b, f"{queue_name}-leaf")):
        await wait_until(_state_is(qm.get_queue(queue), job_id, "cancelled"), what=job_id)


async def test_a_step_id_held_by_an_unfinished_job_leaves_nothing_of_the_flow(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    work, report = names(queue_name, 2)
    await qm.get_queue(work).enqueue("busy", job_id="taken")
    flow = streamq.Step(
        report,
        "r",
        job_id=f"{queue_name}-root",
        children=[
            streamq.Step(work, 1, job_id=f"{queue_name}-free"),
            streamq.Step(work, 2, job_id="taken"),
        ],
    )
    with pytest.raises(streamq.JobInUse, match="was not created"):
        await qm.enqueue_flow(flow)
    assert await qm.get_queue(report).get_job(f"{queue_name}-root") is None
    assert await qm.get_queue(work).get_job(f"{queue_name}-free") is None


def test_steps_are_checked_when_made() -> None:
    with pytest.raises(streamq.InvalidArgument, match="on_child_failure"):
        streamq.Step("q", 1, on_child_failure="retry")  # type: ignore[arg-type]
    with pytest.raises(streamq.InvalidArgument, match="children must be Steps"):
        streamq.Step("q", 1, children=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="braces"):
        streamq.Step("{q}", 1)
    with pytest.raises(streamq.InvalidArgument, match="at least one"):
        streamq.chain()
    with pytest.raises(streamq.InvalidArgument, match="takes Steps"):
        streamq.group("a", then=streamq.Step("q", 1))  # type: ignore[arg-type]


async def test_bad_flows_are_refused_before_anything_is_written(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    typed = qm.get_queue(queue_name, int)
    with pytest.raises(streamq.EncodeError):
        await qm.enqueue_flow(
            streamq.Step(queue_name, 1, children=[streamq.Step(queue_name, "not an int")])
        )
    with pytest.raises(streamq.InvalidArgument, match="two steps of the flow have job_id"):
        await qm.enqueue_flow(
            streamq.Step(
                queue_name, 1, job_id="x", children=[streamq.Step(queue_name, 2, job_id="x")]
            )
        )
    assert (await typed.stats()).waiting == 0


def _state_is(queue: streamq.Queue[Any], job_id: str, state: str) -> Any:
    async def check() -> bool:
        info = await queue.get_job(job_id)
        return info is not None and info.state == state

    return check


@pytest.mark.parametrize("replay_all", [False, True], ids=["one", "all"])
async def test_retry_dead_of_a_parent_replays_its_failed_and_cancelled_children_then_runs_it(
    qm: streamq.QueueManager, queue_name: str, replay_all: bool
) -> None:
    """The fix-the-bug-then-replay path: a child fails, its parent goes to the dead letters and
    its running sibling is cancelled; once fixed, replaying the parent replays both."""
    work, report = names(queue_name, 2)
    fixed = anyio.Event()
    slow_started = anyio.Event()
    runs: list[str] = []

    async def handle(job: streamq.Job[str]) -> str:
        runs.append(job.data)
        if job.data == "buggy" and not fixed.is_set():
            raise ValueError("the bug")
        if job.data == "slow" and not fixed.is_set():
            slow_started.set()
            await anyio.sleep(30)
        return job.data.upper()

    async def collect(job: streamq.Job[str]) -> list[str]:
        return sorted((await job.children_results()).values())

    await qm.get_queue(work).consume(handle, max_retries=0)
    await qm.get_queue(report).consume(collect)
    children = [
        streamq.Step(work, "ok"),
        streamq.Step(work, "slow", job_id=f"{queue_name}-slow"),
        streamq.Step(work, "buggy", job_id=f"{queue_name}-buggy"),
    ]
    with anyio.fail_after(10):
        root_id = await qm.enqueue_flow(streamq.Step(report, "r", children=children))
        await slow_started.wait()
    with pytest.raises(streamq.JobFailed, match="the bug"):
        await qm.get_queue(report).wait_for(root_id, timeout=10)
    await wait_until(
        _state_is(qm.get_queue(work), f"{queue_name}-slow", "cancelled"), what="the cancel"
    )
    fixed.set()
    assert await qm.get_queue(report).retry_dead(None if replay_all else root_id) == 1
    assert await qm.get_queue(report).wait_for(root_id, timeout=10) == ["BUGGY", "OK", "SLOW"]
    assert sorted(runs) == ["buggy", "buggy", "ok", "slow", "slow"], "ok ran once"
    assert await qm.get_queue(work).dead_letters() == []
    assert await qm.get_queue(report).dead_letters() == []


async def test_children_that_retry_release_their_parent_once_with_the_last_attempt_s_results(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    work, report = names(queue_name, 2)
    attempts: dict[str, int] = {}
    parent_runs: list[dict[str, Any]] = []

    async def flaky(job: streamq.Job[int]) -> int:
        attempts[job.id] = job.attempt
        if job.attempt < 3:
            raise ValueError("not yet")
        return job.data

    async def collect(job: streamq.Job[str]) -> int:
        parent_runs.append(await job.children_results())
        return len(parent_runs)

    await qm.get_queue(work).consume(flaky, max_retries=2, backoff=0.01)
    await qm.get_queue(report).consume(collect)
    root_id = await qm.enqueue_flow(
        streamq.group(*(streamq.Step(work, i) for i in range(20)), then=streamq.Step(report, "r"))
    )
    assert await qm.get_queue(report).wait_for(root_id, timeout=20) == 1
    assert set(attempts.values()) == {3}
    assert sorted(parent_runs[0].values()) == list(range(20))


async def test_a_step_s_start_delay_counts_from_when_its_children_completed(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    work, report = names(queue_name, 2)
    finished_at: dict[str, float] = {}

    async def handle(job: streamq.Job[str]) -> str:
        if job.data == "child":
            await anyio.sleep(0.3)
        finished_at[job.data] = time.monotonic()
        return job.data

    await qm.get_queue(work).consume(handle)
    await qm.get_queue(report).consume(handle)
    started = time.monotonic()
    root_id = await qm.enqueue_flow(
        streamq.Step(report, "parent", start_delay=0.3, children=[streamq.Step(work, "child")])
    )
    assert await qm.get_queue(report).wait_for(root_id, timeout=10) == "parent"
    assert finished_at["child"] - started >= 0.3
    assert finished_at["parent"] - finished_at["child"] >= 0.3


async def test_a_child_s_finish_told_twice_counts_once(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    """A relay that died after applying an item and before deleting it has it applied again
    by another: the parent still waits for its other child."""
    work, report = names(queue_name, 2)
    release_b = anyio.Event()
    runs: list[str] = []

    async def handle(job: streamq.Job[str]) -> str:
        if job.data == "b":
            await release_b.wait()
        return job.data

    await qm.get_queue(work).consume(handle)
    await qm.get_queue(report).consume(lambda job: runs.append(job.id))
    a = streamq.Step(work, "a", job_id=f"{queue_name}-a")
    root_id = await qm.enqueue_flow(
        streamq.Step(report, "r", children=[a, streamq.Step(work, "b")])
    )
    await wait_until(_state_is(qm.get_queue(work), f"{queue_name}-a", "completed"), what="child a")
    for _ in range(2):  # a's finish, told again (twice)
        await redis.xadd(
            f"streamq:{{{work}}}:outbox",
            {
                "pa": f"{report}\t{root_id}",
                "c": f"{queue_name}-a",
                "s": "completed",
                "d": b"",
                "g": 0,
            },
        )
        await redis.publish(f"streamq:{{{work}}}:wake", "flow")

    await wait_until(_outbox_applied(redis, work), what="the copies to be applied")
    info = await qm.get_queue(report).get_job(root_id)
    assert info is not None and info.state == "waiting_children"
    release_b.set()
    assert await qm.get_queue(report).wait_for(root_id, timeout=10) is None
    await anyio.sleep(0.3)  # a second run would have started
    assert runs == [root_id]


def _outbox_applied(redis: Any, queue: str) -> Any:
    """Every item of the queue's outbox applied: a relay deletes what it applied with its
    next read, which a wake-up (published here) brings on."""

    async def check() -> bool:
        if await redis.xlen(f"streamq:{{{queue}}}:outbox") == 0:
            return True
        await redis.publish(f"streamq:{{{queue}}}:wake", "flow")
        return False

    return check


async def test_an_outbox_item_not_written_by_streamq_is_dropped_not_retried(
    qm: streamq.QueueManager, queue_name: str, redis: Any
) -> None:
    """Anything else in a queue's outbox is deleted by the relay (it used to stay pending, to
    be claimed and dropped again every sweep, or to stop the relay on a bad generation)."""
    await qm.get_queue(queue_name).consume(lambda job: job.data)
    outbox = f"streamq:{{{queue_name}}}:outbox"
    await redis.xadd(outbox, {"junk": "1"})
    await redis.xadd(outbox, {"pa": "q\tp", "c": "c", "s": "completed", "d": "", "g": "x"})
    await wait_until(_outbox_applied(redis, queue_name), what="the junk to be deleted")
    # The relay goes on: a real flow through the same queue still runs.
    root = await qm.enqueue_flow(
        streamq.Step(queue_name, "parent", children=[streamq.Step(queue_name, "child")])
    )
    assert await qm.get_queue(queue_name).wait_for(root, timeout=10) == "parent"

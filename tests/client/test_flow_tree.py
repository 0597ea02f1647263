"""Reading a flow's tree: breadth first, capped, and as deep as a chain is long."""

from __future__ import annotations

import pytest

from streamq.client.flows import read_flow_tree
from streamq.job import JobInfo, JobRef

pytestmark = pytest.mark.anyio


def _info(job_id: str, children: tuple[JobRef, ...]) -> JobInfo:
    return JobInfo(job_id, "waiting_children", 0, None, None, None, None, children=children)


async def test_a_chain_deeper_than_the_recursion_limit_is_read_whole() -> None:
    depth = 3000

    async def get_job(queue: str, job_id: str) -> JobInfo:
        n = int(job_id)
        return _info(job_id, (JobRef(queue, str(n + 1)),) if n + 1 < depth else ())

    tree = await read_flow_tree(get_job, "q", "0", most=depth)
    length = 1
    while tree.children:
        [tree] = tree.children
        length += 1
    assert length == depth and tree.id == str(depth - 1)


async def test_a_wide_fan_in_is_read_up_to_most_steps() -> None:
    async def get_job(queue: str, job_id: str) -> JobInfo:
        if job_id == "root":
            return _info(job_id, tuple(JobRef("c", str(n)) for n in range(50)))
        return _info(job_id, ())

    tree = await read_flow_tree(get_job, "q", "root", most=11)
    assert [c.id for c in tree.children] == [str(n) for n in range(10)]
    assert tree.unread == 40

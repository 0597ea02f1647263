"""A producer of flows for the test that kills producers.

    python tests/tools/flow_producer.py URL QUEUE FIRST

Enqueues flows ``QUEUE-flow-<n>`` for n = FIRST, FIRST + 1, ... until killed: a root on
``QUEUE-0`` with 4 children on ``QUEUE-1`` and ``QUEUE-2`` (one with 2 children of its own), each
step's id ``<root id>-<i>``. Before each it does RPUSH of n to ``test:{QUEUE}:begun``.
"""

from __future__ import annotations

import sys

import anyio

import streamq
from streamq.transport.connection import connect

#: Steps per flow (the root included).
STEPS = 7


def flow(queue: str, root_id: str) -> streamq.Step:
    def step(i: int, on: int, children: tuple[streamq.Step, ...] = ()) -> streamq.Step:
        return streamq.Step(f"{queue}-{on}", i, job_id=f"{root_id}-{i}", children=children)

    grandchildren = (step(5, 1), step(6, 2))
    return streamq.Step(
        f"{queue}-0",
        0,
        job_id=root_id,
        children=(step(1, 1), step(2, 2), step(3, 1, grandchildren), step(4, 2)),
    )


async def main(url: str, queue: str, first: int) -> None:
    marker = await connect(url)
    async with streamq.QueueManager(url) as qm:
        n = first
        while True:
            await marker.rpush(f"test:{queue}:begun", n)
            await qm.enqueue_flow(flow(queue, f"{queue}-flow-{n}"))
            n += 1


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))

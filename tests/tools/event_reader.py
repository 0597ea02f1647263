"""An event reader process for the tests of ``Queue.events``.

    python tests/tools/event_reader.py URL QUEUE NAME SINCE COUNT

Reads the queue's events from SINCE ('-' for None) and RPUSHes each as
``type:job_id:attempt:event_id`` to ``test:{QUEUE}:events:{NAME}``, exiting after COUNT events.
"""

from __future__ import annotations

import sys

import anyio

import streamq
from streamq.transport.connection import connect


async def main(url: str, queue_name: str, name: str, since: str, count: int) -> None:
    marker = await connect(url)
    async with streamq.QueueManager(url) as qm:
        seen = 0
        events = qm.get_queue(queue_name).events(since=None if since == "-" else since)
        async for event in events:
            await marker.rpush(
                f"test:{queue_name}:events:{name}",
                f"{event.type}:{event.job_id}:{event.attempt}:{event.id}",
            )
            seen += 1
            if seen == count:
                return


if __name__ == "__main__":
    url, queue_name, name, since, count = sys.argv[1:6]
    anyio.run(main, url, queue_name, name, since, int(count))

"""The job both web apps enqueue, its handler, and how an app opens its queue.

The handler runs in the web app itself (the default: one process to deploy), or, with
``IN_APP_WORKER=0`` in the app's environment, in worker processes of its own that scale apart
from the web servers:

    python -m streamq worker examples.web.tasks:count_words --queue word-counts
"""

from __future__ import annotations

import os

import msgspec

import streamq

QUEUE = "word-counts"

#: Seconds an endpoint waits for ``queue.call`` before answering 504 (the job still runs).
CALL_TIMEOUT = 10.0


class Document(msgspec.Struct):
    text: str


async def count_words(job: streamq.Job[Document]) -> int:
    return len(job.data.text.split())


async def open_queue(manager: streamq.QueueManager) -> streamq.Queue[Document]:
    """The app's queue; consumed here too unless ``IN_APP_WORKER=0`` (read at start-up, not at
    import, so one module serves both ways)."""
    queue = manager.get_queue(QUEUE, Document)
    if os.environ.get("IN_APP_WORKER", "1") != "0":
        # Runs in the manager's own task until the manager closes, which stops it gracefully.
        await queue.consume(count_words)
    return queue

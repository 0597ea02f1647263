"""Waiting until a queue has run what it has to run (``Queue.drain``), for tests: it polls
the queue's counts, a few reads every few milliseconds, so it is not for a hot path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import anyio

from ..job import QueueStats
from ..validation import check_seconds

if TYPE_CHECKING:
    from ..transport.connection import Client
    from .queue import Queue

__all__ = ("drain_queue",)

#: The first pause between two looks, doubled up to the last: a queue that drains at once
#: returns at once, one that takes seconds costs ten looks a second.
FIRST_PAUSE = 0.005
LAST_PAUSE = 0.1
#: Delayed and retrying jobs listed per look (soonest first) to count the due ones.
DUE_LOOKED_AT = 100


async def drain_queue(queue: Queue[Any], timeout: float, client: Client) -> None:
    """Return once nothing of ``queue`` waits (staged or in the stream, in any group), runs,
    or is delayed or retrying and due by the server's clock, and no recurring schedule of it
    is due to run; raise ``TimeoutError`` naming what is left after ``timeout`` seconds."""
    check_seconds(timeout, what="timeout")
    left = "not looked at yet"
    pause = FIRST_PAUSE
    with anyio.move_on_after(timeout):
        while left := await _left(queue, client):
            await anyio.sleep(pause)
            pause = min(pause * 2, LAST_PAUSE)
        return
    raise TimeoutError(f"queue {queue.name!r} did not drain within {timeout:g} s: {left}")


async def _left(queue: Queue[Any], client: Client) -> str:
    """What keeps the queue from being drained, or "" when nothing does."""
    before = await queue.stats()
    delayed = await _soonest(queue, "delayed", before.delayed)
    retrying = await _soonest(queue, "retrying", before.retrying)
    schedules = [s.next_run_at for s in await queue.recurring_schedules()]
    seconds, micros = await client.time()  # after the listings: what was due by then counts
    now = seconds + micros / 1_000_000
    due = {
        "delayed": sum(1 for at in delayed if at <= now),
        "retrying": sum(1 for at in retrying if at <= now),
        "recurring": sum(1 for at in schedules if at <= now),
    }
    if before.waiting or before.active or any(due.values()):
        return _described(before, due)
    # Only jobs (or runs) due later, as far as the listings saw; they were read apart from the
    # counts, so a job that moved between the reads (promoted, failed into a retry, fired)
    # could hide from both: the counts must not have changed meanwhile.
    if (delayed or retrying or schedules) and _counts(await queue.stats()) != _counts(before):
        return "jobs moved while looked at (looking again)"
    return ""


async def _soonest(
    queue: Queue[Any], state: Literal["delayed", "retrying"], count: int
) -> list[float]:
    """When the soonest ``DUE_LOOKED_AT`` jobs in ``state`` are due (server clock)."""
    if not count:
        return []
    jobs = await queue.jobs(state, min(count, DUE_LOOKED_AT))
    return [job.due_at for job in jobs if job.due_at is not None]


def _counts(stats: QueueStats) -> tuple[int, ...]:
    return (stats.waiting, stats.active, stats.delayed, stats.retrying, stats.completed, stats.dead)


def _described(stats: QueueStats, due: dict[str, int]) -> str:
    parts = [f"{stats.waiting} waiting", f"{stats.active} running"]
    for state, total in (("delayed", stats.delayed), ("retrying", stats.retrying)):
        # Only the soonest DUE_LOOKED_AT were looked at: there may be more due ones.
        more = due[state] == DUE_LOOKED_AT < total
        parts.append(f"{total} {state} ({due[state]}{'+' if more else ''} due)")
    if due["recurring"]:
        parts.append(f"{due['recurring']} recurring schedule(s) due to run")
    paused = "; the queue is paused (queue.resume())" if stats.paused else ""
    return ", ".join(parts) + paused

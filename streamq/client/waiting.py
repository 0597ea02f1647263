"""Waiting for a job's outcome (``Queue.wait_for``, ``Queue.call``): woken by the finishing
script's message on the queue's channel, not by polling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import JobCancelled, JobFailed, JobNotFound
from ..store.serialization import decode_result
from .inspection import TERMINAL, name_a_group

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from ..store.scripts import Scripts
    from .notices import QueueNotices

__all__ = ("WAIT_SLICE", "wait_for_job")

#: How long ``wait_for`` waits for its job's finish to be published before it reads the job's
#: state again anyway: a safety net (the subscription's confirmation, also after a lost
#: connection, already makes every waiter look again).
WAIT_SLICE = 5.0


async def wait_for_job(
    scripts: Scripts,
    keys: QueueKeys,
    notices: QueueNotices,
    job_id: str,
    timeout: float | None,
    group: str | None,
    *,
    register: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """The job's result once it completes (in ``group``); raises as ``Queue.wait_for`` says.
    ``register``: what registers the wait on the job (an enqueue that does, for ``call``);
    without it the first read of the job's state does."""
    queue = keys.queue
    registered = False
    try:
        with anyio.fail_after(timeout), notices.watch(job_id) as finished:
            if register is not None:
                finished.arm()  # before the enqueue: its finish may be published at once
                await register()
                registered = True
                await finished.wait(WAIT_SLICE)
                registered = not finished.published
                if finished.outcome is not None:
                    return _outcome(queue, job_id, *finished.outcome)
            while True:
                finished.arm()  # before the read: a finish published after it wakes the wait
                seen = await scripts.watch_job(
                    keys, job_id, "=" if registered else "+", group or ""
                )
                if seen is None:
                    raise JobNotFound(job_id, queue=queue)
                if not seen.state:
                    raise name_a_group(queue, job_id, group, seen.groups)
                if seen.state in TERMINAL:
                    registered = False  # the finishing script took the registration back
                    if seen.state == "completed":
                        return decode_result(seen.result)
                    if seen.state == "cancelled":
                        raise JobCancelled(job_id, queue=queue)
                    error = seen.error.decode(errors="replace") if seen.error else "dead"
                    raise JobFailed(job_id, error, queue=queue)
                registered = True
                await finished.wait(WAIT_SLICE)
                if finished.outcome is not None:
                    registered = False
                    return _outcome(queue, job_id, *finished.outcome)
                # A finish was published, yet the job is not finished: a broadcast job that
                # another group finished. The script took the registration: register again.
                registered = not finished.published
                notices.check()
    finally:
        if registered:  # gave up (timeout, cancellation) before the job finished
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await scripts.watch_job(keys, job_id, "-", group or "")


def _outcome(queue: str, job_id: str, state: str, detail: bytes) -> Any:
    """The result, or the error, that the finish's message carried."""
    if state == "completed":
        return decode_result(detail)
    if state == "cancelled":
        raise JobCancelled(job_id, queue=queue)
    raise JobFailed(job_id, detail.decode(errors="replace") or state, queue=queue)

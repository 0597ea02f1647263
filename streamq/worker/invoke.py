"""Running a handler on a job: an ``async def`` in the task, a plain function in a worker thread,
within the job's timeout; the outcome is the encoded result or the reason the attempt failed."""

from __future__ import annotations

import inspect
import threading
import traceback
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import anyio
import anyio.lowlevel

from ..job import Job
from ..store.serialization import encode_result

__all__ = ("Invoker", "Outcome", "traceback_of")

T = TypeVar("T")

#: The most of a failed handler's traceback a dead letter keeps (its end: where it raised).
MAX_TRACEBACK = 8000


class Outcome(NamedTuple):
    """An attempt's outcome: the encoded result, or why it failed (and what the handler
    raised, if it did)."""

    result: bytes
    error: str | None = None
    exception: BaseException | None = None


def traceback_of(exc: BaseException | None) -> str:
    """The exception's traceback as Python prints it, its last ``MAX_TRACEBACK`` characters."""
    if exc is None:
        return ""
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= MAX_TRACEBACK else "...\n" + text[-MAX_TRACEBACK:]


class Invoker(Generic[T]):
    """Calls ``handler``; ``stopping`` tells whether its consumer is stopping."""

    def __init__(
        self, handler: Callable[[Job[T]], Any], concurrency: int, stopping: Callable[[], bool]
    ) -> None:
        self._handler = handler
        self._is_async = inspect.iscoroutinefunction(handler)
        self._threads = anyio.CapacityLimiter(concurrency)
        self._stopping = stopping

    async def run(self, job: Job[T], timeout: float | None) -> Outcome:
        """The encoded result, or why the attempt failed: the handler raised (with the
        exception), ran past ``timeout``, or returned what MessagePack cannot encode."""
        timed_out = False
        try:
            if timeout is None:
                result = await self._call(job)
            else:
                with anyio.move_on_after(timeout) as deadline:
                    result = await self._call(job)
                timed_out = deadline.cancelled_caught
        except Exception as exc:
            return Outcome(b"", f"{type(exc).__name__}: {exc}", exc)
        except anyio.get_cancelled_exc_class():
            # anyio's cancellation is level-triggered: if a scope around us (stop past grace,
            # the manager's exit) was cancelled, this checkpoint raises again. A CancelledError
            # the handler raised on its own does not come back, and is a failed attempt.
            await anyio.lowlevel.checkpoint()
            return Outcome(b"", "CancelledError: the handler raised CancelledError")
        if timed_out:
            return Outcome(b"", f"TimeoutError: the handler ran past its {timeout:g}s timeout")
        try:
            return Outcome(encode_result(result))
        except Exception as exc:  # TypeError, OverflowError, RecursionError (nested too deep)
            return Outcome(
                b"",
                f"the handler returned {type(result).__name__}, which cannot be encoded as"
                f" MessagePack ({type(exc).__name__}: {exc}); return msgspec-encodable data",
            )

    async def _call(self, job: Job[T]) -> Any:
        if self._is_async:
            result = await self._handler(job)
        else:
            result = await self._call_in_thread(job)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _call_in_thread(self, job: Job[T]) -> Any:
        """Run a plain function in a worker thread. A thread cannot be interrupted: past the
        timeout the attempt fails only once the function has returned, so a retry never runs
        beside it (a stop past its grace does abandon the thread)."""
        returned = threading.Event()
        # A cancel can come before a thread took the call: it then never runs (anyio skips a
        # cancelled call), and nothing must wait for it to return. Whichever of the thread
        # starting it and the cancel comes first decides, under this lock.
        deciding = threading.Lock()
        started = abandoned = False

        def call() -> Any:
            nonlocal started
            with deciding:
                if abandoned:
                    return None
                started = True
            try:
                return self._handler(job)
            finally:
                returned.set()

        try:
            return await anyio.to_thread.run_sync(
                call, abandon_on_cancel=True, limiter=self._threads
            )
        except anyio.get_cancelled_exc_class():
            with deciding:
                abandoned = True
                running = started and not returned.is_set()
            if running and not self._stopping():
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(returned.wait)
            raise

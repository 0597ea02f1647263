"""A manager's background work (consumers, schedulers, listeners), in a task of its own.

A task group entered in ``QueueManager.__aenter__`` would belong to the caller's task and
cancel-scope stack: leaving the manager from another task (framework start-up and clean-up
hooks, pytest fixtures), or closing several managers in another order than they were opened,
would break it. So the group lives in a task the manager starts and stops itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.abc import TaskGroup

__all__ = ("Background",)

log = logging.getLogger("streamq")


class Background:
    """A task group in a task of its own; its tasks may be started from any task."""

    def __init__(self, task: asyncio.Task[None], group: TaskGroup, name: str) -> None:
        self._task = task
        self._group = group
        self._name = name
        task.add_done_callback(self._ended)

    @classmethod
    async def open(cls, name: str) -> Background:
        ready: asyncio.Future[TaskGroup] = asyncio.get_running_loop().create_future()

        async def hold() -> None:
            async with anyio.create_task_group() as group:
                ready.set_result(group)
                await anyio.sleep_forever()

        task = asyncio.get_running_loop().create_task(hold(), name=name)
        try:
            group = await asyncio.shield(ready)
        except BaseException:
            task.cancel()
            raise
        return cls(task, group, name)

    def start_soon(self, function: Callable[[], Coroutine[Any, Any, Any]], name: str) -> None:
        self._group.start_soon(function, name=name)

    async def start(self, function: Callable[..., Coroutine[Any, Any, Any]], name: str) -> None:
        """Start ``function(task_status=...)`` and wait until it says it started (its error
        before then is raised here)."""
        await self._group.start(function, name=name)

    async def stop(self) -> None:
        """Cancel what still runs and wait for it to end; a task's crash is raised here."""
        self._group.cancel_scope.cancel()
        await self._task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            # A background task crashed (a bug: they handle Redis errors themselves), and the
            # group took the others down with it. Said at once, and raised again by stop().
            log.error(
                "%s: background work stopped by an unexpected error", self._name, exc_info=error
            )

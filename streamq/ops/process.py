"""One worker process: a handler found by ``module:function``, consuming one queue until a signal.

``python -m streamq worker`` runs this in the process itself (``--processes 1``) or in each child
of the supervisor (``streamq.ops.supervisor``).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import operator
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast, get_args, get_origin, get_type_hints

import anyio

from ..client.manager import QueueManager
from ..client.queue import Handler
from ..errors import InvalidArgument
from ..job import Job
from ..store.keys import validate_group, validate_name
from ..validation import check_handler
from ..worker.consumer import Consumer
from .hooks import Hooks

__all__ = ("Background", "WorkerSpec", "load_handler", "run_worker")

log = logging.getLogger("streamq.worker")

#: How often a supervised worker checks that its supervisor is still alive.
PARENT_CHECK_INTERVAL = 1.0

#: A task a worker runs beside its consumer, given the manager and the queue's name (say, the
#: metrics' depth gauges); cancelled when the worker stops.
Background = Callable[[QueueManager, str], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker process runs: the handler, the queue, and the consumer's settings."""

    target: str
    queue: str | None = None
    url: str | None = None
    prefix: str = "streamq"
    group: str | None = None
    concurrency: int = 10
    max_retries: int = 3
    timeout: float | None = None
    visibility_timeout: float = 60.0
    grace: float = 30.0
    prefetch: int | None = None
    #: ``(max_jobs, per_seconds)``.
    rate_limit: tuple[int, float] | None = None
    #: At most this many running at once across the group.
    global_concurrency: int | None = None
    #: Per fairness key: at most this many running, and ``(max_jobs, per_seconds)`` starts.
    per_key_concurrency: int | None = None
    per_key_rate_limit: tuple[int, float] | None = None
    #: Seconds before each retry (None: the default exponential backoff).
    backoff: float | None = None
    #: A group of this process's own (``QUEUE:INSTANCE_ID``): every worker gets every job.
    broadcast: bool = False
    #: ``module:function`` called with the manager before consuming, and after stopping.
    on_startup: str | None = None
    on_shutdown: str | None = None

    def queue_name(self, handler: Handler[Any]) -> str:
        """``--queue``, else the handler's name."""
        return self.queue or str(getattr(handler, "__name__", ""))

    def check(self) -> None:
        """Raise :class:`InvalidArgument` for a target or hook that cannot be loaded, or a queue
        or group name that cannot be used."""
        handler, _ = load_handler(self.target)
        validate_name(self.queue_name(handler), what="queue name (--queue)")
        if self.group is not None:
            validate_group(self.group)
            if self.broadcast:
                raise InvalidArgument(
                    "--broadcast makes a group of each worker's own: leave out --group"
                )
        for flag, hook in (("--on-startup", self.on_startup), ("--on-shutdown", self.on_shutdown)):
            if hook is not None:
                load_hook(hook, flag)


def load_handler(target: str) -> tuple[Handler[Any], Any]:
    """The handler named by ``module:function`` and its job type (from a ``Job[T]`` hint).

    Like uvicorn and arq, the current directory is importable, so ``app.tasks:send`` works from
    the project's folder without installing it.
    """
    handler = _load(target, "the handler like myapp.tasks:send_email")
    try:
        check_handler(handler)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{target!r}: {exc}") from None
    return handler, _job_type(handler)


#: A start-up or shut-down hook of the worker command: called with the manager.
WorkerHook = Callable[[QueueManager], Any]


def load_hook(target: str, flag: str) -> WorkerHook:
    """The function ``--on-startup`` or ``--on-shutdown`` names: it takes the manager."""
    hook = _load(target, f"the {flag} function like myapp.tasks:open_pool")
    try:
        inspect.signature(hook).bind(None)
    except TypeError:
        raise InvalidArgument(
            f"{flag} {target!r} must take one argument, the QueueManager:"
            " def open_pool(qm: streamq.QueueManager) (or async def)"
        ) from None
    except ValueError:
        pass  # no signature to check (a builtin): called as it is
    return cast("WorkerHook", hook)


def _load(target: str, example: str) -> Any:
    """What ``module:attribute`` names, importing the module."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise InvalidArgument(f"{target!r} is not module:function; name {example}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise InvalidArgument(
                f"cannot import {module_name!r}: no module named {exc.name!r}; run the worker"
                " from your project's folder or install the project"
            ) from exc
        raise InvalidArgument(f"importing {module_name!r} failed: {exc}") from exc
    try:
        return operator.attrgetter(attribute)(module)
    except AttributeError:
        raise InvalidArgument(
            f"module {module_name!r} has no {attribute!r}: check the name after the colon"
        ) from None


async def _call_hook(hook: WorkerHook, qm: QueueManager) -> None:
    result = hook(qm)
    if inspect.isawaitable(result):
        await result


def _job_type(handler: Any) -> Any:
    """``T`` from the handler's first parameter annotated ``streamq.Job[T]``; else ``Any``."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
        hints = get_type_hints(handler)
    except (TypeError, ValueError, NameError):
        return Any  # no signature, or hints that do not resolve: an untyped queue
    hint = hints.get(parameters[0].name)  # there is one: check_handler bound the job to it
    if get_origin(hint) is Job and get_args(hint):
        return get_args(hint)[0]
    return Any


async def run_worker(
    spec: WorkerSpec,
    *,
    parent_pid: int | None = None,
    hooks: Sequence[Hooks] = (),
    background: Sequence[Background] = (),
) -> None:
    """Consume until SIGTERM or SIGINT, then stop gracefully (a second signal cuts the grace
    short). With ``parent_pid``, also stop when that process (the supervisor) is gone.
    ``hooks`` are attached to the manager; ``background`` tasks run while it consumes."""
    handler, job_type = load_handler(spec.target)
    queue_name = spec.queue_name(handler)
    startup = None if spec.on_startup is None else load_hook(spec.on_startup, "--on-startup")
    shutdown = None if spec.on_shutdown is None else load_hook(spec.on_shutdown, "--on-shutdown")
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with QueueManager(
            spec.url, prefix=spec.prefix, shutdown_grace=spec.grace, hooks=hooks
        ) as qm:
            if startup is not None:
                await _call_hook(startup, qm)
            group = f"{queue_name}:{qm.instance_id}" if spec.broadcast else spec.group
            consumer = await qm.get_queue(queue_name, job_type).consume(
                handler,
                consumer_group=group,
                max_retries=spec.max_retries,
                concurrency=spec.concurrency,
                timeout=spec.timeout,
                visibility_timeout=spec.visibility_timeout,
                backoff=spec.backoff,
                rate_limit=spec.rate_limit,
                prefetch=spec.prefetch,
                global_concurrency=spec.global_concurrency,
                per_key_concurrency=spec.per_key_concurrency,
                per_key_rate_limit=spec.per_key_rate_limit,
            )
            log.info(
                "worker %d: %s consuming queue %r (group %r, concurrency %d)",
                os.getpid(),
                spec.target,
                queue_name,
                consumer.group,
                spec.concurrency,
            )
            async with anyio.create_task_group() as watch:
                if parent_pid is not None:
                    watch.start_soon(_watch_parent, parent_pid, watch.cancel_scope)
                for task in background:
                    watch.start_soon(task, qm, queue_name)
                async for signum in signals:
                    log.info(
                        "worker %d: %s, stopping: running jobs get %gs to finish",
                        os.getpid(),
                        signal.Signals(signum).name,
                        spec.grace,
                    )
                    break
                watch.cancel_scope.cancel()
            await _stop(consumer, spec.grace, signals)
            if shutdown is not None:
                await _call_hook(shutdown, qm)
    log.info("worker %d: stopped", os.getpid())


async def _stop(
    consumer: Consumer[Any], grace: float, signals: AsyncIterator[signal.Signals]
) -> None:
    """Stop within ``grace``; a second signal cancels the running handlers at once (their jobs
    are handed back to the group, not lost)."""
    async with anyio.create_task_group() as tg:

        async def hurry() -> None:
            async for _ in signals:
                log.warning("worker %d: second signal, cancelling running jobs", os.getpid())
                await consumer.stop(0)
                return

        tg.start_soon(hurry)
        await consumer.stop(grace)
        tg.cancel_scope.cancel()


async def _watch_parent(parent_pid: int, scope: anyio.CancelScope) -> None:
    """A supervised worker whose supervisor was killed stops by itself (it would otherwise run
    on, unsupervised and unstoppable by the supervisor's signals)."""
    # Polled: nothing portable wakes a process when its parent dies.
    while os.getppid() == parent_pid:  # noqa: ASYNC110
        await anyio.sleep(PARENT_CHECK_INTERVAL)
    log.warning("worker %d: supervisor %d is gone, stopping", os.getpid(), parent_pid)
    scope.cancel()

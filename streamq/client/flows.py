"""Workflows as users write them: :class:`Step`, :func:`chain` and :func:`group`, and turning
a tree of steps into a flow's spec (``store/flows.py`` writes it)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidArgument
from ..job import JobInfo
from ..ops.hooks import Hooks, tell_enqueued
from ..store.flows import FlowNode, FlowScripts, FlowSpec, OutboxItem
from ..store.keys import QueueKeys, validate_name
from ..validation import check_fairness_key, check_job_id, check_staging, new_job_id

if TYPE_CHECKING:
    from .queue import Queue

__all__ = (
    "FlowReplay",
    "FlowTree",
    "Step",
    "build_spec",
    "chain",
    "group",
    "read_flow_tree",
    "tell_steps_enqueued",
)

#: The most steps one flow may have (its spec is one value in Redis).
MAX_STEPS = 100_000

OnChildFailure = Literal["fail", "ignore"]


@dataclass(frozen=True, slots=True, init=False)
class Step:
    """One job of a flow: ``data`` for the queue named ``queue`` (any queue: a flow's steps
    may live in several, on a Redis Cluster too), run once every step in ``children`` has
    completed (its handler reads their results with ``job.children_results()``). Enqueue a
    tree of steps with :meth:`QueueManager.enqueue_flow`; :func:`chain` and :func:`group`
    build common shapes.

    ``job_id``: the step's job id (None: a new unique one); the root's deduplicates the
    whole flow: while a job holds that id unfinished, enqueueing the flow again changes
    nothing. ``start_delay`` counts from the
    moment the step may run (its children completed). ``on_child_failure``: "fail" sends the
    step to the dead letters when a child does (or is cancelled), naming it, and cancels its
    other children; "ignore" runs it anyway, without that child's result. ``fairness_key``: as
    ``Queue.enqueue``'s (the step takes its key's turns once it may run). ``priority``: as
    ``Queue.enqueue``'s, among the jobs of the step's queue.
    """

    queue: str
    """The name of the queue the step's job goes to."""
    data: Any
    """The job's data, checked against the queue's type as the flow is enqueued."""
    job_id: str | None
    """The job's id; None for a new unique one, made as the flow is enqueued."""
    priority: int
    """The job's priority among those of its queue."""
    start_delay: float
    """Seconds the step waits once it may run."""
    children: tuple[Step, ...]
    """The steps it runs after."""
    on_child_failure: OnChildFailure
    """What a child's failure does to it: "fail" or "ignore"."""
    fairness_key: str | None
    """The fairness key the job takes turns under, or None."""

    def __init__(
        self,
        queue: str,
        data: Any,
        *,
        job_id: str | None = None,
        priority: int = 0,
        start_delay: float = 0,
        children: Iterable[Step] = (),
        on_child_failure: OnChildFailure = "fail",
        fairness_key: str | None = None,
    ) -> None:
        validate_name(queue)
        check_fairness_key(fairness_key)
        if job_id is not None:
            _check_step_id(job_id)
        check_staging(priority, start_delay)
        if on_child_failure not in ("fail", "ignore"):
            raise InvalidArgument(
                f"on_child_failure must be 'fail' or 'ignore', got {on_child_failure!r}"
            )
        kids = tuple(children) if isinstance(children, Iterable) else None
        if kids is None or not all(isinstance(c, Step) for c in kids):
            raise InvalidArgument(
                f"children must be Steps (streamq.Step(queue, data)), got {children!r}"
            )
        for name, value in (
            ("queue", queue),
            ("data", data),
            ("job_id", job_id),
            ("priority", priority),
            ("start_delay", start_delay),
            ("children", kids),
            ("on_child_failure", on_child_failure),
            ("fairness_key", fairness_key),
        ):
            object.__setattr__(self, name, value)


def chain(*steps: Step) -> Step:
    """``chain(a, b, c)``: a step that runs ``c`` after ``b`` after ``a``, each reading the one
    before in ``job.children_results()``. ``steps``: at least one :class:`Step`, first to run
    first."""
    if not steps:
        raise InvalidArgument("chain() needs at least one Step")
    _check_steps(steps, "chain")
    last = steps[0]
    for step in steps[1:]:
        last = replace(step, children=(*step.children, last))
    return last


def group(*steps: Step, then: Step) -> Step:
    """``group(a, b, c, then=d)``: a step that runs ``d`` once ``a``, ``b`` and ``c`` (which
    run at the same time) have all completed. ``steps``: the steps that run side by side;
    ``then``: the one that waits for them all."""
    if not steps:
        raise InvalidArgument("group() needs at least one Step besides then=")
    _check_steps((*steps, then), "group")
    return replace(then, children=(*then.children, *steps))


def _check_steps(steps: tuple[object, ...], what: str) -> None:
    for step in steps:
        if not isinstance(step, Step):
            raise InvalidArgument(
                f"{what}() takes Steps (streamq.Step(queue, data)), got {type(step).__name__}"
            )


def _check_step_id(job_id: str) -> None:
    check_job_id(job_id)
    if "\t" in job_id or "\n" in job_id:
        raise InvalidArgument(
            f"job_id {job_id!r} of a flow's step contains a tab or a newline: leave them out"
        )


#: ``encode(queue, job_id, data, priority, enqueued_at)``: the payload ``queue.enqueue`` would
#: write for the job ``job_id`` (with what the hooks carry with it).
Encode = Callable[[str, str, Any, int, float], Awaitable[bytes]]


async def build_spec(root: Step, encode: Encode) -> tuple[FlowSpec, float]:
    """The flow's spec (root first, then breadth first) with each step's data encoded for its
    queue, and the enqueue time. Every step is checked before anything is written."""
    if not isinstance(root, Step):
        raise InvalidArgument(
            f"enqueue_flow() takes a Step (streamq.Step(queue, data)), got {type(root).__name__}"
        )
    now = time.time()
    nodes: list[FlowNode] = []
    seen: dict[str, str] = {}
    pending: deque[tuple[Step, int]] = deque([(root, -1)])
    while pending:
        step, parent = pending.popleft()
        if len(nodes) >= MAX_STEPS:
            raise InvalidArgument(f"a flow may have at most {MAX_STEPS:,} steps")
        job_id = step.job_id or new_job_id()
        if job_id in seen:
            raise InvalidArgument(
                f"two steps of the flow have job_id {job_id!r} (queues {seen[job_id]!r} and"
                f" {step.queue!r}): each step needs an id of its own"
            )
        seen[job_id] = step.queue
        payload = await encode(step.queue, job_id, step.data, step.priority, now)
        nodes.append(
            FlowNode(
                step.queue,
                job_id,
                parent,
                payload,
                step.priority,
                check_staging(step.priority, step.start_delay),
                step.on_child_failure,
                step.fairness_key or "",
            )
        )
        index = len(nodes) - 1
        pending.extend((child, index) for child in step.children)
    return FlowSpec.new(nodes), now


def tell_steps_enqueued(
    hooks: tuple[Hooks, ...], spec: FlowSpec, enqueued_at: float, created: bool
) -> None:
    """``on_enqueue`` for each step of a flow that was written (``created``) or, as
    duplicates, of one that was not: a step is an enqueue as ``queue.enqueue``'s are."""
    for node in spec.nodes:
        tell_enqueued(
            hooks, node.queue, node.id, node.priority, node.delay_ms, enqueued_at, created
        )


@dataclass(frozen=True, slots=True)
class FlowTree:
    """A flow step with its state, and its children's trees (``python -m streamq flow show``,
    the dashboard). ``info`` is None for a step whose record is gone (finished long ago)."""

    queue: str
    id: str
    info: JobInfo | None
    children: tuple[FlowTree, ...]
    #: Children not read (past the ``most`` steps asked for).
    unread: int = 0


#: ``get_job(queue, id)``, as the caller reaches it.
GetJob = Callable[[str, str], Awaitable[JobInfo | None]]


async def read_flow_tree(get_job: GetJob, queue: str, job_id: str, most: int = 1000) -> FlowTree:
    """The tree under ``queue``'s step ``job_id``, read one step at a time, breadth first, at
    most ``most`` steps (a fan-in of 10,000 is summed up, not listed). Built without recursion:
    a chain is as deep as it is long."""
    infos: list[tuple[str, str, JobInfo | None]] = []
    kids: list[list[int]] = []
    pending: deque[tuple[str, str, int]] = deque([(queue, job_id, -1)])
    while pending and len(infos) < most:
        name, step_id, parent = pending.popleft()
        info = await get_job(name, step_id)
        infos.append((name, step_id, info))
        kids.append([])
        if parent >= 0:
            kids[parent].append(len(infos) - 1)
        for child in info.children if info is not None else ():
            pending.append((child.queue, child.id, len(infos) - 1))
    trees: list[FlowTree | None] = [None] * len(infos)
    for index in reversed(range(len(infos))):  # children come after their parent
        name, step_id, info = infos[index]
        children = tuple(t for k in kids[index] if (t := trees[k]) is not None)
        total = len(info.children) if info is not None else 0
        trees[index] = FlowTree(name, step_id, info, children, total - len(children))
    root = trees[0]
    assert root is not None
    return root


class FlowReplay:
    """``retry_dead`` of a flow parent (or a step cancelled with its flow): it waits for its
    children again, and those that had not completed are replayed, down the tree: a dead one
    from the dead letters, a cancelled one from the payload it kept. A child that completed
    after its parent failed (which ignored it) is told to the parent again; one whose record
    is gone fails the parent anew, naming it."""

    def __init__(
        self, scripts: FlowScripts, prefix: str, queue_of: Callable[[str], Queue[Any]]
    ) -> None:
        self._scripts = scripts
        self._prefix = prefix
        self._queue_of = queue_of

    async def parent(self, queue: str, job_id: str, generation: int | None = None) -> bool:
        """Revive ``job_id`` if it is a dead or cancelled flow parent (a child of its own
        parent's ``generation``); False if it is not."""
        q = self._queue_of(queue)
        revived = await self._scripts.revive(
            QueueKeys(self._prefix, queue), job_id, q.retention.events, generation
        )
        if revived is None:
            return False
        new_generation, children = revived
        for child_queue, child in children:
            await self._child(queue, job_id, new_generation, child_queue, child)
        return True

    async def _child(
        self, parent_queue: str, parent_id: str, generation: int, queue: str, job_id: str
    ) -> None:
        if await self.parent(queue, job_id, generation):
            return
        q = self._queue_of(queue)
        kind, detail = await self._scripts.replay(
            QueueKeys(self._prefix, queue), job_id, q.retention.events, generation
        )
        if kind == "dead":
            await q.retry_dead(job_id)
        elif kind in ("completed", "gone"):
            state = "completed" if kind == "completed" else "dead"
            if kind == "gone":
                detail = b"its record is gone (it finished longer ago than it is kept)"
            parent = self._queue_of(parent_queue)
            item = OutboxItem(b"", parent_queue, parent_id, job_id, state, detail, generation)
            await self._scripts.apply(
                QueueKeys(self._prefix, parent_queue), parent.retention, queue, [item]
            )

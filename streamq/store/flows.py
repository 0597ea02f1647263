"""Workflows in Redis: creating a flow whole or not at all, and telling parents what their
children ended with, on one server or across the slots of a cluster.

A flow is a tree of steps, each a job of its own queue; a parent runs once every child
finished. Its steps may live in different cluster slots, where no script can write them all at
once, so creation is a protocol whose commit point is one write:

1. ``begin``: the root step is written first, *held* (invisible to consumers), with the whole
   flow's spec and a token naming this creation, and joins its queue's set of flows being
   created. An unfinished job holding the root's id makes the flow a duplicate: nothing more
   is written (a flow is deduplicated by its root id).
2. ``hold``: every other step is written, held, one call per queue. A step whose id an
   unfinished job of something else holds is a conflict: the flow is undone (below) and
   :class:`~streamq.JobInUse` raised.
3. ``commit``: the root is marked committed, if it is still this creation's. This is the
   decision: after it the flow is finished, never undone.
4. ``release``: one call per queue makes its held steps visible (a parent waits for its
   children in ``"waiting_children"``, the others go where a new job goes), the root's queue
   last, which removes the flow from the set.

A producer that stops anywhere leaves the flow in that set. The relay of a manager consuming the
root's queue (``worker/relay.py``) sweeps flows older than its manager's ``flow_sweep_after``
(30 s by default): a committed one is
released (step 4 again: each call releases only what is still held), the others undone, root
first and only while uncommitted (so a producer that was merely slow then fails its commit, and
deletes its held steps itself). So a flow is, after the sweep, either whole or absent.

Each finished child appends what it ended with to its own queue's outbox (``tell_parent`` in
``lua/_lib.lua``, in the same script that finishes it); a relay applies each item on the
parent's queue (``flow_apply.lua``, idempotent by child id), then deletes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from ..errors import JobInUse, StreamqError
from ..transport.lane import CommandLane
from .keys import QueueKeys
from .script_types import Fields, Retention, pairs
from .scripts import Script

__all__ = (
    "FlowNode",
    "FlowScripts",
    "FlowSpec",
    "FlowWriter",
    "OutboxItem",
)

Policy = Literal["fail", "ignore"]

#: Steps written (released, undone) per script call: a 10,000-child fan-in holds the server for
#: a few milliseconds at a time, not for one long call.
STEPS_PER_CALL = 1000


class FlowNode(msgspec.Struct, array_like=True, frozen=True):
    """One step of a flow as stored in its spec."""

    queue: str
    id: str
    #: The parent's index in the spec; -1 for the root (index 0).
    parent: int
    payload: bytes
    priority: int
    delay_ms: int
    on_child_failure: Policy
    #: "" for none.
    fairness_key: str = ""


class FlowSpec(msgspec.Struct, array_like=True, frozen=True):
    """A flow as its root keeps it while it is being created: enough to finish or undo it."""

    token: str
    nodes: tuple[FlowNode, ...]

    @classmethod
    def new(cls, nodes: Sequence[FlowNode]) -> FlowSpec:
        return cls(secrets.token_hex(8), tuple(nodes))

    @property
    def root(self) -> FlowNode:
        return self.nodes[0]

    def by_queue(self) -> dict[str, list[int]]:
        """The steps' indexes per queue, the root's queue last (it is released last)."""
        queues: dict[str, list[int]] = {}
        for index, node in enumerate(self.nodes):
            if index:
                queues.setdefault(node.queue, []).append(index)
        root_queue = queues.pop(self.root.queue, [])
        queues[self.root.queue] = root_queue
        return queues

    def children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in self.nodes]
        for index, node in enumerate(self.nodes):
            if node.parent >= 0:
                kids[node.parent].append(index)
        return kids


_spec_encoder = msgspec.msgpack.Encoder()
_spec_decoder = msgspec.msgpack.Decoder(FlowSpec)


def encode_spec(spec: FlowSpec) -> bytes:
    return _spec_encoder.encode(spec)


def decode_spec(raw: bytes) -> FlowSpec:
    return _spec_decoder.decode(raw)


def ref(node: FlowNode) -> str:
    """How a record names another step: ``queue<TAB>id``."""
    return f"{node.queue}\t{node.id}"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A child's finish, for its parent (an item of the child's queue's outbox)."""

    item_id: bytes
    parent_queue: str
    parent_id: str
    child_id: str
    state: str
    detail: bytes
    #: The parent's generation the child ran for (a replayed parent ignores earlier ones).
    generation: int = 0

    @classmethod
    def parse(cls, item_id: bytes, fields: Fields) -> OutboxItem:
        """An item as the outbox holds it; one written by something else has no parent queue
        (``parent_queue`` ""): the relay deletes it without applying it."""
        parent = fields.get(b"pa", b"").decode(errors="replace")
        queue, tab, parent_id = parent.partition("\t")
        generation = fields.get(b"g", b"0")
        if not tab or not generation.isdigit():
            queue, parent_id, generation = "", "", b"0"
        return cls(
            item_id,
            queue,
            parent_id,
            fields.get(b"c", b"").decode(errors="replace"),
            fields.get(b"s", b"").decode(errors="replace"),
            fields.get(b"d", b""),
            int(generation),
        )


class FlowScripts:
    """Typed wrappers over the flow scripts, called through one lane."""

    def __init__(self, lane: CommandLane) -> None:
        self.lane = lane
        self._root = Script(lane, "flow_root.lua")
        self._hold = Script(lane, "flow_hold.lua")
        self._commit = Script(lane, "flow_commit.lua")
        self._release = Script(lane, "flow_release.lua")
        self._rollback = Script(lane, "flow_rollback.lua")
        self._stale = Script(lane, "flow_stale.lua")
        self._outbox = Script(lane, "flow_outbox.lua")
        self._apply = Script(lane, "flow_apply.lua")
        self._revive = Script(lane, "flow_revive.lua")
        self._replay = Script(lane, "flow_replay.lua")

    async def begin(
        self, keys: QueueKeys, spec: FlowSpec, children: str, enqueued_at: float
    ) -> tuple[int, bytes | None]:
        """Write the root held with the spec: ``(1, None)``; ``(0, None)`` for a duplicate;
        ``(2, spec)`` when a flow with that root is still being created."""
        root = spec.root
        reply = await self._root(
            keys=[keys.job(root.id), keys.flows_creating],
            args=[
                root.id,
                spec.token,
                encode_spec(spec),
                repr(enqueued_at),
                root.payload,
                root.priority,
                root.delay_ms,
                root.on_child_failure,
                children,
                root.fairness_key,
            ],
        )
        return int(reply[0]), (reply[1] if len(reply) > 1 else None)

    async def hold(
        self, keys: QueueKeys, token: str, enqueued_at: float, steps: Sequence[Sequence[Any]]
    ) -> list[str]:
        """Write held steps (id, payload, priority, delay, parent, policy, children, fairness
        key); the ids in conflict with unfinished jobs of something else."""
        args: list[Any] = [keys.job_prefix, token, repr(enqueued_at)]
        for step in steps:
            args += step
        conflicts = await self._hold(keys=[keys.stream], args=args)
        return [c.decode() for c in conflicts]

    async def commit(self, keys: QueueKeys, spec: FlowSpec) -> bool:
        return bool(await self._commit(keys=[keys.job(spec.root.id)], args=[spec.token]))

    async def release(
        self, keys: QueueKeys, token: str, ids: Sequence[str], root_id: str, events: int
    ) -> int:
        released: int = await self._release(
            keys=[*keys.ready(), keys.flows_creating],
            args=[keys.job_prefix, keys.wake, events, token, root_id, *ids],
        )
        return released

    async def rollback(
        self, keys: QueueKeys, token: str, ids: Sequence[str], root_id: str = ""
    ) -> bool:
        """Undo; False when the flow is committed (nothing was done)."""
        return bool(
            await self._rollback(
                keys=[keys.stream, keys.flows_creating],
                args=[keys.job_prefix, token, root_id, *ids],
            )
        )

    async def stale(self, keys: QueueKeys, age_ms: int, most: int) -> list[tuple[str, bytes, bool]]:
        """Flows of this root queue whose creation began over ``age_ms`` ago: (root id, spec,
        committed)."""
        reply = await self._stale(keys=[keys.flows_creating], args=[keys.job_prefix, age_ms, most])
        return [
            (reply[i].decode(), reply[i + 1], bool(reply[i + 2])) for i in range(0, len(reply), 3)
        ]

    async def take(
        self,
        keys: QueueKeys,
        relay: str,
        most: int,
        claim_after_ms: int = 0,
        applied: Sequence[bytes] = (),
    ) -> list[OutboxItem]:
        """Items of the queue's outbox for this relay: new ones, and with ``claim_after_ms``
        those another relay held that long (it died); the items it ``applied`` since its last
        call are deleted first."""
        reply = await self._outbox(keys=[keys.outbox], args=[relay, most, claim_after_ms, *applied])
        return [OutboxItem.parse(item_id, pairs(fields)) for item_id, fields in reply]

    async def apply(
        self,
        keys: QueueKeys,
        retention: Retention,
        child_queue: str,
        items: Sequence[OutboxItem],
    ) -> list[tuple[str, str]]:
        """Apply finishes of ``child_queue``'s children to their parents in ``keys``' queue;
        the unfinished
        children of parents that failed, to cancel: ``[(queue, id), ...]``."""
        args: list[Any] = [
            keys.job_prefix,
            keys.wake,
            retention.events,
            retention.ttl,
            retention.keep,
            keys.queue,
        ]
        for item in items:
            args += (
                item.parent_id,
                child_queue,
                item.child_id,
                item.state,
                item.detail,
                item.generation,
            )
        reply = await self._apply(
            keys=[*keys.ready(), keys.dead, keys.dead_records, keys.finished],
            args=args,
        )
        return [(reply[i].decode(), reply[i + 1].decode()) for i in range(0, len(reply), 2)]

    async def revive(
        self, keys: QueueKeys, job_id: str, events: int, generation: int | None = None
    ) -> tuple[int, list[tuple[str, str]]] | None:
        """Put a dead or cancelled flow parent back to waiting for its children (running for
        its own parent's ``generation``): its new generation and the children to replay, or
        None when ``job_id`` is no such parent (flow_revive.lua)."""
        reply = await self._revive(
            keys=[*keys.ready(), keys.dead, keys.dead_records],
            args=[
                keys.job_prefix,
                job_id,
                events,
                keys.wake,
                "" if generation is None else generation,
            ],
        )
        if not reply:
            return None
        children = [(reply[i].decode(), reply[i + 1].decode()) for i in range(1, len(reply), 2)]
        return int(reply[0]), children

    async def replay(
        self, keys: QueueKeys, job_id: str, events: int, generation: int
    ) -> tuple[str, bytes]:
        """Replay a cancelled child of a revived parent (for its ``generation``); what else
        to do (flow_replay.lua)."""
        reply = await self._replay(
            keys=[*keys.ready(), keys.dead],
            args=[keys.job_prefix, job_id, keys.wake, events, generation],
        )
        return reply[0].decode(), (reply[1] if len(reply) > 1 else b"")


def children_listing(spec: FlowSpec, kids: list[int]) -> str:
    return "\n".join(ref(spec.nodes[k]) for k in kids)


class FlowWriter:
    """Runs the creation protocol (the module's docstring) for one manager."""

    def __init__(
        self,
        scripts: FlowScripts,
        keys_of: Callable[[str], QueueKeys],
        events: int,
        stale_ms: int,
    ) -> None:
        self._scripts = scripts
        self._keys_of = keys_of
        self._events = events
        #: After this long, a creation that did not end is finished or undone by the sweep.
        self.stale_ms = stale_ms

    async def create(self, spec: FlowSpec, enqueued_at: float) -> bool:
        """Create the flow whole; False for a duplicate of an unfinished one (nothing
        written). On an error the flow may be half-written: the sweep finishes or undoes it."""
        kids = spec.children()
        root = spec.root
        status, stored = await self._scripts.begin(
            self._keys_of(root.queue), spec, children_listing(spec, kids[0]), enqueued_at
        )
        if status == 0:
            return False
        if status == 2 and stored is not None:
            # A creation under this root id that did not end (this producer's, before an
            # error, or another's): go on with it, whatever data this call had.
            spec = decode_spec(stored)
            kids = spec.children()
        await self._hold_all(spec, kids, enqueued_at)
        if not await self._scripts.commit(self._keys_of(root.queue), spec):
            await self.undo(spec)
            raise StreamqError(
                f"flow {root.id!r} was undone while being created: writing it took longer than"
                f" {self.stale_ms / 1000:g} s (flow_sweep_after: a stalled connection?);"
                " enqueue it again"
            )
        await self.finish(spec)
        return True

    async def _hold_all(self, spec: FlowSpec, kids: list[list[int]], enqueued_at: float) -> None:
        for queue, indexes in spec.by_queue().items():
            steps = []
            for index in indexes:
                node = spec.nodes[index]
                steps.append(
                    (
                        node.id,
                        node.payload,
                        node.priority,
                        node.delay_ms,
                        ref(spec.nodes[node.parent]),
                        node.on_child_failure,
                        children_listing(spec, kids[index]),
                        node.fairness_key,
                    )
                )
            for start in range(0, len(steps), STEPS_PER_CALL):
                conflicts = await self._scripts.hold(
                    self._keys_of(queue),
                    spec.token,
                    enqueued_at,
                    steps[start : start + STEPS_PER_CALL],
                )
                if conflicts:
                    await self.undo(spec)
                    raise JobInUse(conflicts[0], queue=queue, flow=spec.root.id)

    async def finish(self, spec: FlowSpec) -> None:
        """Release a committed flow's held steps (again, after a stop: idempotent)."""
        root = spec.root
        for queue, indexes in spec.by_queue().items():
            ids = [spec.nodes[i].id for i in indexes]
            # The root goes with the last call of the last queue (its queue comes last).
            starts = range(0, len(ids), STEPS_PER_CALL) or range(1)
            for start in starts:
                await self._scripts.release(
                    self._keys_of(queue),
                    spec.token,
                    ids[start : start + STEPS_PER_CALL],
                    root.id if queue == root.queue and start == starts[-1] else "",
                    self._events,
                )

    async def undo(self, spec: FlowSpec) -> bool:
        """Undo an uncommitted flow, root first; False (nothing done) when it is committed."""
        root = spec.root
        if not await self._scripts.rollback(
            self._keys_of(root.queue), spec.token, [], root_id=root.id
        ):
            return False
        for queue, indexes in spec.by_queue().items():
            for start in range(0, len(indexes), STEPS_PER_CALL):
                await self._scripts.rollback(
                    self._keys_of(queue),
                    spec.token,
                    [spec.nodes[i].id for i in indexes[start : start + STEPS_PER_CALL]],
                )
        return True

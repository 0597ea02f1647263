"""What a queue needs of the manager that made it: its open connection, its hooks, the queue
registry, its channel's messages and starting consumers. ``QueueManager`` provides it; ``Queue``
reads nothing else of the manager, so neither reaches into the other's private attributes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..transport.cluster import lane_for

if TYPE_CHECKING:
    from ..ops.hooks import Hooks
    from ..store.control import ControlScripts
    from ..store.flows import FlowScripts
    from ..store.keys import QueueKeys
    from ..store.scripts import Scripts
    from ..store.serialization import Codec
    from ..transport.connection import Client
    from ..transport.lane import CommandLane
    from ..worker.consumer import Consumer
    from ..worker.options import ConsumerOptions
    from .inspection import InspectScripts
    from .notices import QueueNotices
    from .queue import Handler, Queue

__all__ = ("Connection", "QueueHost")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Connection:
    """An open manager's way to Redis."""

    client: Client
    #: Where every script call goes: the pipelined lane, or on a cluster a lane per primary.
    lane: CommandLane
    scripts: Scripts
    #: ``scripts``, or with ``min_replicas`` scripts on lanes of their own whose enqueues wait
    #: for the replicas (a WAIT holds its connection: nothing else may queue behind it).
    enqueue_scripts: Scripts
    inspect: InspectScripts
    control: ControlScripts
    flows: FlowScripts

    def new_lane(self) -> CommandLane:
        """A lane of its own (for a consumer's blocking reads)."""
        return lane_for(self.client)

    def close_lanes(self) -> None:
        self.lane.close()
        self.enqueue_scripts.lane.close()


class QueueHost(Protocol):
    """The manager, as a queue sees it."""

    @property
    def prefix(self) -> str: ...

    @property
    def max_payload_bytes(self) -> int: ...

    @property
    def hooks(self) -> tuple[Hooks, ...]: ...

    def connection(self) -> Connection:
        """The open connection; a clear error when the manager is not open."""
        ...

    def queue(self, name: str) -> Queue[Any]:
        """Another queue of the manager (a flow's steps live in several)."""
        ...

    async def register(self, queue: str) -> None:
        """Put ``queue`` in the registry that tools list queues from."""
        ...

    async def unregister(self, queue: str) -> None:
        """Take ``queue`` out of that registry (it was deleted)."""
        ...

    async def notices(self, keys: QueueKeys) -> QueueNotices:
        """The messages of the queue's channel (job finishes for ``wait_for``), heard from
        now on over the manager's one subscription."""
        ...

    async def start_consumer(
        self,
        queue: Queue[T],
        keys: QueueKeys,
        codec: Codec[T],
        handler: Handler[T],
        options: ConsumerOptions,
    ) -> Consumer[T]: ...

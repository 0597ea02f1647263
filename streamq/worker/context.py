"""What a consumer needs from the queue and manager that start it: a narrow, typed view.

The client side (``QueueManager``, ``Queue``) builds one per consumer; the worker side reads
nothing else of theirs, so neither reaches into the other's private attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from ..client.manager import QueueManager
    from ..client.notices import QueueNotices
    from ..client.queue import Queue
    from ..ops.hooks import Hooks
    from ..store.control import ControlScripts
    from ..store.keys import QueueKeys
    from ..store.scripts import Retention, Scripts
    from ..store.serialization import Codec
    from ..transport.connection import Client
    from ..transport.lane import CommandLane

__all__ = ("ConsumerContext",)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConsumerContext(Generic[T]):
    """One consumer's view of its queue and of the manager's connection and settings."""

    #: The queue consumed (``Consumer.queue``); only its public attributes are read.
    queue: Queue[T]
    keys: QueueKeys
    codec: Codec[T]
    client: Client
    scripts: Scripts
    control: ControlScripts
    #: The queue's channel as the manager hears it (pause, resume, cancel).
    notices: QueueNotices
    #: A lane of the consumer's own, for its blocking reads.
    new_lane: Callable[[], CommandLane]
    #: The manager's hooks, read as each job runs (``add_hooks`` applies to running consumers).
    hooks: Callable[[], tuple[Hooks, ...]]
    #: Wakes the queue's scheduler: a retry was staged.
    wake_scheduler: Callable[[], None]
    group_idle_timeout: float
    socket_timeout: float | None
    #: How long the queue's finished jobs keep their records, and how many of the newest do.
    retention: Retention
    #: Handed to handlers as ``Job.manager`` (the worker side calls nothing of it).
    manager: QueueManager

"""streamq: an asyncio-native job queue on Redis Streams."""

from .client.flows import Step, chain, group
from .client.inspection import ConsumerInfo, GroupInfo, JobSummary, RecurringInfo
from .client.manager import QueueManager
from .client.queue import Handler, Queue
from .errors import (
    ConnectionFailed,
    EncodeError,
    InvalidArgument,
    JobCancelled,
    JobFailed,
    JobInUse,
    JobNotFound,
    NotReplicated,
    PermissionDenied,
    QueueInUse,
    RedisTimeout,
    Retry,
    StreamqError,
    Unrecoverable,
)
from .job import (
    DeadLetter,
    Event,
    EventType,
    HistoryPoint,
    Job,
    JobInfo,
    JobRef,
    JobState,
    QueueStats,
)
from .ops.hooks import EnqueueEvent, Hooks, JobEvent, ReclaimEvent, SettleEvent
from .worker.consumer import Consumer

__all__ = (
    "ConnectionFailed",
    "Consumer",
    "ConsumerInfo",
    "DeadLetter",
    "EncodeError",
    "EnqueueEvent",
    "Event",
    "EventType",
    "GroupInfo",
    "Handler",
    "HistoryPoint",
    "Hooks",
    "InvalidArgument",
    "Job",
    "JobCancelled",
    "JobEvent",
    "JobFailed",
    "JobInUse",
    "JobInfo",
    "JobNotFound",
    "JobRef",
    "JobState",
    "JobSummary",
    "NotReplicated",
    "PermissionDenied",
    "Queue",
    "QueueInUse",
    "QueueManager",
    "QueueStats",
    "ReclaimEvent",
    "RecurringInfo",
    "RedisTimeout",
    "Retry",
    "SettleEvent",
    "Step",
    "StreamqError",
    "Unrecoverable",
    "chain",
    "group",
)

__version__ = "0.1.0"

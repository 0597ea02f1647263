"""streamq: an asyncio-native job queue on Redis Streams."""

from .consumer import Consumer
from .errors import (
    ConnectionFailed,
    EncodeError,
    InvalidArgument,
    JobFailed,
    JobNotFound,
    NotReplicated,
    PermissionDenied,
    StreamqError,
)
from .hooks import EnqueueEvent, Hooks, JobEvent, ReclaimEvent
from .inspection import ConsumerInfo, GroupInfo, JobSummary, RecurringInfo
from .job import DeadLetter, Job, JobInfo, JobState, QueueStats
from .manager import QueueManager
from .queue import Handler, Queue

__all__ = (
    "ConnectionFailed",
    "Consumer",
    "ConsumerInfo",
    "DeadLetter",
    "EncodeError",
    "EnqueueEvent",
    "GroupInfo",
    "Handler",
    "Hooks",
    "InvalidArgument",
    "Job",
    "JobEvent",
    "JobFailed",
    "JobInfo",
    "JobNotFound",
    "JobState",
    "JobSummary",
    "NotReplicated",
    "PermissionDenied",
    "Queue",
    "QueueManager",
    "QueueStats",
    "ReclaimEvent",
    "RecurringInfo",
    "StreamqError",
)

__version__ = "0.1.0"

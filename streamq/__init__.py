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
    "GroupInfo",
    "Handler",
    "InvalidArgument",
    "Job",
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
    "RecurringInfo",
    "StreamqError",
)

__version__ = "0.1.0"

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
from .job import DeadLetter, Job, JobInfo, JobState, QueueStats
from .manager import QueueManager
from .queue import Handler, Queue

__all__ = (
    "ConnectionFailed",
    "Consumer",
    "DeadLetter",
    "EncodeError",
    "Handler",
    "InvalidArgument",
    "Job",
    "JobFailed",
    "JobInfo",
    "JobNotFound",
    "JobState",
    "NotReplicated",
    "PermissionDenied",
    "Queue",
    "QueueManager",
    "QueueStats",
    "StreamqError",
)

__version__ = "0.1.0"

"""The public surface: what `import streamq` offers, and the error hierarchy."""

from __future__ import annotations

from importlib import resources

import streamq
from streamq import errors

PUBLIC = {
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
    "JobFailed",
    "JobInUse",
    "JobInfo",
    "JobNotFound",
    "JobEvent",
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
    "RedisTimeout",
    "Retry",
    "RecurringInfo",
    "Step",
    "StreamqError",
    "Unrecoverable",
    "chain",
    "group",
}


def test_all_is_a_tuple_of_exactly_the_public_names() -> None:
    assert isinstance(streamq.__all__, tuple)
    assert set(streamq.__all__) == PUBLIC
    for name in streamq.__all__:
        assert hasattr(streamq, name), name


def test_package_is_typed() -> None:
    assert resources.files("streamq").joinpath("py.typed").is_file()


def test_errors_derive_from_one_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), streamq.StreamqError)
    assert issubclass(streamq.EncodeError, TypeError)
    assert issubclass(streamq.InvalidArgument, ValueError)
    assert issubclass(streamq.JobNotFound, LookupError)


def test_errors_carry_context() -> None:
    failed = streamq.JobFailed("j1", "ValueError: boom", queue="emails")
    assert (failed.job_id, failed.error, failed.queue) == ("j1", "ValueError: boom", "emails")
    assert "j1" in str(failed) and "boom" in str(failed)

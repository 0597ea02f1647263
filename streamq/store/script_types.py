"""The typed arguments and replies of the scripts (``scripts.py``): what the rest of the package
hands them and gets back, never KEYS and ARGV."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = (
    "Claimed",
    "Completion",
    "DueSchedule",
    "Failure",
    "Fields",
    "JobRecord",
    "NewJob",
    "Retention",
    "StatsReply",
    "Watched",
    "pairs",
)

Fields = dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job to add at once (a recurring occurrence)."""

    job_id: str
    payload: bytes
    enqueued_at: float
    priority: int = 0


@dataclass(frozen=True, slots=True)
class DueSchedule:
    schedule_id: str
    due_ms: int
    definition: bytes


@dataclass(frozen=True, slots=True)
class Completion:
    entry_id: bytes
    #: Empty to only acknowledge (an entry a retry in another group targeted).
    job_id: str
    attempt: int
    result: bytes


@dataclass(frozen=True, slots=True)
class Failure:
    entry_id: bytes
    job_id: str
    attempt: int
    error: str
    #: Seconds before the retry; ``None`` moves the job to the dead letters.
    retry_in: float | None
    payload: bytes
    dead_record: bytes
    failed_at: float
    #: Its "started" event is not written yet: write it before the failure's.
    unwritten_start: bool = False


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished jobs keep their records: ``ttl`` seconds, and only the newest ``keep``
    of their queue; and how many lifecycle events the queue keeps (0: none are written)."""

    ttl: int
    keep: int
    events: int = 0


@dataclass(frozen=True, slots=True)
class Claimed:
    entry_id: bytes
    delivery_count: int
    fields: Fields
    #: A stopping consumer handed it back (else its consumer went silent).
    handed_back: bool = False


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's record as ``get_job`` reads it."""

    #: A group is running it right now.
    running: bool
    fields: Fields
    #: Where each group stands with it, while several groups read the stream (or once they
    #: did: a broadcast job); empty for a job of one group.
    group_states: dict[str, str]
    #: The groups reading the stream now.
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Watched:
    """What ``wait_for`` reads of a job (or of one group's part in it)."""

    #: Empty when the job cannot be awaited as asked: see ``groups``.
    state: str
    result: bytes | None = None
    error: bytes | None = None
    #: With no state: the groups reading the stream, one of which must be named (the job goes to
    #: several, or the group asked for does not read it).
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatsReply:
    waiting: int
    active: int
    retrying: int
    dead: int
    completed: int
    oldest_waiting_ms: int
    groups: int
    delayed: int
    memory: int
    paused: int
    fairness_keys: int


def pairs(flat: Sequence[bytes]) -> Fields:
    """A flat ``[field, value, ...]`` reply as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))

"""Looking into queues without touching their jobs: the records the command line, the dashboard
and the metrics show, and the scripts that read them in one round trip each.

Queues are found through the registry every manager writes to when it first uses a queue (see
:meth:`QueueManager.queues`), never by scanning the database's keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import anyio
import msgspec

from ..errors import InvalidArgument
from ..job import DeadLetter, HistoryPoint, JobInfo, JobRef, JobState, QueueStats
from ..store.control import steps_of
from ..store.fair_info import FairInfoScripts
from ..store.history import HISTORY_MINUTES, HistoryScripts
from ..store.keys import QueueKeys
from ..store.scripts import JobRecord, Script, StatsReply
from ..store.serialization import Codec, decode_dead_record, decode_recurring, decode_result
from ..validation import check_count

if TYPE_CHECKING:
    from ..transport.lane import CommandLane
    from .manager import QueueManager
    from .queue import Queue

__all__ = (
    "MAX_PEEK",
    "TERMINAL",
    "ConsumerInfo",
    "GroupInfo",
    "JobSummary",
    "ListedState",
    "QueueOverview",
    "RecurringInfo",
    "job_info",
    "name_a_group",
    "overview",
    "to_json",
)

#: Most jobs one listing returns: a listing is for people, and runs inside Redis.
MAX_PEEK = 1000

#: The states whose jobs can be listed; dead jobs have ``Queue.dead_letters``.
ListedState = Literal["waiting", "delayed", "retrying", "active", "completed"]
_LISTED: tuple[str, ...] = ("waiting", "delayed", "retrying", "active", "completed")


class ConsumerInfo(msgspec.Struct, frozen=True):
    """A member of a consumer group."""

    name: str
    """Its name in the group (``Consumer.name``)."""
    pending: int
    """Jobs delivered to it and not yet finished."""
    idle: float
    """Seconds since it last read or claimed."""


class GroupInfo(msgspec.Struct, frozen=True):
    """A consumer group reading a queue."""

    name: str
    """The group's name (the queue's name for its default group)."""
    consumers: tuple[ConsumerInfo, ...]
    """Its members: live ones, and those of stopped processes until they have owed nothing for
    an hour."""
    pending: int
    """Delivered and not yet finished, over all its consumers."""
    lag: int | None
    """Entries not yet delivered to it; None where Redis cannot tell (6.2, or after deletions)."""
    last_delivered_id: str
    """The stream id of the last entry delivered to it."""


class JobSummary(msgspec.Struct, frozen=True):
    """A job of a queue, as :meth:`Queue.jobs` lists it. A completed job's data is not kept
    (``data`` is None)."""

    id: str
    """The job's id."""
    state: ListedState
    """The state it was listed in."""
    data: Any
    """The decoded data, or the raw payload bytes when it cannot be decoded."""
    priority: int
    """The priority it was enqueued with (0 when the payload cannot be decoded)."""
    enqueued_at: float | None
    """Unix seconds; None when the payload cannot be decoded."""
    due_at: float | None
    """Unix seconds (server clock) when a delayed job or a retry may start; None for waiting."""
    attempts: int
    """Attempts made so far (the failed ones of a job waiting to retry, the running one of an
    active job included)."""
    group: str | None
    """The group a retry runs in again, or that runs an active job; None for the others."""
    error: str | None
    """The last attempt's error, for a job waiting to retry."""
    result: Any = None
    """A completed job's result; None for the others."""
    finished_at: float | None = None
    """Unix seconds when a completed job finished; None for the others."""


class RecurringInfo(msgspec.Struct, frozen=True):
    """A recurring schedule, as :meth:`Queue.recurring_schedules` lists it."""

    job_id: str
    """The schedule's id (``schedule_recurring``'s ``job_id``); each run's job id is
    ``f"{job_id}@{due_ms}"``."""
    interval_seconds: float | None
    """Seconds between runs; None for a ``cron`` schedule."""
    cron: str | None
    """The 5-field cron expression; None for an interval schedule."""
    tz: str | None
    """The time zone ``cron`` is read in; None for UTC."""
    priority: int
    """The priority each run is enqueued with."""
    next_run_at: float
    """Unix seconds (server clock) of the next occurrence."""
    data: Any
    """Each run's data (the raw bytes when it cannot be decoded)."""


class QueueOverview(msgspec.Struct, frozen=True):
    """One queue's counts and readers, as ``python -m streamq info`` shows them."""

    name: str
    """The queue's name."""
    stats: QueueStats
    """Its counts (``Queue.stats``)."""
    groups: tuple[GroupInfo, ...]
    """Its consumer groups (``Queue.groups``)."""
    busiest_keys: tuple[tuple[str, int], ...] = ()
    """The fairness keys with the most waiting jobs, ``(key, jobs)``, most first (``info`` reads
    them; empty when not read or no key waits)."""
    history: tuple[HistoryPoint, ...] = ()
    """The queue's last minutes (``Queue.history``), oldest first; empty when not read."""


class InspectScripts:
    """The inspection scripts, on the manager's lane."""

    def __init__(self, lane: CommandLane) -> None:
        self._peek = Script(lane, "peek.lua")
        self._groups = Script(lane, "groups.lua")
        self._recurring = Script(lane, "recurring_list.lua")
        self._fair = FairInfoScripts(lane)
        self._history = HistoryScripts(lane)

    async def peek(
        self, keys: QueueKeys, state: str, limit: int, fairness_key: str = ""
    ) -> list[PeekRow]:
        """The jobs in ``state`` (of one fairness key's, waiting), in the order the script
        lists them."""
        rows = await self._peek(
            keys=[
                keys.stream,
                keys.staged,
                keys.delayed,
                keys.retry,
                keys.retry_payloads,
                keys.finished,
            ],
            args=[keys.job_prefix, state, limit, fairness_key],
        )
        return [
            PeekRow(
                job_id=row[0].decode(errors="replace"),
                payload=row[1],
                due_ms=int(row[2]),
                attempts=int(row[3]),
                group=row[4].decode(errors="replace"),
                error=row[5].decode(errors="replace"),
                result=row[6] if len(row) > 6 and row[6] else None,
                finished_at=float(row[7]) if len(row) > 7 and row[7] else None,
                enqueued_at=float(row[8]) if len(row) > 8 and row[8] else None,
            )
            for row in rows
        ]

    async def busiest_keys(self, keys: QueueKeys, limit: int) -> list[tuple[str, int]]:
        check_count(limit, what="limit")
        if limit > MAX_PEEK:
            raise ValueError(f"limit is at most {MAX_PEEK:,} keys, got {limit:,}")
        return await self._fair.busiest(keys, limit)

    async def history(self, keys: QueueKeys, minutes: int) -> list[HistoryPoint]:
        check_count(minutes, what="minutes")
        if minutes > HISTORY_MINUTES:
            raise InvalidArgument(
                f"minutes is at most {HISTORY_MINUTES} (the history a queue keeps), got {minutes:,}"
            )
        return await self._history.history(keys, minutes)

    async def groups(self, keys: QueueKeys) -> list[GroupInfo]:
        rows = await self._groups(keys=[keys.stream])
        return [
            GroupInfo(
                name=name.decode(errors="replace"),
                consumers=tuple(
                    ConsumerInfo(c.decode(errors="replace"), int(pending), int(idle) / 1000)
                    for c, pending, idle in zip(
                        consumers[::3], consumers[1::3], consumers[2::3], strict=True
                    )
                ),
                pending=int(pending),
                lag=None if int(lag) < 0 else int(lag),
                last_delivered_id=last.decode(),
            )
            for name, pending, lag, last, consumers in rows
        ]

    async def recurring(self, keys: QueueKeys) -> list[tuple[str, int, bytes]]:
        """``(schedule id, next run ms, encoded definition)``, soonest first."""
        rows = await self._recurring(keys=[keys.recurring, keys.recurring_defs])
        return [(sid.decode(errors="replace"), int(due), raw) for sid, due, raw in rows]


#: A broadcast job's summary state while groups still owe it: the furthest along any group is.
_SUMMARY_ORDER: tuple[JobState, ...] = ("active", "retrying", "waiting", "delayed")
#: The states of a job that finished: completed, dead or cancelled.
TERMINAL: tuple[str, ...] = ("completed", "dead", "cancelled")


def job_info(job_id: str, record: JobRecord, group: str | None) -> JobInfo | None:
    """What ``get_job`` reports (see :func:`_state_info`), with a flow step's parent and
    children."""
    info = _state_info(job_id, record, group)
    f = record.fields
    if info is None or not (b"pa" in f or b"ch" in f):
        return info
    parent = f.get(b"pa")
    children = f.get(b"ch", b"").decode(errors="replace").splitlines()
    state = info.state
    if f.get(b"state") == b"held":  # its flow is being created
        state = "waiting_children" if int(f.get(b"wc", b"0")) > 0 else "waiting"
    return msgspec.structs.replace(
        info,
        state=state,
        parent=None if parent is None else JobRef(*steps_of(parent.decode(errors="replace"))),
        children=tuple(JobRef(*steps_of(line)) for line in children),
    )


def _state_info(job_id: str, record: JobRecord, group: str | None) -> JobInfo | None:
    """What ``get_job`` reports: the job's own state, or ``group``'s part in it; None for a
    group the job does not go to.

    A job that goes to several groups (a broadcast queue) has no result of its own: its state
    is ``active`` while any group runs it, and ends ``completed`` once every group completed it
    (``dead`` when one dead-lettered it, its error naming that group); ``groups`` says where each
    group stands, and ``group=`` gives that group's attempts, result and error.
    """
    f = record.fields
    states = cast("dict[str, JobState]", record.group_states)
    enqueued_at = _float(f.get(b"enqueued_at"))
    progress = decode_result(f.get(b"progress"))
    if group is not None and states:
        if group not in states:
            return None
        state = states[group]
        g = group.encode()
        return JobInfo(
            id=job_id,
            state=state,
            attempts=_attempts(f.get(b"attempts " + g), running=state == "active"),
            result=decode_result(f.get(b"result " + g)),
            error=_text(f.get(b"error " + g)),
            enqueued_at=enqueued_at,
            progress=progress,
            finished_at=_float(f.get(b"finished " + g)),
            groups=states,
        )
    if group is not None and record.groups and group not in record.groups:
        return None
    own = cast("JobState", f.get(b"state", b"waiting").decode())
    if not states:
        return JobInfo(
            id=job_id,
            state="active" if record.running else own,
            attempts=_attempts(f.get(b"attempts"), running=record.running),
            result=decode_result(f.get(b"result")),
            error=_text(f.get(b"error")),
            enqueued_at=enqueued_at,
            progress=progress,
            finished_at=_float(f.get(b"finished_at")),
        )
    if own not in TERMINAL:
        own = next((s for s in _SUMMARY_ORDER if s in states.values()), own)
    return JobInfo(
        id=job_id,
        state=own,
        attempts=max(
            _attempts(f.get(b"attempts " + g.encode()), running=s == "active")
            for g, s in states.items()
        ),
        result=None,
        error=_text(f.get(b"error")),
        enqueued_at=enqueued_at,
        progress=progress,
        finished_at=_float(f.get(b"finished_at")),
        groups=states,
    )


def stats_of(s: StatsReply) -> QueueStats:
    return QueueStats(
        waiting=s.waiting,
        active=s.active,
        delayed=s.delayed,
        retrying=s.retrying,
        completed=s.completed,
        dead=s.dead,
        oldest_waiting_age=s.oldest_waiting_ms / 1000,
        groups=s.groups,
        memory_bytes=s.memory,
        paused=bool(s.paused),
        fairness_keys=s.fairness_keys,
    )


def dead_letter_of(
    codec: Codec[Any], job_id: str, raw_record: bytes, payload: bytes, groups: list[str]
) -> DeadLetter:
    record = decode_dead_record(raw_record)
    return DeadLetter(
        job_id=job_id,
        data=codec.decode_data_or_raw(payload),
        error=record.error,
        attempts=record.attempts,
        failed_at=record.failed_at,
        groups=tuple(groups),
        traceback=record.traceback or None,
    )


def name_a_group(
    queue: str, job_id: str, group: str | None, groups: tuple[str, ...]
) -> InvalidArgument:
    """Why ``wait_for`` cannot wait as asked: several groups read the job and none was named,
    or the one named does not read it."""
    listed = ", ".join(groups)
    if group is None:
        return InvalidArgument(
            f"job {job_id!r} of queue {queue!r} goes to several consumer groups"
            f" ({listed}), each with a result of its own: pass group= to wait for one"
        )
    return InvalidArgument(
        f"consumer group {group!r} does not read queue {queue!r} (its groups: {listed}):"
        " pass one of those, or group=None for a work queue's job"
    )


def _attempts(raw: bytes | None, *, running: bool) -> int:
    """Attempts made: those finished, and the one running."""
    return (0 if raw is None else int(raw)) + running


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="replace")


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)


def check_listed_state(state: object) -> ListedState:
    if state not in _LISTED:
        raise ValueError(
            f"state must be one of {', '.join(_LISTED)}, got {state!r}"
            " (dead jobs: Queue.dead_letters)"
        )
    return state  # type: ignore[return-value]


def check_peek_limit(limit: int) -> int:
    check_count(limit, what="limit")
    if limit > MAX_PEEK:
        raise ValueError(f"limit is at most {MAX_PEEK:,} jobs per listing, got {limit:,}")
    return limit


class PeekRow(NamedTuple):
    """One job as peek.lua lists it ('' where it does not say)."""

    job_id: str
    payload: bytes
    due_ms: int
    attempts: int
    group: str
    error: str
    result: bytes | None = None
    finished_at: float | None = None
    enqueued_at: float | None = None


def summaries(codec: Codec[Any], state: ListedState, rows: Sequence[PeekRow]) -> list[JobSummary]:
    listed = []
    for row in rows:
        envelope = codec.decode_for_inspection(row.payload) if row.payload else None
        # A completed job's payload is not kept: no data; one that does not decode: its bytes.
        data = None if state == "completed" else row.payload if envelope is None else envelope.data
        listed.append(
            JobSummary(
                id=row.job_id,
                state=state,
                data=data,
                priority=0 if envelope is None else envelope.priority,
                enqueued_at=row.enqueued_at if envelope is None else envelope.enqueued_at,
                due_at=row.due_ms / 1000 if row.due_ms else None,
                attempts=row.attempts,
                group=row.group or None,
                error=row.error or None,
                result=decode_result(row.result),
                finished_at=row.finished_at,
            )
        )
    return listed


def recurring_infos(
    queue: Queue[Any], rows: Sequence[tuple[str, int, bytes]]
) -> list[RecurringInfo]:
    infos = []
    for schedule_id, due_ms, raw in rows:
        definition = decode_recurring(raw)
        infos.append(
            RecurringInfo(
                job_id=schedule_id,
                interval_seconds=(
                    None if definition.interval_ms is None else definition.interval_ms / 1000
                ),
                cron=definition.cron,
                tz=definition.tz,
                priority=definition.priority,
                next_run_at=due_ms / 1000,
                data=_decoded(bytes(definition.data)),
            )
        )
    return infos


def _decoded(data: bytes) -> Any:
    """A recurring job's data (checked against the queue's type when it was scheduled)."""
    try:
        return msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return data


async def overview(
    manager: QueueManager,
    names: Sequence[str] | None = None,
    *,
    busiest: int = 0,
    history: int = 0,
) -> list[QueueOverview]:
    """Counts and consumer groups of ``names`` (default: every registered queue), in that order,
    with the ``busiest`` fairness keys of each queue that has keys waiting (0: none; a walk over
    every key, so not for every metrics scrape) and its last ``history`` minutes (0: none).

    All queues are read at once: one round trip's wait for the lot, not one per queue.
    """
    if names is None:
        names = await manager.queues()
    results: list[QueueOverview | None] = [None] * len(names)

    async def read(index: int, name: str) -> None:
        queue = manager.get_queue(name)
        stats = await queue.stats()
        groups = await queue.groups()
        keys = await queue.busiest_keys(busiest) if busiest and stats.fairness_keys else []
        points = await queue.history(history) if history else []
        results[index] = QueueOverview(name, stats, tuple(groups), tuple(keys), tuple(points))

    async with anyio.create_task_group() as tasks:
        for index, name in enumerate(names):
            tasks.start_soon(read, index, name)
    return [r for r in results if r is not None]


def _unknown(value: Any) -> Any:
    """What JSON cannot hold (a MessagePack extension in a payload someone else wrote)."""
    return repr(value)


_json = msgspec.json.Encoder(enc_hook=_unknown)


def to_json(value: Any) -> bytes:
    """What the command line and the dashboard print: listings as JSON (bytes as base64, as
    msgspec writes them; anything JSON cannot hold as its repr)."""
    return _json.encode(value)

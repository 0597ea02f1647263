"""Typed wrappers over the Lua scripts in ``lua/``; call sites never build KEYS or ARGV by hand.

Each script is ``lua/_lib.lua`` followed by the script's own file. Calls go through the
manager's lane as EVALSHA; a server that does not know the script (a restart, ``SCRIPT FLUSH``)
is sent it once and the call is made again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from hashlib import sha1
from importlib import resources
from typing import Any, Literal

from redis.exceptions import NoScriptError, ResponseError

from ..errors import NotReplicated
from ..transport.acl import script_permission_error
from ..transport.lane import Arg, Command, CommandLane
from .keys import HISTORY_TTL, QueueKeys
from .script_types import (
    Claimed,
    Completion,
    DueSchedule,
    Failure,
    Fields,
    JobRecord,
    NewJob,
    Retention,
    StatsReply,
    Watched,
    pairs,
)

__all__ = (
    "Claimed",
    "Completion",
    "DueSchedule",
    "Failure",
    "JobRecord",
    "NewJob",
    "Retention",
    "Script",
    "Scripts",
    "StatsReply",
    "Watched",
    "pairs",
)

_LIB = "_lib.lua"


def _source(name: str) -> str:
    folder = resources.files(__package__).joinpath("lua")
    return folder.joinpath(_LIB).read_text() + folder.joinpath(name).read_text()


class Script:
    """One script, called by its SHA1 and loaded when the server does not have it."""

    __slots__ = ("_lane", "_name", "_sha", "_source")

    def __init__(self, lane: CommandLane, name: str) -> None:
        self._lane = lane
        self._name = name
        self._source = _source(name)
        self._sha = sha1(self._source.encode()).hexdigest()

    async def __call__(self, *, keys: Sequence[Arg], args: Sequence[Arg] = ()) -> Any:
        try:
            try:
                return await self._lane.execute("EVALSHA", self._sha, len(keys), *keys, *args)
            except NoScriptError:
                return (await self._load_and_run([self._command(keys, args)]))[0]
        except ResponseError as exc:
            self._raise_if_denied(exc)
            raise

    async def call_then(
        self, then: Command, *, keys: Sequence[Arg], args: Sequence[Arg] = ()
    ) -> tuple[Any, Any]:
        """The script's reply and that of ``then``, sent right after it on the same connection
        (``WAIT`` counts the replicas that have what this connection wrote)."""
        commands = [self._command(keys, args), then]
        try:
            try:
                reply, then_reply = await self._lane.execute_many(commands)
            except NoScriptError:
                reply, then_reply = await self._load_and_run(commands)
        except ResponseError as exc:
            self._raise_if_denied(exc)
            raise
        return reply, then_reply

    def _raise_if_denied(self, exc: ResponseError) -> None:
        """A permission error inside the script, as one that names the command (Redis names
        only the line)."""
        denied = script_permission_error(exc, self._name, self._source)
        if denied is not None:
            raise denied from exc

    def _command(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Command:
        return ("EVALSHA", self._sha, len(keys), *keys, *args)

    async def _load_and_run(self, commands: list[Command]) -> list[Any]:
        """The server does not have the script (a restart, ``SCRIPT FLUSH``, a new primary):
        load it and run again in one write, on the node the script runs on."""
        replies = await self._lane.execute_many([("SCRIPT", "LOAD", self._source), *commands])
        return replies[1:]


class Scripts:
    """The scripts, called through one lane.

    With ``min_replicas``, an enqueue returns only once that many replicas have it, or raises
    :class:`NotReplicated` after ``replica_timeout`` seconds.
    """

    def __init__(
        self,
        lane: CommandLane,
        *,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        self.lane = lane
        self._min_replicas = min_replicas
        self._replica_timeout = replica_timeout

        def register(name: str) -> Script:
            return Script(lane, name)

        self._enqueue = register("enqueue.lua")
        self._complete = register("complete.lua")
        self._fail = register("fail.lua")
        self._promote = register("promote.lua")
        self._heartbeat = register("heartbeat.lua")
        self._reclaim = register("reclaim.lua")
        self._release = register("release.lua")
        self._trim = register("trim.lua")
        self._get_job = register("get_job.lua")
        self._watch_job = register("watch_job.lua")
        self._stats = register("stats.lua")
        self._dead_list = register("dead_list.lua")
        self._dead_get = register("dead_get.lua")
        self._revive = register("revive.lua")
        self._purge_dead = register("purge_dead.lua")
        self._register = register("register.lua")
        self._delete = register("delete.lua")
        self._recurring_set = register("recurring_set.lua")
        self._recurring_cancel = register("recurring_cancel.lua")
        self._recurring_due = register("recurring_due.lua")
        self._recurring_fire = register("recurring_fire.lua")
        self._rate_limit = register("rate_limit.lua")
        self._adopt = register("adopt.lua")
        self._rerun = register("rerun.lua")

    async def enqueue(
        self,
        keys: QueueKeys,
        jobs: Sequence[tuple[str, bytes]],
        enqueued_at: float,
        priority: int = 0,
        delay_ms: int = 0,
        events: int = 0,
        *,
        watch: bool = False,
        fairness_key: str = "",
    ) -> list[bool]:
        """Add ``(job_id, payload)`` jobs sharing their enqueue time, priority, delay and
        fairness key; False where an unfinished job already has the id (nothing changed).
        ``events``: the queue's ``keep_events`` (an "enqueued" event per job added). ``watch``:
        register a waiter on each job (as ``watch_job`` does), whose finish is then published."""
        args: list[Any] = [
            keys.job_prefix,
            keys.wake,
            repr(enqueued_at),
            priority,
            delay_ms,
            events,
            int(watch),
            fairness_key,
        ]
        for job_id, payload in jobs:
            args += (job_id, payload)
        script_keys = keys.ready()
        if not self._min_replicas:
            added = await self._enqueue(keys=script_keys, args=args)
            return [bool(a) for a in added]
        # At least 1 ms: WAIT's 0 means "for ever".
        wait = ("WAIT", self._min_replicas, max(1, math.ceil(self._replica_timeout * 1000)))
        added, replicas = await self._enqueue.call_then(wait, keys=script_keys, args=args)
        if replicas < self._min_replicas:
            raise NotReplicated(
                queue=keys.queue,
                job_ids=[job_id for job_id, _ in jobs],
                replicas=replicas,
                wanted=self._min_replicas,
                timeout=self._replica_timeout,
            )
        return [bool(a) for a in added]

    async def complete(
        self,
        keys: QueueKeys,
        retention: Retention,
        group: str,
        consumer: str,
        done: Sequence[Completion],
        fetch: int = 0,
        starts: Sequence[tuple[str, int]] = (),
        waits: Mapping[int, int] | None = None,
    ) -> tuple[list[bool], list[tuple[bytes, Fields]]]:
        """Write the "started" events of ``starts`` (job id, attempt), count ``waits`` (latency
        bucket -> first starts) in the history, finish entries (False where the consumer no
        longer owned one), then read up to ``fetch`` new entries for it in the same round trip."""
        waits = waits or {}
        args: list[Any] = [group, consumer, keys.job_prefix, keys.wake, retention.ttl, fetch]
        args += (retention.keep, retention.events, len(starts), keys.history_prefix)
        args += (HISTORY_TTL, len(waits))
        for pair in (*waits.items(), *starts):
            args += pair
        for c in done:
            args += (c.entry_id, c.job_id, c.attempt, c.result)
        finished, entries = await self._complete(
            keys=[
                keys.stream,
                keys.completed,
                keys.staged,
                keys.window,
                keys.finished,
                keys.slots(group),
                keys.events,
            ],
            args=args,
        )
        return [bool(f) for f in finished], [(e[0], pairs(e[1])) for e in entries]

    async def fail(
        self, keys: QueueKeys, retention: Retention, group: str, consumer: str, failure: Failure
    ) -> bool:
        """Retry or dead-letter one entry; False if the consumer no longer owned it."""
        delay_ms = -1 if failure.retry_in is None else max(0, round(failure.retry_in * 1000))
        done = await self._fail(
            keys=[
                keys.stream,
                keys.retry,
                keys.retry_payloads,
                keys.dead,
                keys.dead_records,
                keys.staged,
                keys.window,
                keys.finished,
                keys.slots(group),
                keys.events,
            ],
            args=[
                group,
                consumer,
                keys.job_prefix,
                keys.wake,
                retention.ttl,
                failure.entry_id,
                failure.job_id,
                failure.attempt,
                failure.error,
                delay_ms,
                failure.payload,
                failure.dead_record,
                repr(failure.failed_at),
                retention.keep,
                retention.events,
                int(failure.unwritten_start),
                keys.history_prefix,
                HISTORY_TTL,
            ],
        )
        return bool(done)

    async def promote(self, keys: QueueKeys, limit: int) -> tuple[int, float | None]:
        """Move due retries and delayed jobs on, fill the window: (how many moved, seconds
        until the next is due or None)."""
        moved, wait_ms = await self._promote(
            keys=[
                keys.stream,
                keys.retry,
                keys.retry_payloads,
                keys.delayed,
                keys.staged,
                keys.staged_seq,
                keys.window,
            ],
            args=[keys.job_prefix, limit],
        )
        return int(moved), (None if wait_ms < 0 else wait_ms / 1000)

    async def heartbeat(
        self,
        keys: QueueKeys,
        group: str,
        consumer: str,
        held: Sequence[tuple[bytes, bytes]],
        slot_ms: int,
    ) -> tuple[list[bytes], list[bytes]]:
        """Reset the idle time of the ``(entry id, job id)`` still owned, and renew their
        global-concurrency slots for ``slot_ms``; returns the entry ids no longer owned, and
        those whose job was cancelled."""
        args: list[Arg] = [group, consumer, keys.job_prefix, slot_ms]
        for entry_id, job_id in held:
            args += (entry_id, job_id)
        lost, cancelled = await self._heartbeat(keys=[keys.stream, keys.slots(group)], args=args)
        return lost, cancelled

    async def reclaim(
        self,
        keys: QueueKeys,
        group: str,
        consumer: str,
        min_idle_ms: int,
        limit: int,
        cursor: bytes,
        prune_idle_ms: int,
        events: int = 0,
    ) -> tuple[bytes, list[Claimed]]:
        """Claim entries idle past ``min_idle_ms``; returns the cursor to go on from.

        At the end of a sweep, consumers that owe nothing and were idle past ``prune_idle_ms``
        are removed from the group. ``events``: the queue's ``keep_events`` (a "reclaimed"
        event per entry claimed from a consumer that went silent).
        """
        cursor, rows = await self._reclaim(
            keys=[keys.stream, keys.events],
            args=[group, consumer, min_idle_ms, limit, cursor, prune_idle_ms, events],
        )
        return cursor, [Claimed(row[0], int(row[1]), pairs(row[2]), bool(row[3])) for row in rows]

    async def release(
        self,
        keys: QueueKeys,
        group: str,
        consumer: str,
        counted: Sequence[tuple[bytes, str]] = (),
    ) -> int:
        """Hand every entry the consumer owns back to the group; drop it if it owned none.
        ``counted``: (entry id, job id) of the entries whose start it counted, taken back."""
        args: list[Arg] = [group, consumer, keys.job_prefix, keys.wake]
        for entry_id, job_id in counted:
            args += [entry_id, job_id]
        released: int = await self._release(
            keys=[keys.stream, keys.window, keys.slots(group)], args=args
        )
        return released

    async def trim(self, keys: QueueKeys, group_idle_ms: int) -> int:
        """Destroy groups silent past ``group_idle_ms``; trim what every group acknowledged."""
        removed: int = await self._trim(keys=[keys.stream, keys.groups], args=[group_idle_ms])
        return removed

    async def adopt(self, keys: QueueKeys, group: str, consumer: str, limit: int) -> list[Claimed]:
        """The entries ``consumer`` owns, with their delivery counts."""
        rows = await self._adopt(keys=[keys.stream], args=[group, consumer, limit])
        return [Claimed(row[0], int(row[1]), pairs(row[2])) for row in rows]

    async def rerun(
        self, keys: QueueKeys, group: str, entry_id: bytes, job_id: str, *, count_repeat: bool
    ) -> tuple[int, bytes | None]:
        """Starts of a redelivered entry before this one, counting this one unless it is a
        repeat and not ``count_repeat``: -1 when the job has no record, -2 when it was
        cancelled (not to run); and the group's checkpoint of the job (encoded), if any."""
        before, checkpoint = await self._rerun(
            keys=[keys.job(job_id)], args=[group, entry_id, int(count_repeat)]
        )
        return before, checkpoint or None

    async def get_job(self, keys: QueueKeys, job_id: str) -> JobRecord | None:
        """The job's record and where each group stands with it; None for an unknown job."""
        reply = await self._get_job(keys=[keys.stream, keys.job(job_id)])
        if reply is None:
            return None
        running, record, states, groups = reply
        return JobRecord(
            running=bool(running),
            fields=pairs(record),
            group_states={
                g.decode(): s.decode() for g, s in zip(states[::2], states[1::2], strict=True)
            },
            groups=tuple(g.decode() for g in groups),
        )

    async def watch_job(
        self, keys: QueueKeys, job_id: str, waiter: Literal["+", "=", "-"], group: str = ""
    ) -> Watched | None:
        """The job's state (with its result and error once finished), or that of ``group``'s
        part in it; None for an unknown job.

        ``waiter`` registers ("+"), keeps ("=") or takes back ("-") one waiter on the job.
        """
        reply = await self._watch_job(keys=[keys.job(job_id), keys.stream], args=[waiter, group])
        if reply is None:
            return None
        state = reply[0].decode()
        if not state:
            return Watched("", groups=tuple(g.decode() for g in reply[1:]))
        if len(reply) == 1:
            return Watched(state)
        return Watched(state, reply[1], reply[2])

    async def stats(self, keys: QueueKeys) -> StatsReply:
        reply = await self._stats(
            keys=[
                keys.stream,
                keys.retry,
                keys.dead,
                keys.completed,
                keys.staged,
                keys.delayed,
                keys.finished,
                keys.paused,
                keys.retry_payloads,
                keys.dead_records,
                keys.window,
                keys.groups,
                keys.recurring,
                keys.recurring_defs,
                keys.fair,
                keys.fair_waiting,
            ],
            args=[keys.job_prefix],
        )
        return StatsReply(*(int(v) for v in reply))

    async def dead_list(
        self, keys: QueueKeys, limit: int
    ) -> list[tuple[str, bytes, bytes, list[str]]]:
        """``(job_id, encoded record, payload, groups)``, oldest failure first."""
        rows = await self._dead_list(keys=[keys.dead, keys.dead_records], args=[limit])
        return [
            (job.decode(), record, payload or b"", (groups or b"").decode().split())
            for job, record, payload, groups in rows
        ]

    async def dead_get(
        self, keys: QueueKeys, job_id: str
    ) -> tuple[str, bytes, bytes, list[str]] | None:
        """One dead job's ``(job_id, encoded record, payload, groups)``, or None."""
        row = await self._dead_get(keys=[keys.dead_records], args=[job_id])
        if not row:
            return None
        record, payload, groups = row
        return job_id, record, payload or b"", (groups or b"").decode().split()

    async def revive(
        self, keys: QueueKeys, job_ids: Sequence[str], events: int = 0
    ) -> tuple[int, list[str], list[str]]:
        """Replay dead jobs: how many were, the ids left dead because they are in use, and
        those of flow parents, left to replay with their children (``FlowReplay``)."""
        revived, in_use, parents = await self._revive(
            keys=[
                keys.stream,
                keys.dead,
                keys.dead_records,
                keys.staged,
                keys.staged_seq,
                keys.window,
                keys.events,
            ],
            args=[keys.job_prefix, events, *job_ids],
        )
        return (
            int(revived),
            [job_id.decode() for job_id in in_use],
            [job_id.decode() for job_id in parents],
        )

    async def purge_dead(self, keys: QueueKeys) -> int:
        purged: int = await self._purge_dead(keys=[keys.dead, keys.dead_records])
        return purged

    async def register(
        self,
        keys: QueueKeys,
        group: str,
        consumer: str,
        prefetch: int,
        ttl_ms: int,
        group_idle_ms: int,
        key_limits: tuple[int, int, int] = (0, 0, 0),
    ) -> bool:
        """Register (or renew, or with 0 remove) a consumer's prefetch in the window, and its
        ``key_limits`` (per-key concurrency, rate limit's jobs and period ms; 0 for none); mark
        its group alive, to be removed after ``group_idle_ms`` without another mark. Returns
        whether the queue is paused."""
        _total, paused = await self._register(
            keys=[keys.stream, keys.staged, keys.window, keys.groups, keys.paused],
            args=[keys.job_prefix, consumer, prefetch, ttl_ms, group, group_idle_ms, *key_limits],
        )
        return bool(paused)

    async def delete(
        self, keys: QueueKeys, batch: int, *, force: bool
    ) -> tuple[int, bool] | list[str]:
        """Delete up to ``batch`` job records of the queue, or once none is left its keys:
        ``(records deleted, all gone)``; the live consumers instead when some are (unforced)."""
        first = [
            keys.stream,
            keys.staged,
            keys.delayed,
            keys.retry,
            keys.dead,
            keys.finished,
            keys.window,
            keys.groups,
        ]
        reply = await self._delete(
            keys=first + [k for k in keys.fixed() if k not in first],
            args=[
                keys.job_prefix,
                batch,
                "1" if force else "0",
                keys.rate_log_prefix,
                keys.rate_seq_prefix,
                keys.slots_prefix,
                keys.history_prefix,
                HISTORY_TTL,
            ],
        )
        if reply[0] < 0:
            return [c.decode() for c in reply[1:]]
        return int(reply[0]), bool(reply[1])

    async def recurring_set(
        self, keys: QueueKeys, schedule_id: str, definition: bytes, first_run_ms: int
    ) -> bool:
        changed = await self._recurring_set(
            keys=[keys.recurring, keys.recurring_defs],
            args=[schedule_id, definition, first_run_ms, keys.wake],
        )
        return bool(changed)

    async def recurring_cancel(self, keys: QueueKeys, schedule_id: str) -> bool:
        removed = await self._recurring_cancel(
            keys=[keys.recurring, keys.recurring_defs], args=[schedule_id]
        )
        return bool(removed)

    async def recurring_due(
        self, keys: QueueKeys, limit: int
    ) -> tuple[int, float | None, list[DueSchedule]]:
        """(server now in ms, seconds until the next later schedule or None, the due ones)."""
        now_ms, wait_ms, rows = await self._recurring_due(
            keys=[keys.recurring, keys.recurring_defs], args=[limit]
        )
        due = [DueSchedule(row[0].decode(), int(float(row[1])), row[2]) for row in rows]
        return int(now_ms), (None if wait_ms < 0 else wait_ms / 1000), due

    async def recurring_fire(
        self, keys: QueueKeys, due: DueSchedule, next_ms: int, run: NewJob, events: int = 0
    ) -> bool:
        """Enqueue one occurrence unless another scheduler already did; moves the schedule on.
        ``events``: the queue's ``keep_events`` (an "enqueued" event for the occurrence)."""
        fired = await self._recurring_fire(
            keys=[
                keys.recurring,
                keys.recurring_defs,
                keys.stream,
                keys.staged,
                keys.staged_seq,
                keys.window,
                keys.job(run.job_id),
                keys.events,
            ],
            args=[
                due.schedule_id,
                due.due_ms,
                next_ms,
                due.definition,
                run.job_id,
                run.payload,
                repr(run.enqueued_at),
                run.priority,
                events,
            ],
        )
        return bool(fired)

    async def rate_limit(
        self, keys: QueueKeys, group: str, wanted: int, limit: int, period_ms: int
    ) -> tuple[int, float]:
        """(starts granted, seconds until another may be granted)."""
        granted, wait_ms = await self._rate_limit(
            keys=[keys.rate_log_prefix + group, keys.rate_seq_prefix + group],
            args=[wanted, limit, period_ms],
        )
        return int(granted), wait_ms / 1000

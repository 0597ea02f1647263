"""Typed wrappers over the scripts of job control: cancelling a job, pausing a queue, a
group's global concurrency slots and per-key start permits, and what a running handler keeps
with its job (progress, log lines, a checkpoint). The scripts that move jobs between states are
in ``scripts.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

from ..transport.lane import CommandLane
from .keys import QueueKeys
from .script_types import Retention
from .scripts import Script
from .serialization import decode_result

if TYPE_CHECKING:
    from ..transport.connection import Client

__all__ = ("MAX_LOG_LINES", "ControlScripts", "steps_of")

#: Log lines kept per job (the newest).
MAX_LOG_LINES = 1000


def steps_of(line: str) -> tuple[str, str]:
    """A flow step as records name it (``queue<TAB>id``): ``(queue, id)``."""
    queue, _, job_id = line.partition("\t")
    return queue, job_id


class ControlScripts:
    """The job-control scripts, called through one lane."""

    def __init__(self, lane: CommandLane, client: Client) -> None:
        self.lane = lane
        #: Plain reads go through the client (on a cluster, the lane routes scripts only).
        self._client = client
        self._pause = Script(lane, "pause.lua")
        self._job_note = Script(lane, "job_note.lua")
        self._slot = Script(lane, "slot.lua")
        self._key_start = Script(lane, "key_start.lua")
        self._cancel = Script(lane, "cancel.lua")

    async def cancel(
        self, keys: QueueKeys, retention: Retention, job_id: str
    ) -> tuple[bool, list[tuple[str, str]]]:
        """Cancel an unfinished job (running ones too: see cancel.lua); False for one that is
        unknown or finished. With it, a flow parent's children ``(queue, id)``, to cancel."""
        reply = await self._cancel(
            keys=[
                keys.stream,
                keys.staged,
                keys.delayed,
                keys.job(job_id),
                keys.finished,
                keys.retry,
                keys.retry_payloads,
                keys.cancels,
                keys.events,
            ],
            args=[
                job_id,
                keys.wake,
                retention.ttl,
                retention.keep,
                keys.job_prefix,
                retention.events,
            ],
        )
        if not reply:
            return False, []
        return True, [steps_of(line) for line in reply[1].decode().splitlines()]

    async def children_results(self, keys: QueueKeys, job_id: str) -> dict[str, Any]:
        """What a flow parent's children that completed returned, by child id."""
        fields = cast("dict[bytes, bytes]", await self._client.hgetall(keys.job(job_id)))
        results: dict[str, Any] = {}
        for name, value in fields.items():
            if name.startswith(b"r:") and value.startswith(b"c"):
                results[name[2:].decode(errors="replace")] = decode_result(value[1:])
        return results

    async def set_paused(self, keys: QueueKeys, paused: bool) -> bool:
        """Pause or resume the queue; True if that changed its state."""
        changed: int = await self._pause(keys=[keys.paused], args=[int(paused), keys.wake])
        return bool(changed)

    async def take_slot(
        self, keys: QueueKeys, group: str, entry_id: bytes, most: int, slot_ms: int
    ) -> tuple[bool, int]:
        """Take one of the ``most`` slots of ``group`` for ``entry_id`` (global concurrency),
        for ``slot_ms`` unless renewed: ``(True, 0)``, or ``(False, ms until the soonest one
        lapses)``."""
        taken, wait_ms = await self._slot(keys=[keys.slots(group)], args=[entry_id, most, slot_ms])
        return bool(taken), int(wait_ms)

    async def take_key_start(
        self,
        keys: QueueKeys,
        group: str,
        fairness_key: str,
        entry_id: bytes,
        most: int,
        period_ms: int,
    ) -> int:
        """Take a start permit of ``fairness_key`` in ``group`` (at most ``most`` starts per
        ``period_ms``) for ``entry_id``: 0, or the ms to wait before asking again."""
        wait_ms: int = await self._key_start(
            keys=[keys.key_starts(group, fairness_key)], args=[entry_id, most, period_ms]
        )
        return wait_ms

    async def is_paused(self, keys: QueueKeys) -> bool:
        return bool(await self._client.exists(keys.paused))

    async def note(
        self,
        keys: QueueKeys,
        job_id: str,
        kind: Literal["progress", "log", "checkpoint"],
        value: bytes | str,
        group: str,
        *,
        attempt: int = 0,
        events: int = 0,
        unwritten_start: bool = False,
    ) -> bool:
        """Keep a running job's progress, a log line or (for ``group``) its checkpoint; False
        when the job has no record any more. Progress is a lifecycle event too (``events``:
        the queue's ``keep_events``), after the start's if that is not written yet."""
        written: int = await self._job_note(
            keys=[keys.job(job_id), keys.job_logs(job_id), keys.events],
            args=[
                kind,
                value,
                group,
                MAX_LOG_LINES,
                events,
                attempt,
                int(unwritten_start),
                job_id,
            ],
        )
        return bool(written)

    async def checkpoint_of(self, keys: QueueKeys, job_id: str, group: str) -> bytes | None:
        """The cursor the job's last attempt in ``group`` saved (encoded), if any."""
        cursor: bytes | None = await self._job_note(
            keys=[keys.job(job_id), keys.job_logs(job_id), keys.events],
            args=["resume", "", group, 0, 0, 0, 0, job_id],
        )
        return cursor

    async def logs(self, keys: QueueKeys, job_id: str) -> list[str]:
        lines = cast("list[bytes]", await self._client.lrange(keys.job_logs(job_id), 0, -1))
        return [line.decode(errors="replace") for line in lines]

    async def cancelled_entries(self, keys: QueueKeys) -> list[bytes]:
        """The entries of broadcast jobs cancelled before every group had them (cancel.lua)."""
        return cast("list[bytes]", await self._client.zrange(keys.cancels, 0, -1))

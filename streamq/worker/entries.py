"""A consumer's view of stream entries: what it holds, the checks of fields that anything may
have written, the queue of entries waiting for a worker, and what is told of a reclaim."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError, ResponseError

from ..ops.hooks import Hooks, ReclaimEvent, call_hooks
from ..store.scripts import Claimed
from ..validation import MAX_JOB_ID_LENGTH

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..store.keys import QueueKeys
    from ..store.scripts import Scripts
    from .control import RunningJob

__all__ = (
    "BadEntry",
    "Held",
    "Inbox",
    "attempt_of",
    "group_gone",
    "hand_back",
    "heartbeat",
    "job_id_of",
    "tell_reclaimed",
)

log = logging.getLogger("streamq")


def group_gone(exc: BaseException) -> bool:
    """The group (or its whole stream) was destroyed: what it owed is gone with it."""
    return isinstance(exc, ResponseError) and "NOGROUP" in str(exc)


class BadEntry(ValueError):
    """A stream entry streamq did not write (or that was tampered with): dead-lettered as is."""


#: A recurring occurrence's id is its schedule's id and ``@due_ms``.
_MAX_ENTRY_JOB_ID = MAX_JOB_ID_LENGTH + 32


def job_id_of(raw: bytes | None) -> str:
    if not raw:
        raise BadEntry("the entry has no job id (field 'j')")
    if len(raw) > 4 * _MAX_ENTRY_JOB_ID:  # UTF-8 takes at most 4 bytes a character
        raise BadEntry(f"its job id (field 'j') is {len(raw):,} bytes long")
    try:
        job_id = raw.decode()
    except UnicodeDecodeError as exc:
        raise BadEntry(f"its job id (field 'j') is not UTF-8 (UnicodeDecodeError: {exc})") from exc
    if len(job_id) > _MAX_ENTRY_JOB_ID:
        raise BadEntry(f"its job id (field 'j') has {len(job_id):,} characters")
    return job_id


def attempt_of(raw: bytes | None) -> int:
    """Field ``a``: the attempt a retried job's entry starts at (absent: 1)."""
    if raw is None:
        return 1
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise BadEntry(f"its attempt number (field 'a') is {raw[:20]!r}, not an int >= 1")
    return int(raw)


class Held:
    """An entry this consumer holds: read or reclaimed, and not yet finished."""

    __slots__ = ("control", "counted", "delivery_count", "entry_id", "fields", "finishing")

    def __init__(self, entry_id: bytes, fields: dict[bytes, bytes], delivery_count: int) -> None:
        self.entry_id = entry_id
        self.fields = fields
        self.delivery_count = delivery_count
        #: Its completion is queued or on its way (it may be acknowledged any moment).
        self.finishing = False
        #: The job id, once this consumer counted a start of the entry in the job's record
        #: (a redelivered entry): a graceful stop that hands it back takes the start back.
        self.counted: str | None = None
        #: While its handler runs: what cancels it.
        self.control: RunningJob | None = None


class Inbox:
    """Entries read and not yet started, for the workers.

    An asyncio queue: much cheaper per entry than an anyio memory stream, and redis-py's
    asyncio client ties the consumer to asyncio anyway. ``None`` tells a worker to finish.
    """

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Held | None] = asyncio.Queue()

    def put(self, held: Held) -> None:
        self._queue.put_nowait(held)

    def close(self, workers: int) -> None:
        for _ in range(workers):
            self._queue.put_nowait(None)

    async def get(self) -> Held | None:
        return await self._queue.get()


def tell_reclaimed(
    claimed: Claimed,
    *,
    queue: str,
    group: str,
    consumer: str,
    visibility_timeout: float,
    hooks: tuple[Hooks, ...],
) -> None:
    """One line (and the hooks) for an entry taken over from a consumer that went silent (a
    warning) or that handed it back as it stopped (info: nothing went wrong)."""
    entry_id = claimed.entry_id.decode()
    try:
        job_id = job_id_of(claimed.fields.get(b"j"))
        # The attempt it was on when its consumer went silent, counting every delivery as a
        # start (the run that comes next finds out what it really is).
        attempt = attempt_of(claimed.fields.get(b"a")) + claimed.delivery_count - 2
    except BadEntry:
        job_id, attempt = f"entry-{entry_id}", claimed.delivery_count - 1
    if claimed.handed_back:
        error = "its consumer handed it back as it stopped (the job did not fail)"
        level = logging.INFO
    else:
        error = (
            f"its consumer stopped heart-beating for {visibility_timeout:g}s"
            " (crashed, killed or cut off)"
        )
        level = logging.WARNING
    log.log(
        level,
        "job %r of queue %r reclaimed on attempt %d by consumer %s (delivery %d): %s",
        job_id,
        queue,
        attempt,
        consumer,
        claimed.delivery_count,
        error,
        extra={
            "queue": queue,
            "group": group,
            "job_id": job_id,
            "attempt": attempt,
            "error": error,
            "delivery": claimed.delivery_count,
            "entry_id": entry_id,
        },
    )
    if hooks:
        event = ReclaimEvent(
            queue=queue,
            group=group,
            consumer=consumer,
            job_id=job_id,
            entry_id=entry_id,
            delivery=claimed.delivery_count,
            handed_back=claimed.handed_back,
        )
        call_hooks(hooks, "on_reclaim", event)


#: Entries per heartbeat call.
HEARTBEAT_BATCH = 500


async def heartbeat(
    scripts: Scripts,
    keys: QueueKeys,
    group: str,
    consumer: str,
    held: dict[bytes, Held],
    slot_ms: int,
    cancelled: Callable[[bytes], None],
) -> None:
    """Keep the entries ``consumer`` holds from being reclaimed (and their concurrency slots
    for ``slot_ms``); drop from ``held`` those another consumer took, and call ``cancelled``
    with those whose job was cancelled (the fallback for a lost cancel message)."""
    owned = [(h.entry_id, h.fields.get(b"j", b"")) for h in held.values()]
    for start in range(0, len(owned), HEARTBEAT_BATCH):
        lost, gone = await scripts.heartbeat(
            keys, group, consumer, owned[start : start + HEARTBEAT_BATCH], slot_ms
        )
        for entry_id in gone:
            cancelled(entry_id)
        for entry_id in lost:
            entry = held.pop(entry_id, None)
            if entry is None or entry.finishing:
                continue  # acknowledged while the heartbeat was on its way: not lost
            # Its new owner runs it; our finish, if any, is ignored.
            log.warning(
                "consumer %s lost entry %s of queue %r to another consumer",
                consumer,
                entry_id.decode(),
                keys.queue,
            )


async def hand_back(
    scripts: Scripts,
    keys: QueueKeys,
    group: str,
    consumer: str,
    held: dict[bytes, Held],
    group_idle_ms: int,
) -> None:
    """Hand every entry ``consumer`` still owns back to its group, at once, and take it out of
    the window (a registration with no prefetch). The script walks the consumer's pending
    list, so entries whose read reply was lost to the stop (Redis delivered them, the consumer
    never saw them) go back too. A Redis error is logged: those entries are reclaimed after
    the visibility timeout."""
    try:
        counted = [(h.entry_id, h.counted) for h in held.values() if h.counted]
        await scripts.release(keys, group, consumer, counted)
        # Out of the window and its per-key limits now, not once the registration lapses.
        await scripts.register(keys, group, consumer, 0, 0, group_idle_ms)
    except (RedisError, OSError) as exc:
        log.warning(
            "consumer %s: could not hand back its jobs (%s); they are reclaimed after the"
            " visibility timeout",
            consumer,
            exc,
        )

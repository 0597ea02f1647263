"""Job control as a consumer sees it: the queue's pause, the cancelled entries it must not run,
and the handle each running job's handler reaches through ``Job`` (cancel, progress, log,
checkpoint).

Pause and cancel are pushed over the queue's channel (``client/notices.py``); the consumer's
registration (every few seconds) and heartbeat read them again, so a lost message only delays
them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import EncodeError, InvalidArgument
from ..store.serialization import encode_result

if TYPE_CHECKING:
    from ..store.control import ControlScripts
    from ..store.keys import QueueKeys

__all__ = ("CancelledEntries", "ConsumerControls", "JobsOf", "PauseGate", "RunningJob")

#: Most cancelled entries a consumer remembers (they are dropped once run or acknowledged).
MAX_REMEMBERED = 10_000
#: The longest log line kept; a longer one is cut.
MAX_LOG_LINE = 8000


class PauseGate:
    """Whether the queue is paused, as this consumer last heard; workers wait at it before they
    start a job."""

    def __init__(self) -> None:
        self._paused = False
        self._released = False
        self._open = anyio.Event()
        self._open.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def set(self, paused: bool) -> None:
        if paused == self._paused:
            return
        self._paused = paused
        if paused:
            self._open = anyio.Event()
        else:
            self._open.set()

    def release(self) -> None:
        """Let every waiter go for good (the consumer stops: what waits is handed back)."""
        self._released = True
        self._open.set()

    async def wait(self) -> None:
        while self._paused and not self._released:
            await self._open.wait()


class CancelledEntries:
    """Entries of the group cancelled while this consumer holds them, or before the group was
    delivered them (a broadcast job): acknowledged without running."""

    def __init__(self) -> None:
        self._entries: OrderedDict[bytes, None] = OrderedDict()

    def add(self, entries: Iterable[bytes]) -> None:
        for entry in entries:
            self._entries[entry] = None
            self._entries.move_to_end(entry)
        while len(self._entries) > MAX_REMEMBERED:
            self._entries.popitem(last=False)

    def take(self, entry: bytes) -> bool:
        """Whether ``entry`` was cancelled (then forgotten: it is acknowledged now)."""
        return self._entries.pop(entry, False) is None


@dataclass(frozen=True, slots=True)
class JobsOf:
    """What the running jobs of one consumer share (built once: a job's handle is then cheap)."""

    control: ControlScripts
    keys: QueueKeys
    group: str
    #: The queue's ``keep_events``, and how to take back a job's start event if it is still
    #: waiting to be written (a progress event then writes it first).
    events: int = 0
    take_start: Callable[[bytes], bool] = lambda entry_id: False


class RunningJob:
    """One running attempt, as its handler reaches it through ``Job`` (``streamq.job.JobControl``)
    and as the consumer cancels it."""

    __slots__ = ("_attempt", "_entry_id", "_job_id", "_of", "_scope", "cancelled")

    def __init__(self, of: JobsOf, job_id: str, attempt: int, entry_id: bytes = b"") -> None:
        self._of = of
        self._job_id = job_id
        self._attempt = attempt
        self._entry_id = entry_id
        self._scope: anyio.CancelScope | None = None
        self.cancelled = False

    def run_in(self, scope: anyio.CancelScope) -> None:
        """The handler runs in ``scope`` (its worker's): a cancel cancels it, at once if one
        came already. Only while it runs: the runner drops this handle when it returns."""
        self._scope = scope
        if self.cancelled:
            scope.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        if self._scope is not None:
            self._scope.cancel()

    async def set_progress(self, value: Any) -> None:
        of = self._of
        await of.control.note(
            of.keys,
            self._job_id,
            "progress",
            self._encode(value),
            of.group,
            attempt=self._attempt,
            events=of.events,
            unwritten_start=of.events > 0 and of.take_start(self._entry_id),
        )

    async def log(self, message: str) -> None:
        if not isinstance(message, str):
            raise InvalidArgument(f"job.log takes a str, got {type(message).__name__}")
        line = message if len(message) <= MAX_LOG_LINE else message[:MAX_LOG_LINE] + "..."
        of = self._of
        await of.control.note(of.keys, self._job_id, "log", line, of.group)

    async def checkpoint(self, value: Any) -> None:
        of = self._of
        await of.control.note(of.keys, self._job_id, "checkpoint", self._encode(value), of.group)

    async def children_results(self) -> dict[str, Any]:
        of = self._of
        return await of.control.children_results(of.keys, self._job_id)

    def _encode(self, value: Any) -> bytes:
        try:
            return encode_result(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise EncodeError(
                f"job {self._job_id!r}: {type(value).__name__} cannot be encoded as MessagePack"
                f" ({exc}); pass msgspec-encodable data",
                queue=self._of.keys.queue,
            ) from exc


class ConsumerControls:
    """A consumer's side of the queue's channel: the pause, the entries cancelled, and the
    group's freed concurrency slots.

    ``running(entry id)`` is the handle of the handler running that entry in the consumer, if
    any; ``on_pause`` is called when the queue is paused (to drop a blocking read);
    ``on_slot_freed`` when a global-concurrency slot of the consumer's group was freed.
    """

    def __init__(
        self,
        control: ControlScripts,
        keys: QueueKeys,
        group: str,
        *,
        running: Callable[[bytes], RunningJob | None],
        on_pause: Callable[[], None],
        on_slot_freed: Callable[[], None],
    ) -> None:
        self._control = control
        self._keys = keys
        self._slot_message = b"slot\t" + group.encode()
        self._on_slot_freed = on_slot_freed
        self._running = running
        self._on_pause = on_pause
        self.gate = PauseGate()
        self.cancelled = CancelledEntries()
        #: Messages may have been missed (a re-subscription): read the pause and cancels again.
        self._missed = anyio.Event()

    def on_message(self, message: bytes | None) -> None:
        """One of the channel's messages for consumers; None when some may have been missed."""
        if message is None:
            self._missed.set()
        elif message == b"paused":
            self.gate.set(True)
            self._on_pause()
        elif message == b"resumed":
            self.gate.set(False)
        elif message.startswith(b"cancel\t"):
            self.cancel(message[7:])
        elif message == self._slot_message:
            self._on_slot_freed()

    def cancel(self, entry_id: bytes) -> None:
        """Stop the handler running ``entry_id``, or skip the entry when it starts (it may not
        have been delivered to this consumer yet)."""
        self.cancelled.add((entry_id,))
        if (running := self._running(entry_id)) is not None:
            running.cancel()

    async def missed(self, within: float) -> bool:
        """Wait up to ``within`` seconds for word that messages were missed; True if so."""
        with anyio.move_on_after(within):
            await self._missed.wait()
        return self._missed.is_set()

    async def read_again(self) -> None:
        """Read the pause and the cancelled entries (at start, and after missed messages)."""
        self._missed = anyio.Event()
        self.gate.set(await self._control.is_paused(self._keys))
        self.cancelled.add(await self._control.cancelled_entries(self._keys))

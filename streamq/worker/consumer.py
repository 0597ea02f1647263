"""The consumer loop: read a group's entries, run the handler, finish, retry or dead-letter.

One reader task feeds a memory stream (XREADGROUP sized to the free slots, plus XAUTOCLAIM of
entries whose consumer stopped heart-beating); ``concurrency`` worker tasks run the handler; one
task writes completions in batches; one keeps the entries this consumer holds from being
reclaimed (heartbeat) and trims what every group has acknowledged. Every entry stays in the
group's pending list until it is finished, so a consumer killed at any point loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
from anyio.abc import TaskStatus
from redis.exceptions import RedisError, ResponseError

from ..store.scripts import Claimed, pairs
from ..validation import check_seconds
from .acks import Acks, AckTarget
from .control import ConsumerControls
from .entries import Held, Inbox, group_gone, hand_back, heartbeat, tell_reclaimed
from .limits import StartLimits
from .outage import OutagePolicy
from .readahead import ReadAhead
from .running import ConsumerLink, Runner

if TYPE_CHECKING:
    from ..client.queue import Handler
    from ..store.script_types import Fields
    from .context import ConsumerContext
    from .control import RunningJob
    from .options import ConsumerOptions

__all__ = ("Consumer",)

log = logging.getLogger("streamq")
T = TypeVar("T")

#: Longest a blocking XREADGROUP waits; stopping cancels it sooner.
MAX_BLOCK_SECONDS = 5.0
#: Longest pause between reclaim sweeps (shorter with a short visibility timeout).
MAX_RECLAIM_INTERVAL = 5.0
#: How often acknowledged entries are trimmed when several groups read a stream.
TRIM_INTERVAL = 2.0
#: Pauses after a Redis error, doubling up to the last one: short enough that a consumer is
#: back within ~2 s of a failover or restart however long the outage was.
ERROR_PAUSES = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
#: Longest a stop spends handing jobs back.
FLUSH_SECONDS = 5.0
#: How often a consumer renews its place in the window and marks its group alive (more often
#: with a short ``group_idle_timeout``: see :func:`register_interval`); a registration lapses
#: after three.
REGISTER_EVERY = 5.0
#: Pause before a consumer that hit an unexpected error starts its loops again.
RESTART_PAUSE = 1.0
#: Most of its own pending entries a consumer looks at when adopting lost deliveries.
ADOPT_PAGE = 1000
#: A group member that owes nothing and has been idle this long is removed from the group, so
#: the consumers of processes that stopped or died do not pile up. Removing a live one that owes
#: nothing is harmless (Redis < 7.2 does not count empty reads as activity): its next read adds
#: it again.
PRUNE_CONSUMERS_AFTER = 3600.0


def register_interval(group_idle_timeout: float) -> float:
    """Seconds between registrations: a third of the group idle timeout at most, or a live
    group would look gone between two of them and be destroyed (with what it owes)."""
    return min(REGISTER_EVERY, group_idle_timeout / 3)


class Consumer(Generic[T]):
    """A running consumer of one queue and group, made by :meth:`Queue.consume` (not by hand):
    it runs ``handler`` with the checked ``options``, as ``name`` in the group, through the
    ``context`` it shares with its queue and manager."""

    def __init__(
        self,
        context: ConsumerContext[T],
        handler: Handler[T],
        options: ConsumerOptions,
        name: str,
    ) -> None:
        self.queue = context.queue
        """The queue it consumes."""
        self.group = options.group
        """The consumer group it reads in."""
        self.name = name
        """This consumer's name in the group (unique per process and consumer)."""
        self._context = context
        self._options = options
        self._client = context.client
        self._scripts = context.scripts
        #: Blocking reads get a connection of their own: on the shared lane they would hold
        #: up every command behind them.
        self._read_lane = context.new_lane()
        self._keys = context.keys
        self._retention = context.retention
        self._group_idle_ms = round(context.group_idle_timeout * 1000)
        self._register_every = register_interval(context.group_idle_timeout)

        self._held: dict[bytes, Held] = {}
        self._in_flight = 0  # held and not yet done running (the ack may still be on its way)
        self._capacity = anyio.Event()
        self._reading = False  # in a blocking XREADGROUP
        self._read_scope: anyio.CancelScope | None = None  # around that read
        self._adopt_needed = False  # a read's reply may have been lost: take up what we own
        self._inbox: Inbox | None = None

        self._stopping: bool = False
        self._reader_scope: anyio.CancelScope | None = None
        self._workers_scope: anyio.CancelScope | None = None
        self._workers_done = anyio.Event()
        self._finished = anyio.Event()
        #: Pauses and log lines after a Redis error, for every loop of this consumer.
        self._outage = OutagePolicy(f"consumer {name}", self._keys.prefix, ERROR_PAUSES)
        self._read_ahead = ReadAhead(options.concurrency, options.prefetch)
        #: The queue's pause as last heard, and the entries cancelled before they started.
        self._controls = ConsumerControls(
            context.control,
            self._keys,
            self.group,
            running=self._running_job,
            on_pause=self._interrupt_read,
            on_slot_freed=self._slot_freed,
        )
        self._gate = self._controls.gate
        self._acks = Acks(
            AckTarget(
                name=name,
                group=self.group,
                scripts=self._scripts,
                keys=self._keys,
                retention=self._retention,
                outage=self._outage,
                fetch=self._fetch_with_acks,
                read=self._read_along,
                done=self._done_with,
                reply_lost=self._lost_reply,
                hooks=context.hooks,
            )
        )
        self._limits = StartLimits.of(
            options,
            self._scripts,
            context.control,
            self._keys,
            self._outage,
            lambda: self._stopping,
        )
        link = ConsumerLink(
            name=name,
            group=self.group,
            scripts=self._scripts,
            stopping=lambda: self._stopping,
            queue_ack=self._acks.queue,
            forget=self._forget,
            retry_staged=context.wake_scheduler,
            outage=self._outage,
            permit=None if self._limits is None else self._limits.take,
            ran=self._read_ahead.ran,
            was_cancelled=self._controls.cancelled.take,
            note_start=self._acks.note_start,
            take_start=self._acks.take_start,
        )
        self._runner = Runner(link, context, handler, options)

    def __repr__(self) -> str:
        return f"<Consumer {self.name!r} of {self.queue.name!r} group {self.group!r}>"

    @property
    def running(self) -> bool:
        """Whether it still runs: True until :meth:`stop` (or its manager's close) finished."""
        return not self._finished.is_set()

    @property
    def stopping(self) -> bool:
        """Whether it was told to stop: it takes no new job."""
        return self._stopping

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`stop`; the manager starts this in its task group, and
        ``task_status`` says the consumer started once its group exists and it is registered."""
        await self._ensure_group()
        await self._register()
        await self._controls.read_again()
        stop_listening = self._context.notices.listen(self._controls.on_message)
        task_status.started()
        try:
            while True:
                try:
                    await self._run_loops()
                except Exception:
                    # A bug must not take the manager's other consumers (and the user's code)
                    # down with it: write what finished, hand the rest back, start afresh.
                    log.exception(
                        "consumer %s of queue %r hit an unexpected error; restarting",
                        self.name,
                        self.queue.name,
                    )
                    await self._acks.flush()
                await self._release()
                self._acks.drop()  # not written: those entries were just handed back
                if self._stopping:
                    break
                await anyio.sleep(RESTART_PAUSE)
                if self._stopping:
                    break
                self._in_flight = 0
                self._workers_done = anyio.Event()
        finally:
            stop_listening()
            self._read_lane.close()
            self._workers_done.set()
            self._finished.set()

    async def _run_loops(self) -> None:
        inbox = self._inbox = Inbox()
        async with anyio.create_task_group() as upkeep:
            upkeep.start_soon(self._maintain)
            upkeep.start_soon(self._acks.loop)
            async with anyio.create_task_group() as workers:
                self._workers_scope = workers.cancel_scope
                workers.start_soon(self._read_loop, inbox)
                for _ in range(self._options.concurrency):
                    workers.start_soon(self._work_loop, inbox)
            self._workers_done.set()
            await self._acks.flush()
            upkeep.cancel_scope.cancel()  # no heartbeat may follow the hand-back

    async def stop(self, grace: float = 30) -> None:
        """Stop taking jobs, give running handlers ``grace`` seconds, then cancel the rest. Jobs
        that did not finish stay owed to the group and are redelivered."""
        check_seconds(grace, what="grace", allow_zero=True)
        self._stopping = True
        self._gate.release()
        if self._limits is not None:
            self._limits.wake()
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        with anyio.move_on_after(grace):
            await self._workers_done.wait()
        if not self._workers_done.is_set() and self._workers_scope is not None:
            log.warning(
                "consumer %s: %d handler(s) still running after %.1fs grace; cancelling them",
                self.name,
                self._in_flight,
                grace,
            )
            self._workers_scope.cancel()
        await self._finished.wait()

    # -- reading --------------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            # From id 0: a new group receives the entries the stream still retains.
            await self._client.xgroup_create(self._keys.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _register(self) -> None:
        """Count this consumer's prefetch in the window (and let staged jobs fill the room);
        hear whether the queue is paused."""
        paused = await self._scripts.register(
            self._keys,
            self.group,
            self.name,
            self._read_ahead.window_share,
            round(3 * self._register_every * 1000),
            self._group_idle_ms,
            self._options.key_limits,
        )
        self._gate.set(paused)

    # -- control --------------------------------------------------------------------------

    def _running_job(self, entry_id: bytes) -> RunningJob | None:
        held = self._held.get(entry_id)
        return None if held is None else held.control

    def _slot_freed(self) -> None:
        if self._limits is not None:
            self._limits.slot_freed()

    def _interrupt_read(self) -> None:
        """The queue was paused: a blocking read would take entries that cannot start."""
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def _read_loop(self, inbox: Inbox) -> None:
        vt = self._options.visibility_timeout
        reclaim_interval = min(vt / 2, MAX_RECLAIM_INTERVAL)
        # Well within the socket timeout: an idle read must not be taken for a stalled one.
        socket_timeout = self._context.socket_timeout or math.inf
        block = min(MAX_BLOCK_SECONDS, reclaim_interval, socket_timeout / 2)
        block_ms = max(1, round(block * 1000))
        next_reclaim = 0.0
        cursor = b"0-0"
        errors = 0
        try:
            with anyio.CancelScope() as self._reader_scope:
                while not self._stopping:
                    await self._wait_for_capacity()
                    await self._gate.wait()  # paused: read nothing new
                    try:
                        if self._adopt_needed:
                            self._adopt_needed = False
                            await self._adopt(inbox)
                        if time.monotonic() >= next_reclaim:
                            cursor = await self._reclaim(inbox, cursor, round(vt * 1000))
                            if cursor == b"0-0":
                                next_reclaim = time.monotonic() + reclaim_interval
                            continue
                        if not await self._wait_for_turn_to_read(next_reclaim):
                            continue  # time for a reclaim sweep first
                        await self._read(inbox, block_ms)
                        if errors:
                            log.info(
                                "consumer %s: reading again after %d failed tries",
                                self.name,
                                errors,
                            )
                        errors = 0
                    except (RedisError, OSError) as exc:
                        # A reply lost with the error may have delivered entries to us: adopt
                        # them before reading on, or they would wait out a visibility timeout.
                        self._adopt_needed = True
                        if group_gone(exc):
                            # Destroyed, or the server came back empty: set up again.
                            log.warning(
                                "consumer %s: group %r is gone; recreating it",
                                self.name,
                                self.group,
                            )
                            with contextlib.suppress(RedisError, OSError):
                                await self._ensure_group()
                                # Marked alive again, and counted in the window again (until
                                # then, enqueues would only be staged).
                                await self._register()
                        # READONLY in a failover, BUSY, a lost connection ...: pause, go on.
                        errors = await self._outage.pause(exc, errors, "read")
        finally:
            inbox.close(self._options.concurrency)

    async def _read(self, inbox: Inbox, block_ms: int) -> None:
        self._reading = True  # before any await: see _wait_for_turn_to_read
        try:
            with anyio.CancelScope() as scope:
                self._read_scope = scope
                reply = await self._read_lane.execute(
                    "XREADGROUP",
                    "GROUP",
                    self.group,
                    self.name,
                    "COUNT",
                    self._read_ahead.held - self._in_flight,
                    "BLOCK",
                    block_ms,
                    "STREAMS",
                    self._keys.stream,
                    ">",
                )
            if scope.cancelled_caught:
                # Paused: nothing new is read; what the read delivered meanwhile is adopted.
                self._read_lane.disconnect()
                self._adopt_needed = True
                return
        except ResponseError:
            raise  # answered: nothing is left blocked in Redis
        except BaseException:
            # Cancelled (a stop) or failed with the read still blocked in Redis: drop the
            # connection so a late reply cannot hold up the next read, and take up whatever
            # that reply would have delivered.
            self._read_lane.disconnect()
            self._adopt_needed = True
            raise
        finally:
            self._reading = False
            self._read_scope = None
        for _stream, entries in reply or ():
            self._admit(inbox, self._hold_all(Held(e, pairs(raw), 1) for e, raw in entries))

    async def _reclaim(self, inbox: Inbox, cursor: bytes, min_idle_ms: int) -> bytes:
        cursor, claimed = await self._scripts.reclaim(
            self._keys,
            self.group,
            self.name,
            min_idle_ms,
            self._read_ahead.held - self._in_flight,
            cursor,
            round(PRUNE_CONSUMERS_AFTER * 1000),
            self._retention.events,
        )
        self._admit(inbox, [h for c in claimed if (h := self._take_claimed(c)) is not None])
        return cursor

    async def _adopt(self, inbox: Inbox) -> None:
        """Take up entries Redis delivered to this consumer whose reply never arrived. Under the
        ack lock: a finishing script that reads for us must not be on its way, or its entries
        (delivered, not yet held) would be taken up twice."""
        async with self._acks.lock:
            free = self._read_ahead.held - self._in_flight
            owned = await self._scripts.adopt(self._keys, self.group, self.name, ADOPT_PAGE)
            lost = [c for c in owned if c.entry_id not in self._held][:free]
            adopted = self._hold_all(Held(c.entry_id, c.fields, c.delivery_count) for c in lost)
        if adopted:
            log.warning(
                "consumer %s: taking up %d entries whose delivery reply was lost",
                self.name,
                len(adopted),
            )
        self._admit(inbox, adopted)

    def _take_claimed(self, claimed: Claimed) -> Held | None:
        held = self._held.get(claimed.entry_id)
        if held is not None:
            # Our own entry went idle (a heartbeat came late): it is already running here.
            held.delivery_count = claimed.delivery_count
            return None
        tell_reclaimed(
            claimed,
            queue=self.queue.name,
            group=self.group,
            consumer=self.name,
            visibility_timeout=self._options.visibility_timeout,
            hooks=self._context.hooks(),
        )
        return self._hold(Held(claimed.entry_id, claimed.fields, claimed.delivery_count))

    def _hold_all(self, entries: Iterable[Held]) -> list[Held]:
        return [held for held in entries if self._hold(held) is not None]

    def _hold(self, held: Held) -> Held | None:
        """Hold a new entry; None for one already held (adopted and read at once)."""
        if held.entry_id in self._held:
            return None
        self._held[held.entry_id] = held
        self._in_flight += 1
        return held

    def _admit(self, inbox: Inbox, batch: list[Held]) -> None:
        """Hand entries to the workers (a rate limit meters their starts, not this)."""
        for held in batch:
            inbox.put(held)

    async def _wait_for_capacity(self) -> None:
        while self._in_flight >= self._read_ahead.held:
            self._capacity = anyio.Event()
            await self._capacity.wait()

    def _slot_done(self) -> None:
        self._in_flight -= 1
        self._capacity.set()

    # -- running --------------------------------------------------------------------------

    async def _work_loop(self, inbox: Inbox) -> None:
        """Run entries one after another. A cancelled job's handler is stopped through the
        worker's cancel scope: one per worker rather than per job (a scope costs more than the
        rest of a job's bookkeeping), and a new one after each job cancelled this way."""
        while True:
            with anyio.CancelScope() as scope:
                while not scope.cancel_called:
                    if (held := await inbox.get()) is None:
                        return
                    if self._gate.paused:
                        await self._gate.wait()
                    if self._stopping:
                        continue  # never started: handed back to the group by _release
                    try:
                        await self._runner.process(held, scope)
                    except Exception:
                        self._held.pop(held.entry_id, None)  # left pending: reclaimed later
                        log.exception(
                            "consumer %s: unexpected error on entry %s",
                            self.name,
                            held.entry_id.decode(),
                        )
                    finally:
                        self._slot_done()

    # -- finishing ------------------------------------------------------------------------

    def _forget(self, held: Held) -> None:
        """``held`` is finished with (its failure recorded, or left to be reclaimed)."""
        self._held.pop(held.entry_id, None)

    def _done_with(self, entry_id: bytes) -> None:
        self._held.pop(entry_id, None)

    def _fetch_with_acks(self) -> int:
        """How many new entries the finishing script should read for us: while jobs flow, the
        next batch rides on the acks' round trip. None while the reader is blocked in its own
        read (it would get them), while stopping, or under a rate limit (starts are metered)."""
        if (
            self._reading
            or self._stopping
            or self._gate.paused
            or self._options.rate_limit is not None
        ):
            return 0
        return max(0, self._read_ahead.held - self._in_flight)

    async def _wait_for_turn_to_read(self, until: float) -> bool:
        """Wait for free slots and for the acks to be written: while completions are on their
        way the finishing script reads for us, and two reads at once could deliver out of
        order. True with both true and no await after the check, so the reader's own read
        (which sets ``_reading`` first) cannot overlap a read riding on the acks; False when
        the monotonic time ``until`` (the next reclaim sweep) came first: under a steady flow
        of acks the reader would otherwise never get back to reclaiming."""
        with anyio.move_on_after(max(0.0, until - time.monotonic())):
            while True:
                if self._in_flight >= self._read_ahead.held:
                    await self._wait_for_capacity()
                elif self._acks.busy:
                    await self._acks.wait_idle()
                    await anyio.lowlevel.checkpoint()
                else:
                    return True
        return False

    def _read_along(self, entries: list[tuple[bytes, Fields]]) -> None:
        """Entries the finishing script read for this consumer."""
        if self._inbox is not None:
            for entry_id, fields in entries:
                if (held := self._hold(Held(entry_id, fields, 1))) is not None:
                    self._inbox.put(held)

    def _lost_reply(self) -> None:
        self._adopt_needed = True

    async def _release(self) -> None:
        """Hand every entry this consumer still owns back to its group (bounded: a stop never
        hangs on an unreachable Redis)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(FLUSH_SECONDS):
            await hand_back(
                self._scripts, self._keys, self.group, self.name, self._held, self._group_idle_ms
            )
        self._held.clear()

    # -- upkeep ---------------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Heartbeat held entries, renew the registration, trim what every group acknowledged."""
        heartbeat_every = self._options.visibility_timeout / 3
        now = time.monotonic()
        next_heartbeat, next_trim = now + heartbeat_every, now + TRIM_INTERVAL
        next_register = now + self._register_every
        errors = 0
        while True:
            wake_at = min(next_heartbeat, next_trim, next_register)
            missed = await self._controls.missed(max(0.0, wake_at - time.monotonic()))
            try:
                if missed:
                    await self._controls.read_again()
                # Each due time moves on only once its step succeeded: a failed heartbeat is
                # tried again after a short pause, not a third of a visibility timeout later.
                now = time.monotonic()
                if now >= next_heartbeat:
                    await heartbeat(
                        self._scripts,
                        self._keys,
                        self.group,
                        self.name,
                        self._held,
                        round(self._options.visibility_timeout * 1000),
                        self._controls.cancel,
                    )
                    next_heartbeat = now + heartbeat_every
                if now >= next_register:
                    await self._register()
                    next_register = now + self._register_every
                if now >= next_trim:
                    if self._acks.written:
                        await self._scripts.trim(self._keys, self._group_idle_ms)
                        self._acks.written = False
                    next_trim = now + TRIM_INTERVAL
                errors = 0
            except (RedisError, OSError) as exc:
                errors = await self._outage.pause(exc, errors, "heartbeat")

"""Limits on a group's job starts shared by every consumer of it on every machine: the rate
limit (``rate_limit=(n, seconds)``), the global concurrency (``global_concurrency=n``) and the
per-key rate limit's start permits (``per_key_rate_limit=(n, seconds)``; per-key concurrency is
kept where the queue's window is refilled, see ``refill`` in ``store/lua/_lib.lua``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from ..store.control import ControlScripts
    from ..store.keys import QueueKeys
    from ..store.scripts import Scripts
    from .options import ConsumerOptions
    from .outage import OutagePolicy

__all__ = ("KeyRatePermits", "Rate", "RatePermits", "Slots", "StartLimits")


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate limit of a group's starts (of all its jobs, or of each fairness key's): at most
    ``limit`` per ``period_ms``, with the consumer's outage policy and stop flag."""

    keys: QueueKeys
    group: str
    limit: int
    period_ms: int
    outage: OutagePolicy
    stopping: Callable[[], bool]


class RatePermits:
    """Start permits under a group's rate limit: at most ``limit`` starts per period across
    the group."""

    def __init__(self, scripts: Scripts, rate: Rate) -> None:
        self._scripts = scripts
        self._rate = rate
        self._turn = anyio.Lock()  # one worker at a time asks for a permit, in turn

    async def take(self) -> bool:
        """Wait for a start; False if the consumer stops first."""
        async with self._turn:
            return await _ask_until_granted(self._ask, self._rate, "take a rate-limit permit")

    async def _ask(self) -> float:
        r = self._rate
        granted, wait = await self._scripts.rate_limit(r.keys, r.group, 1, r.limit, r.period_ms)
        return 0.0 if granted else wait


class KeyRatePermits:
    """Start permits under a per-key rate limit: at most ``limit`` starts of one fairness key's
    jobs per period across the group. The window lets a key's jobs in at that rate already, so
    a wait here is short and rare (entries that a busy window delivered bunched)."""

    def __init__(self, control: ControlScripts, rate: Rate) -> None:
        self._control = control
        self._rate = rate

    async def take(self, entry_id: bytes, fairness_key: str) -> bool:
        """Wait for a start of ``fairness_key``; False if the consumer stops first."""
        r = self._rate

        async def ask() -> float:
            wait_ms = await self._control.take_key_start(
                r.keys, r.group, fairness_key, entry_id, r.limit, r.period_ms
            )
            return wait_ms / 1000

        return await _ask_until_granted(ask, r, "take a per-key start permit")


async def _ask_until_granted(ask: Callable[[], Awaitable[float]], rate: Rate, doing: str) -> bool:
    """Ask for a permit (``ask`` returns 0 when granted, else the seconds until one may be)
    until granted; False if the consumer stops first. A Redis error pauses and asks again: the
    entry stays held (and heart-beaten), so it runs once Redis answers, or is handed back by
    the stop."""
    errors = 0
    while not rate.stopping():
        try:
            wait = await ask()
        except (RedisError, OSError) as exc:
            errors = await rate.outage.pause(exc, errors, doing)
            continue
        if wait <= 0:
            return True
        await anyio.sleep(wait)  # until the oldest start leaves the period
    return False


class Slots:
    """Slots under a group's global concurrency: at most ``most`` of the group's handlers run
    at once, on every machine. A slot lasts ``visibility_timeout`` unless the heartbeat renews
    it, so a dead consumer's slots come back. Waiting for one does not poll: a freed slot is
    published on the queue's channel (:meth:`freed`), and the soonest lapse bounds the wait."""

    def __init__(
        self,
        control: ControlScripts,
        keys: QueueKeys,
        group: str,
        most: int,
        visibility_timeout: float,
        outage: OutagePolicy,
        stopping: Callable[[], bool],
    ) -> None:
        self._control = control
        self._keys = keys
        self._group = group
        self._most = most
        self.slot_ms = round(visibility_timeout * 1000)
        self._outage = outage
        self._stopping = stopping
        self._turn = anyio.Lock()  # one worker at a time asks, in turn
        self._freed = anyio.Event()

    def freed(self) -> None:
        """A slot of the group was freed (a message on the queue's channel)."""
        self._freed.set()

    def wake(self) -> None:
        """Stopping: let a waiter go (it then finds ``stopping``)."""
        self._freed.set()

    async def take(self, entry_id: bytes) -> bool:
        """Wait for a slot for ``entry_id``; False if the consumer stops first."""
        errors = 0
        async with self._turn:
            while not self._stopping():
                # Before asking: a slot freed once the script has noted us waiting wakes us.
                self._freed = anyio.Event()
                try:
                    taken, wait_ms = await self._control.take_slot(
                        self._keys, self._group, entry_id, self._most, self.slot_ms
                    )
                except (RedisError, OSError) as exc:
                    errors = await self._outage.pause(exc, errors, "take a concurrency slot")
                    continue
                if taken:
                    return True
                with anyio.move_on_after(wait_ms / 1000):
                    await self._freed.wait()
        return False


class StartLimits:
    """What a consumer's job starts wait for: a keyed job's per-key permit, a rate-limit
    permit, then a concurrency slot (the slot last: it is held while waiting for the rate)."""

    def __init__(
        self, rate: RatePermits | None, slots: Slots | None, key_rate: KeyRatePermits | None
    ) -> None:
        self._rate = rate
        self._slots = slots
        self._key_rate = key_rate

    @classmethod
    def of(
        cls,
        options: ConsumerOptions,
        scripts: Scripts,
        control: ControlScripts,
        keys: QueueKeys,
        outage: OutagePolicy,
        stopping: Callable[[], bool],
    ) -> StartLimits | None:
        """The limits ``options`` set, or None when they set none."""
        rate = slots = None
        if options.rate_limit is not None:
            period_ms = round(options.rate_period * 1000)
            limit = Rate(keys, options.group, options.rate_limit, period_ms, outage, stopping)
            rate = RatePermits(scripts, limit)
        if options.global_concurrency is not None:
            slots = Slots(
                control,
                keys,
                options.group,
                options.global_concurrency,
                options.visibility_timeout,
                outage,
                stopping,
            )
        key_rate = None
        if options.per_key_rate is not None:
            period_ms = round(options.per_key_period * 1000)
            limit = Rate(keys, options.group, options.per_key_rate, period_ms, outage, stopping)
            key_rate = KeyRatePermits(control, limit)
        if rate is None and slots is None and key_rate is None:
            return None
        return cls(rate, slots, key_rate)

    async def take(self, entry_id: bytes, fairness_key: bytes | None) -> bool:
        """Wait until ``entry_id`` (of ``fairness_key``'s jobs, if any) may start; False if the
        consumer stops first."""
        if (
            fairness_key is not None
            and self._key_rate is not None
            and not await self._key_rate.take(entry_id, fairness_key.decode())
        ):
            return False
        if self._rate is not None and not await self._rate.take():
            return False
        return self._slots is None or await self._slots.take(entry_id)

    def slot_freed(self) -> None:
        if self._slots is not None:
            self._slots.freed()

    def wake(self) -> None:
        """Stopping: let waiters go."""
        if self._slots is not None:
            self._slots.wake()

"""How the worker side rides out Redis errors: one policy for the consumer's loops, the runner's
writes, the scheduler and its wake-up listener; and :class:`Rounds`, the loop of the scheduler
and the flow relay.

After each error in a row a loop pauses (a little longer each time, up to its longest pause) and
tries again. The first error of a run is a warning, then only one in :data:`QUIET_ERRORS` (the
others at debug level): an outage is told, not flooded. A missing ACL permission does not fix
itself within seconds: it is one error line naming the fix, then a :data:`PERMISSION_PAUSE`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from redis.exceptions import RedisError

from ..transport.acl import PERMISSION_PAUSE, is_denied, permission_denied

__all__ = ("QUIET_ERRORS", "OutagePolicy", "Rounds")

log = logging.getLogger("streamq")

#: After the first error of a run, every this many errors is logged as a warning (the others at
#: debug level): about once a minute once a consumer's pauses reach their longest.
QUIET_ERRORS = 30


@dataclass(frozen=True, slots=True)
class OutagePolicy:
    """The pauses and log lines of one loop (``who``) that talks to Redis.

    Callers count the errors in a row themselves (``errors``: how many came before this one)
    and start again from 0 after a success.
    """

    #: Names the loop in its log lines: "consumer <name>", "scheduler of queue 'q'".
    who: str
    #: The key prefix, for the ACL rules a permission error names.
    prefix: str
    #: The pause after the first, second ... error in a row; the last one repeats.
    pauses: tuple[float, ...]
    #: What happens after the pause, as the log line says it.
    then: str = "retrying"

    def __post_init__(self) -> None:
        if not self.pauses:
            raise ValueError("an outage policy needs at least one pause")

    def pause_for(self, exc: BaseException, errors: int) -> float:
        """Seconds to wait after ``exc``, the error that followed ``errors`` others in a row."""
        if is_denied(exc):
            return PERMISSION_PAUSE
        return self.pauses[min(errors, len(self.pauses) - 1)]

    def report(self, exc: BaseException, errors: int, doing: str | None = None) -> float:
        """Log ``exc`` (while trying to ``doing``), the error after ``errors`` others in a row;
        returns the pause to take before the next try."""
        pause = self.pause_for(exc, errors)
        if is_denied(exc):
            # Retrying in milliseconds cannot help: one clear line, then a long pause.
            who = self.who if doing is None else f"{self.who}: {doing}"
            denied = permission_denied(exc, self.prefix, who)
            log.error("%s; %s in %gs", denied, self.then, pause)
            return pause
        level = logging.WARNING if errors % QUIET_ERRORS == 0 else logging.DEBUG
        trying = "" if doing is None else f" while trying to {doing}"
        log.log(
            level,
            "%s: Redis error%s (%s); %s in %gs (try %d)",
            self.who,
            trying,
            exc,
            self.then,
            pause,
            errors + 1,
        )
        return pause

    async def pause(self, exc: BaseException, errors: int, doing: str | None = None) -> int:
        """Log ``exc`` and wait out its pause; returns the errors in a row, this one counted."""
        await anyio.sleep(self.report(exc, errors, doing))
        return errors + 1

    def another_try(self, exc: BaseException, errors: int) -> bool:
        """Whether a write that failed ``errors`` times before, now with ``exc``, is worth
        another try after :meth:`pause`: once per pause in the sequence, and not for a missing
        permission (that waits for the next write)."""
        return not is_denied(exc) and errors < len(self.pauses)


class Rounds:
    """A background task's rounds: each round returns how long to sleep before the next; a Redis
    error pauses as ``outage`` says; :meth:`wake` cuts a sleep short (a message on the queue's
    channel, a local retry)."""

    def __init__(self, outage: OutagePolicy) -> None:
        self._outage = outage
        self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(
        self, round_: Callable[[], Awaitable[float]], gather: Callable[[], float] | None = None
    ) -> None:
        """Run ``round_`` for ever. ``gather``: after a sleep a wake-up cut short, how long to
        let more wake-ups gather first (a busy task's rounds then take many at a time)."""
        errors = 0
        while True:
            try:
                sleep = await round_()
                errors = 0
            except (RedisError, OSError) as exc:
                sleep = self._outage.report(exc, errors)
                errors += 1
            if sleep > 0:
                with anyio.move_on_after(sleep):
                    await self._wake.wait()
                if gather is not None and self._wake.is_set() and (pause := gather()) > 0:
                    await anyio.sleep(pause)
            self._wake = anyio.Event()

"""``worker --processes N``: N worker processes kept running by one parent.

The parent restarts a worker that exits on its own (crashed, killed, out of memory), with a
growing delay while it keeps dying young, so a worker that cannot start does not spin. On
SIGTERM or SIGINT it passes the signal on and waits while the workers drain their running jobs;
a second signal is passed on too (the workers then cancel their jobs and hand them back), and
workers still running ``grace`` + :data:`KILL_MARGIN` seconds after the first are killed.

Workers run in sessions of their own so that Ctrl+C in a terminal reaches them once, through the
parent, not twice; each one watches the parent and stops by itself if the parent is gone.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
from anyio.abc import Process

__all__ = ("Supervisor",)

log = logging.getLogger("streamq.worker")

#: Seconds past the workers' grace before the parent kills what still runs.
KILL_MARGIN = 10.0
#: Restart delays: the first, the most, and how long a worker must run to count as healthy.
MIN_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
HEALTHY_AFTER = 10.0


class Supervisor:
    """Keeps ``processes`` copies of ``command`` running until a signal stops them."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        grace: float,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.env = env
        self.processes = processes
        self.grace = grace
        self._stopping = anyio.Event()
        self._running: dict[int, Process] = {}
        self._failed = False

    async def run(self) -> int:
        """Supervise until stopped by a signal; 0 when every worker stopped cleanly."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as listening:
                listening.start_soon(self._on_signals, signals)
                async with anyio.create_task_group() as workers:
                    for slot in range(self.processes):
                        workers.start_soon(self._keep_running, slot)
                listening.cancel_scope.cancel()  # every worker has stopped
        return 1 if self._failed else 0

    @property
    def pids(self) -> list[int]:
        """The workers running now."""
        return [process.pid for process in self._running.values()]

    async def _keep_running(self, slot: int) -> None:
        delay = MIN_RESTART_DELAY
        while not self._stopping.is_set():
            started = time.monotonic()
            process = await anyio.open_process(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
                start_new_session=True,
                env=self.env,
            )
            self._running[slot] = process
            if self._stopping.is_set():  # the signal came while it was starting
                process.send_signal(signal.SIGTERM)
            try:
                code = await process.wait()
            finally:
                del self._running[slot]
                if process.returncode is None:  # the supervisor itself was cancelled
                    process.kill()
            if self._stopping.is_set():
                # Ended by the signal itself: it came before the worker set up its handlers,
                # so it had taken no job yet.
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    self._failed = True
                    log.error("worker %d exited %s while stopping", process.pid, _how(code))
                return
            lived = time.monotonic() - started
            if lived >= HEALTHY_AFTER:
                delay = MIN_RESTART_DELAY
            log.warning(
                "worker %d exited %s after %.1fs; starting another in %.1fs",
                process.pid,
                _how(code),
                lived,
                delay,
            )
            with anyio.move_on_after(delay):
                await self._stopping.wait()
            delay = min(delay * 2, MAX_RESTART_DELAY)  # while it keeps dying young

    async def _on_signals(self, signals: AsyncIterator[signal.Signals]) -> None:
        first = await signals.__anext__()
        log.info(
            "supervisor: %s, stopping %d worker(s); they get %gs to finish their jobs",
            first.name,
            len(self._running),
            self.grace,
        )
        self._stopping.set()
        self._send(first)
        with anyio.move_on_after(self.grace + KILL_MARGIN):
            async for again in signals:
                log.warning("supervisor: %s again, workers cancel their running jobs", again.name)
                self._send(again)
        for process in self._running.values():
            log.error("supervisor: worker %d did not stop in time; killing it", process.pid)
            process.kill()
            self._failed = True

    def _send(self, signum: signal.Signals) -> None:
        for process in self._running.values():
            process.send_signal(signum)


def _how(code: int) -> str:
    """A worker's exit status in words."""
    if code < 0:
        return f"on {signal.Signals(-code).name}"
    return f"with status {code}"

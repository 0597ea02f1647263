"""Real processes for the fault suite: ``python -m streamq worker`` commands (and the broadcast
instances of :mod:`tests.chaos.instance`), their output in files, and the faults done to them.

Processes are found and signalled by PID only: a supervisor's workers through
``/proc/<pid>/task/<pid>/children``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from streamq.transport.connection import URL_ENV

from ..helpers import wait_until
from ..processes import alive, children

__all__ = ("Processes", "alive", "children", "settle")

ROOT = Path(__file__).parent.parent.parent
HANDLER = "tests.chaos.handlers:run"


def signal_pid(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


async def settle(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float, what: str
) -> bool:
    """:func:`wait_until`, but False on the deadline: the scenario still records its figures."""
    try:
        await wait_until(condition, timeout=timeout, what=what)
    except AssertionError as exc:
        print(f"\n{exc}")
        return False
    return True


class Processes:
    """Starts commands from the repository's root (so ``tests.chaos`` is importable) with
    ``$STREAMQ_REDIS_URL`` set; kills whatever still runs at the end."""

    def __init__(self, redis_url: str, folder: Path) -> None:
        self.redis_url = redis_url
        self.folder = folder
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        #: PIDs this test killed (SIGKILL), and when (monotonic).
        self.killed: dict[int, float] = {}
        #: When each worker was first seen consuming (monotonic).
        self.consuming_since: dict[int, float] = {}

    def spawn(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, *argv],
                cwd=ROOT,
                env={**os.environ, URL_ENV: self.redis_url},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started[name] = process
        return process

    def worker(self, name: str, queue: str, *options: str) -> subprocess.Popen[bytes]:
        """``python -m streamq worker tests.chaos.handlers:run --queue QUEUE OPTIONS...``"""
        return self.spawn(name, "-m", "streamq", "worker", HANDLER, "--queue", queue, *options)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def workers_of(self, name: str) -> list[int]:
        """The live workers of the supervisor ``name``."""
        return [pid for pid in children(self.started[name].pid) if alive(pid)]

    def consuming(self, name: str) -> list[int]:
        """The live workers of the supervisor ``name`` that said they consume (log level info)."""
        log = self.log(name)
        pids = [pid for pid in self.workers_of(name) if f"worker {pid}: " in log]
        for pid in pids:
            self.consuming_since.setdefault(pid, time.monotonic())
        return pids

    def restart_delays(self, name: str) -> list[float]:
        """The supervisor's restart delays so far, from its log."""
        found = re.findall(r"starting another in ([0-9.]+)s", self.log(name))
        return [float(delay) for delay in found]

    def kill(self, pid: int) -> None:
        signal_pid(pid, signal.SIGKILL)
        self.killed[pid] = time.monotonic()

    async def kill_a_worker(self, name: str, rng: random.Random, timeout: float) -> int | None:
        """SIGKILL one of the supervisor's workers, chosen by ``rng`` among those that have
        consumed for 0.5-2 s at least (drawn by ``rng``); None if none did within ``timeout``.

        A worker killed the moment it is up (the supervisor may have been waiting out its
        restart delay) would die while it takes up the jobs of the last one killed, every time.
        """
        up = rng.uniform(0.5, 2.0)

        def ready() -> list[int]:
            now = time.monotonic()
            return [p for p in self.consuming(name) if now - self.consuming_since[p] >= up]

        if not await settle(lambda: bool(ready()), timeout, "a worker to kill"):
            return None
        victim = rng.choice(sorted(ready()))
        self.kill(victim)
        return victim

    def close(self) -> None:
        for process in self.started.values():
            workers = children(process.pid)
            signal_pid(process.pid, signal.SIGKILL)
            for pid in workers:  # a worker started since stops by itself (its parent is gone)
                signal_pid(pid, signal.SIGKILL)
                signal_pid(pid, signal.SIGCONT)
            process.wait(10)

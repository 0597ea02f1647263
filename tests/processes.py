"""Worker commands (``python -m streamq worker ...``) started by the tests, and the processes
they start: found through ``/proc``, killed by their PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import streamq
from streamq.testing.localserver import LocalRedis

from .helpers import wait_until

__all__ = (
    "ROOT",
    "Workers",
    "alive",
    "anyio_backend",
    "children",
    "exited",
    "producer",
    "redis_url",
    "workers",
)

ROOT = Path(__file__).parent.parent


class Workers:
    """Starts ``python -m streamq worker ...`` commands, their output in files."""

    def __init__(self, redis_url: str, folder: Path) -> None:
        self.redis_url = redis_url
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, new_session: bool = False) -> subprocess.Popen[bytes]:
        with self._log_path(len(self.started)).open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamq", "worker", *args],
                cwd=ROOT,
                env={**os.environ, "STREAMQ_REDIS_URL": self.redis_url},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )
        self.started.append(process)
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return self._log_path(self.started.index(process)).read_text()

    def _log_path(self, index: int) -> Path:
        return self.folder / f"worker-{index}.log"

    def kill_all(self) -> None:
        for process in self.started:
            for pid in [*children(process.pid), process.pid]:
                _kill(pid)
            process.wait(10)


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


async def exited(process: subprocess.Popen[bytes], timeout: float) -> int:
    await wait_until(lambda: process.poll() is not None, timeout=timeout, what="the exit")
    code = process.returncode
    assert code is not None
    return code


# -- fixtures of the modules that start worker commands (they import them) ---------------


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # the workers themselves run on uvloop


@pytest.fixture
def redis_url(server: LocalRedis) -> str:
    return server.url


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Anything still alive at the end is killed."""
    started = Workers(redis_url, tmp_path)
    yield started
    started.kill_all()


@pytest.fixture
async def producer(redis_url: str) -> AsyncIterator[streamq.QueueManager]:
    async with streamq.QueueManager(redis_url) as manager:
        yield manager

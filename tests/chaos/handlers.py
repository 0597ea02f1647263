"""The handler the fault suite's worker processes run: ``tests.chaos.handlers:run``.

Each run records itself in Redis on a client of the handler's own, so the test counts runs per
job across killed and stopped processes: ``chaos:{queue}:starts`` gets ``"<job id> <pid> <server
ms>"`` as a run starts (the Redis server's clock, the one due times are kept by), and
``chaos:{queue}:finishes`` ``"<job id> <pid>"`` as it returns. The job's result is the PID.
"""

from __future__ import annotations

import os

import anyio
import msgspec
import redis.asyncio as aioredis

import streamq
from streamq.transport.connection import URL_ENV

__all__ = ("Task", "finishes_key", "run", "starts_key")


class Task(msgspec.Struct, frozen=True):
    #: Seconds the handler sleeps (a run that is still going when its worker is killed).
    nap: float = 0.0
    #: ``"raise"``: fails every time; ``"exit"``: kills its worker process in mid-run.
    poison: str = ""


def starts_key(queue: str) -> str:
    return f"chaos:{{{queue}}}:starts"


def finishes_key(queue: str) -> str:
    return f"chaos:{{{queue}}}:finishes"


# TIME and RPUSH in one step; ms as text, exact (Lua's numbers would print 13 digits as 1.7e+12).
_RECORD_START = """
local t = redis.call('TIME')
local ms = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('RPUSH', KEYS[1], ARGV[1] .. ' ' .. ms)
"""

_client: aioredis.Redis | None = None


def _redis() -> aioredis.Redis:
    """Made on first use, in the worker's own event loop."""
    global _client
    if _client is None:
        _client = aioredis.Redis.from_url(os.environ[URL_ENV])
    return _client


async def run(job: streamq.Job[Task]) -> int:
    client = _redis()
    me = f"{job.id} {os.getpid()}"
    await client.eval(_RECORD_START, 1, starts_key(job.queue), me)
    if job.data.poison == "raise":
        raise RuntimeError(f"poison job {job.id} fails every time")
    if job.data.nap:
        await anyio.sleep(job.data.nap)
    if job.data.poison == "exit":
        os._exit(17)  # mid-handler: no finally, no ack, the whole worker gone
    await client.rpush(finishes_key(job.queue), me)
    return os.getpid()

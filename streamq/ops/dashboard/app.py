"""The dashboard's web app (Starlette): its page, and the JSON API the page polls.

::

    GET  /                  the page (static/index.html; its script and style under /static/)
    GET  /api/queues        every queue's counts and consumer groups, and the dashboard's settings
    GET  /api/queue?name=Q  one queue: counts (``paused`` too), groups, active/waiting/delayed/
                            retrying jobs, dead letters
    GET  /api/job?queue=Q&id=J                 one job: its JobInfo fields and its ``logs``;
                                               a flow step's ``parent`` and ``children`` as
                                               ``{"queue", "id"}`` (the first CHILDREN_LISTED
                                               children) and ``children_total``
    GET  /api/dead-letter?queue=Q&job_id=J     one dead letter in full
    GET  /api/history?minutes=60[&queue=Q]     every queue's (or Q's) last minutes
                                               (``Queue.history``), oldest first
    POST /api/retry-dead    {"queue": Q, "job_id": J | null}   (null: every dead letter of Q)
    POST /api/purge-dead    {"queue": Q}
    POST /api/cancel        {"queue": Q, "job_id": J}  -> {"queue", "job_id", "cancelled"}
    POST /api/pause         {"queue": Q}               -> {"queue", "paused", "changed"}
    POST /api/resume        {"queue": Q}               -> {"queue", "paused", "changed"}

The POST routes answer 403 unless the app was created with ``allow_actions``. Errors are JSON
``{"error": "..."}``: 400 bad input, 403 refused (read-only, or the checks of :mod:`.guard`),
404 unknown queue, job or dead letter, 503 Redis unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ...client.inspection import MAX_PEEK, JobSummary, QueueOverview, overview, to_json
from ...client.manager import QueueManager
from ...errors import JobInUse, StreamqError
from ...job import DeadLetter, HistoryPoint
from ...store.history import HISTORY_MINUTES
from ...transport.connection import redacted
from .guard import Guard

__all__ = ("CHILDREN_LISTED", "LISTED", "READ_ONLY", "create_app")

Endpoint = Callable[[Request], Awaitable[Response]]

STATIC = Path(__file__).with_name("static")

#: Jobs listed per state on a queue's page (``?limit=`` asks for up to MAX_PEEK).
LISTED = 50
#: A flow step's children listed in its job view: a fan-in of 10,000 is counted, not listed.
CHILDREN_LISTED = 1000
#: A request body is a queue name and a job id: anything much bigger is not the page's.
MAX_BODY = 16 * 1024
READ_ONLY = (
    "the dashboard is read-only: start it with --allow-actions to retry, purge, cancel, pause"
    " or resume"
)


class QueuesPage(msgspec.Struct, frozen=True):
    at: float
    prefix: str
    redis: str
    allow_actions: bool
    queues: list[QueueOverview]


class QueuePage(msgspec.Struct, frozen=True):
    at: float
    queue: QueueOverview
    active: list[JobSummary]
    waiting: list[JobSummary]
    delayed: list[JobSummary]
    retrying: list[JobSummary]
    dead: list[DeadLetter]
    limit: int


class QueueHistory(msgspec.Struct, frozen=True):
    name: str
    history: list[HistoryPoint]


class HistoryPage(msgspec.Struct, frozen=True):
    at: float
    minutes: int
    queues: list[QueueHistory]


class RetryDead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    queue: str
    #: None: every dead letter of the queue.
    job_id: str | None = None


class PurgeDead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    queue: str


class CancelJob(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    queue: str
    job_id: str


class PauseQueue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a pause and of a resume."""

    queue: str


class Failure(Exception):
    """An answer other than 200, as JSON ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _answer(value: Any, status: int = 200) -> Response:
    return Response(to_json(value), status_code=status, media_type="application/json")


def create_app(
    qm: QueueManager, *, allow_actions: bool = False, allowed_hosts: frozenset[str] | None = None
) -> Starlette:
    """The dashboard over ``qm`` (entered, and kept open by the caller while the app serves).

    ``allow_actions``: whether retry, purge, cancel, pause and resume work (else they answer
    403). ``allowed_hosts``: the Host names the app answers to (None: any; give them when it
    listens on loopback, so a DNS-rebinding page cannot read it).
    """

    async def known(name: str | None, parameter: str = "name") -> str:
        if not name:
            raise Failure(400, f"name the queue: ?{parameter}=QUEUE")
        if name not in await qm.queues():
            raise Failure(404, f"unknown queue {name!r} (prefix {qm.prefix!r})")
        return name

    async def queues(request: Request) -> Response:
        listed = await overview(qm, await qm.queues())
        return _answer(QueuesPage(time.time(), qm.prefix, redacted(qm.url), allow_actions, listed))

    async def queue(request: Request) -> Response:
        name = await known(request.query_params.get("name"))
        limit = _count(request.query_params.get("limit"), "limit", LISTED, MAX_PEEK)
        q = qm.get_queue(name)
        [counts] = await overview(qm, [name])
        return _answer(
            QueuePage(
                at=time.time(),
                queue=counts,
                active=await q.jobs("active", limit),
                waiting=await q.jobs("waiting", limit),
                delayed=await q.jobs("delayed", limit),
                retrying=await q.jobs("retrying", limit),
                dead=await q.dead_letters(limit),
                limit=limit,
            )
        )

    async def history(request: Request) -> Response:
        minutes = _count(request.query_params.get("minutes"), "minutes", 60, HISTORY_MINUTES)
        if "queue" in request.query_params:
            names = [await known(request.query_params.get("queue"), "queue")]
        else:
            names = await qm.queues()
        listed = await _histories(qm, names, minutes)
        return _answer(HistoryPage(time.time(), minutes, listed))

    async def job(request: Request) -> Response:
        name = await known(request.query_params.get("queue"), "queue")
        job_id = request.query_params.get("id")
        if not job_id:
            raise Failure(400, "name the job: ?queue=QUEUE&id=JOB")
        q = qm.get_queue(name)
        info = await q.get_job(job_id)
        if info is None:
            raise Failure(
                404, f"queue {name!r} has no job {job_id!r} (or it finished past result_ttl)"
            )
        # JobInfo's own fields, however many it grows (JobRefs encode as {"queue", "id"}),
        # the first of a flow step's children with their count, and the handler's log lines.
        return _answer(
            msgspec.structs.asdict(info)
            | {
                "children": info.children[:CHILDREN_LISTED],
                "children_total": len(info.children),
                "logs": await q.job_logs(job_id),
            }
        )

    async def dead_letter(request: Request) -> Response:
        name = await known(request.query_params.get("queue"), "queue")
        job_id = request.query_params.get("job_id", "")
        letter = await qm.get_queue(name).dead_letter(job_id)
        if letter is None:
            raise Failure(404, f"queue {name!r} has no dead letter {job_id!r}")
        return _answer(letter)

    async def retry_dead(request: Request) -> Response:
        body = await _body(request, RetryDead)
        name = await known(body.queue)
        retried = await qm.get_queue(name).retry_dead(body.job_id)
        if body.job_id is not None and not retried:
            raise Failure(404, f"queue {name!r} has no dead letter {body.job_id!r}")
        return _answer({"queue": name, "retried": retried})

    async def purge_dead(request: Request) -> Response:
        body = await _body(request, PurgeDead)
        name = await known(body.queue)
        return _answer({"queue": name, "purged": await qm.get_queue(name).purge_dead()})

    async def cancel(request: Request) -> Response:
        body = await _body(request, CancelJob)
        name = await known(body.queue)
        cancelled = await qm.get_queue(name).cancel(body.job_id)
        return _answer({"queue": name, "job_id": body.job_id, "cancelled": cancelled})

    def set_paused(paused: bool) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            body = await _body(request, PauseQueue)
            name = await known(body.queue)
            q = qm.get_queue(name)
            changed = await (q.pause() if paused else q.resume())
            return _answer({"queue": name, "paused": paused, "changed": changed})

        return endpoint

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    def action(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            if not allow_actions:
                raise Failure(403, READ_ONLY)
            return await endpoint(request)

        return guarded

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/queues", queues),
            Route("/api/queue", queue),
            Route("/api/job", job),
            Route("/api/dead-letter", dead_letter),
            Route("/api/history", history),
            Route("/api/retry-dead", action(retry_dead), methods=["POST"]),
            Route("/api/purge-dead", action(purge_dead), methods=["POST"]),
            Route("/api/cancel", action(cancel), methods=["POST"]),
            Route("/api/pause", action(set_paused(True)), methods=["POST"]),
            Route("/api/resume", action(set_paused(False)), methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, allowed_hosts=allowed_hosts)],
        exception_handlers={
            Failure: _failure,
            HTTPException: _http_error,
            StreamqError: _streamq_error,
            RedisError: _redis_error,
        },
    )


def _count(raw: str | None, name: str, default: int, most: int) -> int:
    """A query parameter that counts something, 1 to ``most`` (``default`` when absent)."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Failure(400, f"{name} must be a whole number, got {raw!r}") from None
    if not 1 <= value <= most:
        raise Failure(400, f"{name} must be 1 to {most:,}, got {value:,}")
    return value


async def _histories(qm: QueueManager, names: Sequence[str], minutes: int) -> list[QueueHistory]:
    """The queues' histories, read at once: one round trip's wait for the lot."""
    found: list[QueueHistory | None] = [None] * len(names)

    async def read(index: int, name: str) -> None:
        found[index] = QueueHistory(name, await qm.get_queue(name).history(minutes))

    async with anyio.create_task_group() as tasks:
        for index, name in enumerate(names):
            tasks.start_soon(read, index, name)
    return [h for h in found if h is not None]


async def _body(request: Request, shape: type[msgspec.Struct]) -> Any:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Failure(413, f"the request body is over {MAX_BODY:,} bytes")
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        raise Failure(400, f"bad request body: {exc}") from None
    except msgspec.DecodeError:
        raise Failure(400, "the request body is not JSON") from None


async def _failure(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Failure)
    return _answer({"error": exc.message}, exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _answer({"error": exc.detail}, exc.status_code)


async def _streamq_error(request: Request, exc: Exception) -> Response:
    """Bad input reached the library (a job id too long): 400; a dead job whose id is in use
    again: 409; anything else is the server's."""
    status = 400 if isinstance(exc, ValueError) else 409 if isinstance(exc, JobInUse) else 503
    return _answer({"error": str(exc)}, status)


async def _redis_error(request: Request, exc: Exception) -> Response:
    return _answer({"error": f"Redis: {exc}"}, 503)

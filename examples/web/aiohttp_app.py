"""aiohttp with streamq: a cleanup context opens a QueueManager (``$STREAMQ_REDIS_URL``) on
start-up and closes it on clean-up; the handlers enqueue, call and look up jobs.

From the repository's root (serves http://127.0.0.1:8080, the same endpoints as
``fastapi_app``):

    python -m examples.web.aiohttp_app
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

import streamq
from examples.web import tasks

WORD_COUNTS = web.AppKey("word_counts", streamq.Queue[tasks.Document])

routes = web.RouteTableDef()


async def streamq_context(app: web.Application) -> AsyncIterator[None]:
    # Start-up runs to the yield, clean-up after it (after the server stopped taking requests):
    # running jobs finish within the manager's shutdown_grace, then its connections close.
    async with streamq.QueueManager() as manager:
        app[WORD_COUNTS] = await tasks.open_queue(manager)
        yield


async def _document(request: web.Request) -> tasks.Document:
    try:
        return msgspec.json.decode(await request.read(), type=tasks.Document)
    except msgspec.DecodeError as error:  # ValidationError too
        raise web.HTTPUnprocessableEntity(text=str(error)) from None


@routes.post("/jobs")
async def enqueue(request: web.Request) -> web.Response:
    """Enqueue and answer at once with the job's id, for ``GET /jobs/{id}``."""
    job_id = await request.app[WORD_COUNTS].enqueue(await _document(request))
    return web.json_response({"id": job_id}, status=202)


@routes.post("/count")
async def count(request: web.Request) -> web.Response:
    """Enqueue and answer with the result: the consumer that finishes the job wakes this."""
    queue = request.app[WORD_COUNTS]
    try:
        words = await queue.call(await _document(request), timeout=tasks.CALL_TIMEOUT)
    except TimeoutError:
        raise web.HTTPGatewayTimeout(text="no worker finished the job in time") from None
    except streamq.JobFailed as error:
        raise web.HTTPInternalServerError(text=f"the job failed: {error}") from None
    return web.json_response({"words": words})


@routes.get("/jobs/{job_id}")
async def job(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    info = await request.app[WORD_COUNTS].get_job(job_id)
    if info is None:  # never enqueued, or finished longer ago than the manager keeps jobs
        raise web.HTTPNotFound(text=f"no job {job_id!r}")
    return web.json_response(body=msgspec.json.encode(info))


def create_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(streamq_context)
    app.add_routes(routes)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)

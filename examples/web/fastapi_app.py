"""FastAPI with streamq: the lifespan opens a QueueManager (``$STREAMQ_REDIS_URL``), the
endpoints enqueue, call and look up jobs. The same lifespan works for Starlette.

From the repository's root:

    uvicorn examples.web.fastapi_app:app
    curl -d '{"text": "to be or not"}' -H 'content-type: application/json' localhost:8000/jobs
    curl localhost:8000/jobs/<id>
    curl -d '{"text": "to be or not"}' -H 'content-type: application/json' localhost:8000/count
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

import streamq
from examples.web import tasks


class State(TypedDict):
    word_counts: streamq.Queue[tasks.Document]


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    # Leaving the block (uvicorn's shut-down: SIGTERM, Ctrl+C) lets running jobs finish within
    # the manager's shutdown_grace, then closes its connections.
    async with streamq.QueueManager() as manager:
        yield {"word_counts": await tasks.open_queue(manager)}


app = FastAPI(lifespan=lifespan)


def word_counts(request: Request) -> streamq.Queue[tasks.Document]:
    queue: streamq.Queue[tasks.Document] = request.state.word_counts
    return queue


WordCounts = Annotated[streamq.Queue[tasks.Document], Depends(word_counts)]


class Text(BaseModel):
    text: str


@app.post("/jobs", status_code=202)
async def enqueue(body: Text, queue: WordCounts) -> dict[str, str]:
    """Enqueue and answer at once with the job's id, for ``GET /jobs/{id}``."""
    return {"id": await queue.enqueue(tasks.Document(body.text))}


@app.post("/count")
async def count(body: Text, queue: WordCounts) -> dict[str, Any]:
    """Enqueue and answer with the result: the consumer that finishes the job wakes this."""
    try:
        words = await queue.call(tasks.Document(body.text), timeout=tasks.CALL_TIMEOUT)
    except TimeoutError:
        raise HTTPException(504, "no worker finished the job in time") from None
    except streamq.JobFailed as error:
        raise HTTPException(500, f"the job failed: {error}") from None
    return {"words": words}


@app.get("/jobs/{job_id}")
async def job(job_id: str, queue: WordCounts) -> dict[str, Any]:
    info = await queue.get_job(job_id)
    if info is None:  # never enqueued, or finished longer ago than the manager keeps jobs
        raise HTTPException(404, f"no job {job_id!r}")
    result: dict[str, Any] = msgspec.to_builtins(info)
    return result

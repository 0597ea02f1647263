"""The web examples (examples/web) under real servers, answering real HTTP requests: FastAPI
under uvicorn with its worker in the app, aiohttp under its runner with a separate
``python -m streamq worker`` process consuming."""

from __future__ import annotations

import signal
import socket
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from aiohttp import web

from examples.web import aiohttp_app, fastapi_app, tasks

from .. import processes
from ..helpers import wait_until
from ..processes import Workers, exited

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

# A Redis of this module's own (the examples use fixed queue names, and the check that shut-down
# closed every connection must see no other test's), and the worker-process fixtures.
anyio_backend, redis_url, workers = processes.anyio_backend, processes.redis_url, processes.workers


def _listening_socket() -> socket.socket:
    """Bound and listening before the server starts: a request made at once waits in the
    backlog until the server accepts it, so nothing polls for the server to be up."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    return sock


async def _other_connections(redis: Any) -> set[str]:
    """The ids of the server's client connections but the test's own."""
    own = str(await redis.client_id())
    return {str(client["id"]) for client in await redis.client_list()} - {own}


async def _use_the_endpoints(client: httpx.AsyncClient, redis: Any, before: set[str]) -> None:
    # The app's manager is connected while it serves.
    assert await _other_connections(redis) - before
    # Enqueue, then poll the job until it completed.
    response = await client.post("/jobs", json={"text": "to be or not to be"})
    assert response.status_code == 202
    job_id = response.json()["id"]
    states: list[str] = []

    async def completed() -> bool:
        response = await client.get(f"/jobs/{job_id}")
        assert response.status_code == 200
        states.append(response.json()["state"])
        return bool(states[-1] == "completed")

    await wait_until(completed, timeout=10, what="the job to complete")
    info = (await client.get(f"/jobs/{job_id}")).json()
    assert info["id"] == job_id and info["result"] == 6 and info["attempts"] == 1
    assert set(states) <= {"waiting", "active", "completed"}
    # Enqueue and wait: the result is in the response.
    response = await client.post("/count", json={"text": "that is the question"})
    assert response.status_code == 200
    assert response.json() == {"words": 4}
    assert (await client.get("/jobs/no-such-job")).status_code == 404
    assert (await client.post("/jobs", json={"txet": "typo"})).status_code == 422


async def test_the_fastapi_app_under_uvicorn_runs_its_jobs_itself(
    redis_url: str, redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMQ_REDIS_URL", redis_url)
    monkeypatch.delenv("IN_APP_WORKER", raising=False)
    config = uvicorn.Config(fastapi_app.app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    with _listening_socket() as sock, anyio.fail_after(20):
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        before = await _other_connections(redis)  # other tests' (the server is shared)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            async with httpx.AsyncClient(base_url=base_url) as client:
                await _use_the_endpoints(client, redis, before)
            server.should_exit = True  # runs the lifespan's exit: the manager closes
    assert not await _other_connections(redis) - before  # the app's manager closed them all


async def test_the_aiohttp_app_with_a_worker_process(
    redis_url: str, redis: Any, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMQ_REDIS_URL", redis_url)
    monkeypatch.setenv("IN_APP_WORKER", "0")
    worker = workers.start("examples.web.tasks:count_words", "--queue", tasks.QUEUE)
    runner = web.AppRunner(aiohttp_app.create_app())
    with _listening_socket() as sock, anyio.fail_after(20):
        before = await _other_connections(redis)  # other tests' (the server is shared)
        await runner.setup()  # the cleanup context's start-up: the manager opens
        try:
            await web.SockSite(runner, sock).start()
            base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            async with httpx.AsyncClient(base_url=base_url) as client:
                await _use_the_endpoints(client, redis, before)
        finally:
            await runner.cleanup()  # its clean-up: the manager closes
        worker.send_signal(signal.SIGTERM)
        assert await exited(worker, timeout=10) == 0, workers.log(worker)
    assert not await _other_connections(redis) - before  # the app's and worker's closed

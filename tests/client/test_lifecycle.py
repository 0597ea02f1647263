"""A QueueManager lives in whatever tasks open and close it: framework start-up and clean-up
hooks, fixtures, several managers closed in any order. Real servers, real frameworks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
import uvicorn
from aiohttp import web
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import streamq

pytestmark = pytest.mark.anyio


def _double(job: streamq.Job[Any]) -> Any:
    return job.data * 2


async def _connections(redis: Any, name: str) -> int:
    """Connections the server has from clients named ``name``."""
    clients = await redis.client_list()
    return sum(1 for client in clients if client.get("name") == name)


async def test_managers_close_in_the_order_they_were_opened(
    redis_url: str, queue_name: str
) -> None:
    managers = [streamq.QueueManager(redis_url, shutdown_grace=5) for _ in range(3)]
    with anyio.fail_after(30):
        for manager in managers:
            await manager.__aenter__()
            await manager.get_queue(queue_name).consume(_double)
        queue = managers[2].get_queue(queue_name)
        assert await queue.wait_for(await queue.enqueue(21), timeout=10) == 42
        for manager in managers:  # first opened, first closed: not a stack
            await manager.__aexit__(None, None, None)
    for manager in managers:
        with pytest.raises(streamq.StreamqError, match="not connected"):
            await manager.get_queue(queue_name).enqueue(1)


async def test_a_manager_entered_in_one_task_exits_in_another(
    redis_url: str, queue_name: str
) -> None:
    manager = streamq.QueueManager(redis_url, shutdown_grace=5)
    consumers: list[streamq.Consumer[Any]] = []

    async def start() -> None:
        await manager.__aenter__()
        consumers.append(await manager.get_queue(queue_name).consume(_double))

    async def stop() -> None:
        await manager.__aexit__(None, None, None)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
        queue = manager.get_queue(queue_name)
        assert await queue.wait_for(await queue.enqueue(4), timeout=10) == 8
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop)
    assert not consumers[0].running


async def test_a_consumer_stops_from_another_task(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name)
    consumer = await queue.consume(_double)
    assert await queue.wait_for(await queue.enqueue(1), timeout=10) == 2
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer.stop, 5)
    assert not consumer.running
    job_id = await queue.enqueue(2)
    assert (await queue.stats()).waiting == 1  # nobody takes it now
    consumer = await queue.consume(_double)
    assert await queue.wait_for(job_id, timeout=10) == 4


async def test_an_error_in_the_block_comes_out_as_itself(redis_url: str, queue_name: str) -> None:
    with pytest.raises(KeyError, match="mine"):
        async with streamq.QueueManager(redis_url, shutdown_grace=5) as manager:
            await manager.get_queue(queue_name).consume(_double)
            raise KeyError("mine")


async def test_cancelling_the_block_stops_the_manager(redis_url: str, queue_name: str) -> None:
    consumers: list[streamq.Consumer[Any]] = []
    with anyio.move_on_after(0.5) as scope:
        async with streamq.QueueManager(redis_url, shutdown_grace=5) as manager:
            consumers.append(await manager.get_queue(queue_name).consume(_double))
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert not consumers[0].running


def _listening_socket() -> socket.socket:
    """Bound and listening before the server starts: a request made at once waits in the
    backlog until the server accepts it, so nothing has to poll for the server to be up."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    return sock


async def test_an_aiohttp_app_opens_and_closes_a_manager_in_its_hooks(
    redis_url: str, queue_name: str, redis: Any
) -> None:
    manager_key = web.AppKey("streamq", streamq.QueueManager)
    instance = f"aiohttp-{queue_name}"

    async def on_startup(app: web.Application) -> None:
        manager = streamq.QueueManager(redis_url, shutdown_grace=5, instance_id=instance)
        await manager.__aenter__()
        await manager.get_queue(queue_name).consume(_double)
        app[manager_key] = manager

    async def on_cleanup(app: web.Application) -> None:
        await app[manager_key].__aexit__(None, None, None)

    async def double(request: web.Request) -> web.Response:
        queue = request.app[manager_key].get_queue(queue_name)
        number = int(request.match_info["number"])
        result = await queue.wait_for(await queue.enqueue(number), timeout=10)
        return web.json_response({"result": result})

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/double/{number}", double)
    runner = web.AppRunner(app)
    sock = _listening_socket()
    port = sock.getsockname()[1]
    with anyio.fail_after(30):
        await runner.setup()  # start-up and clean-up run in the tasks aiohttp chooses
        try:
            await web.SockSite(runner, sock).start()
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/double/21") as response,
            ):
                assert response.status == 200
                assert await response.json() == {"result": 42}
        finally:
            await runner.cleanup()
    # Every connection the manager opened is closed.
    assert await _connections(redis, instance) == 0


async def test_a_starlette_lifespan_under_uvicorn_opens_and_closes_a_manager(
    redis_url: str, queue_name: str
) -> None:
    handled: list[int] = []

    def record(job: streamq.Job[int]) -> int:
        handled.append(job.data)
        return job.data + 1

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with streamq.QueueManager(redis_url, shutdown_grace=5) as manager:
            await manager.get_queue(queue_name, int).consume(record)
            yield {"streamq": manager}

    async def add_one(request: Request) -> JSONResponse:
        manager: streamq.QueueManager = request.state.streamq
        queue = manager.get_queue(queue_name, int)
        job_id = await queue.enqueue(int(request.path_params["number"]))
        return JSONResponse({"result": await queue.wait_for(job_id, timeout=10)})

    app = Starlette(routes=[Route("/add-one/{number}", add_one)], lifespan=lifespan)
    sock = _listening_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/add-one/41")
            server.should_exit = True
    assert response.status_code == 200
    assert response.json() == {"result": 42}
    assert handled == [41]


async def test_nothing_is_left_pending_after_a_manager_closes(
    redis_url: str, queue_name: str
) -> None:
    before = {task for task in asyncio.all_tasks() if not task.done()}
    async with streamq.QueueManager(redis_url, shutdown_grace=5) as manager:
        queue = manager.get_queue(queue_name)
        await queue.consume(_double)
        await queue.schedule_recurring("tick", 1, interval_seconds=60)
        assert await queue.wait_for(await queue.enqueue(3), timeout=10) == 6
    gc.collect()
    after = {task for task in asyncio.all_tasks() if not task.done()}
    assert after - before == set()

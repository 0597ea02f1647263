"""Serving the dashboard: a listening socket (``--port 0``: a free one), the manager, and
uvicorn in the same event loop, until SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import anyio
import anyio.abc
import uvicorn

from ...client.manager import QueueManager
from ...errors import InvalidArgument
from .app import create_app
from .guard import is_loopback, loopback_names

__all__ = ("listen", "serve")


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: one the system picks)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InvalidArgument(f"cannot listen on {host!r}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise InvalidArgument(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (pick another --port, or"
            " --port 0 for a free one)"
        ) from None
    sock.setblocking(False)
    return sock


def address_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class _Server(uvicorn.Server):
    """uvicorn's server, leaving the signals to :func:`serve` (uvicorn would raise them again
    once it stopped, and end the process before the manager closes)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    url: str | None,
    prefix: str,
    host: str,
    port: int,
    *,
    allow_actions: bool = False,
    ready: Callable[[str], object] = print,
) -> None:
    """Serve the dashboard of the queues at ``url`` on ``host:port``; ``ready`` gets its
    address once it listens. Returns after SIGINT or SIGTERM, once open requests finished."""
    async with QueueManager(url, prefix=prefix) as qm:
        await qm.queues()  # the registry is readable (ACL) before anyone opens the page
        with listen(host, port) as sock:
            app = create_app(
                qm,
                allow_actions=allow_actions,
                allowed_hosts=loopback_names(host) if is_loopback(host) else None,
            )
            config = uvicorn.Config(
                app, lifespan="off", log_level="warning", proxy_headers=False, server_header=False
            )
            server = _Server(config)
            async with anyio.create_task_group() as tasks:

                async def stop_on_signal(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        task_status.started()
                        async for _ in signals:
                            server.should_exit = True
                            return

                await tasks.start(stop_on_signal)
                ready(address_url(sock))
                await server.serve(sockets=[sock])
                tasks.cancel_scope.cancel()

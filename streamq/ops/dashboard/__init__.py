"""``python -m streamq dashboard``: a small web dashboard (Starlette served by uvicorn, the
``streamq[dashboard]`` extra) over the inspection API: the queues' counts refreshing live, a
queue's waiting, delayed, retrying and dead jobs, a dead job's error, and retry and purge of the
dead letters when started with ``--allow-actions``.

Modules: :mod:`.app` (the routes and the JSON API), :mod:`.guard` (Host, CSRF and the
Content-Security-Policy), :mod:`.server` (the socket, uvicorn and signals), ``static/`` (the
page: one HTML, one script, one style sheet; no build step).
"""

from __future__ import annotations

from .app import create_app
from .server import serve

__all__ = ("create_app", "serve")

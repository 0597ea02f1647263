"""``python -m streamq dashboard``: a small web dashboard (Starlette served by uvicorn, the
``streamq[dashboard]`` extra) over the inspection API: the queues' counts refreshing live, a
queue's waiting, delayed, retrying, active and dead jobs, a job's progress and log, a dead job's
error, and (started with ``--allow-actions``) cancelling jobs, pausing and resuming queues,
retrying and purging dead letters.

Modules: :mod:`.app` (the routes and the JSON API), :mod:`.guard` (Host, CSRF and the
Content-Security-Policy), :mod:`.server` (the socket, uvicorn and signals), ``static/`` (the
page: one HTML, one script, one style sheet; no build step).
"""

from __future__ import annotations

from .app import create_app
from .server import serve

__all__ = ("create_app", "serve")

"""The event loop for streamq's own commands: uvloop when it is installed, else asyncio's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ("backend_options", "run")

T = TypeVar("T")


def backend_options(uvloop: bool = True) -> dict[str, Any]:
    """anyio's options for the asyncio backend: uvloop if wanted and installed."""
    if not uvloop:
        return {}
    try:
        import uvloop as _  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    return anyio.run(function, *args, backend_options=backend_options())

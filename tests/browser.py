"""The dashboard in a subprocess and a headless Chromium, for tests/test_dashboard.py and
docs/make_screenshot.py. The browser is Debian's /usr/bin/chromium (`make chromium`): nothing
is downloaded."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from playwright.async_api import Browser, async_playwright

__all__ = ("CHROMIUM", "chromium", "dashboard")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.asynccontextmanager
async def dashboard(url: str, prefix: str, *args: str) -> AsyncIterator[str]:
    """``python -m streamq dashboard --port 0`` in a subprocess: yields the address it printed;
    stopped with SIGTERM, and it must exit cleanly."""
    command = [
        sys.executable,
        "-m",
        "streamq",
        "dashboard",
        "--port",
        "0",
        "--url",
        url,
        "--prefix",
        prefix,
        *args,
    ]
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        printed = ""
        with anyio.fail_after(15):
            async for chunk in TextReceiveStream(process.stdout):
                printed += chunk
                if "\n" in printed:
                    break
        if not printed.startswith("streamq dashboard on http://127.0.0.1:"):
            raise AssertionError(f"the dashboard printed {printed!r}: {await _errors(process)}")
        try:
            yield printed.split(" on ")[1].split()[0]
        finally:
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                code = await process.wait()
            assert code == 0, f"exit status {code}: {await _errors(process)}"


async def _errors(process: Process) -> str:
    """What the process wrote on stderr (it has exited, or does so within 10 s)."""
    assert process.stderr is not None
    with anyio.move_on_after(10):
        return "".join([chunk async for chunk in TextReceiveStream(process.stderr)])
    return "(stderr still open after 10 s)"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(
            f"no browser at {CHROMIUM}: run `make chromium` (Debian's chromium and"
            " chromium-driver; Playwright's own browser downloads are not used)"
        )
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()

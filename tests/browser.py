"""The dashboard in a subprocess and a headless Chromium, for tests/test_dashboard.py and
docs/make_screenshot.py. The browser is Debian's /usr/bin/chromium (`make chromium`): nothing
is downloaded."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import AsyncIterator

import anyio
from anyio.streams.text import TextReceiveStream
from playwright.async_api import Browser, async_playwright

__all__ = ("CHROMIUM", "chromium", "dashboard")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@contextlib.asynccontextmanager
async def dashboard(url: str, prefix: str, *args: str) -> AsyncIterator[str]:
    """``python -m streamq dashboard --port 0`` in a subprocess: yields the address it printed;
    stopped with SIGTERM, and it must exit cleanly."""
    command = [sys.executable, "-m", "streamq", "dashboard", "--port", "0", "--url", url,
               "--prefix", prefix, *args]  # fmt: skip
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        printed = ""
        with anyio.fail_after(15):
            async for chunk in TextReceiveStream(process.stdout):
                printed += chunk
                if "\n" in printed:
                    break
        assert printed.startswith("streamq dashboard on http://127.0.0.1:"), printed
        try:
            yield printed.split(" on ")[1].split()[0]
        finally:
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                assert await process.wait() == 0


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()

"""``python -m streamq dashboard`` against a real Redis: the JSON API through httpx (counts,
unknown queues, read-only refusal, CSRF and DNS-rebinding refusal), the command's errors, and
the page end to end in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from playwright.async_api import expect

import streamq
from streamq.ops.cli import main
from streamq.ops.dashboard import create_app
from streamq.ops.dashboard.guard import ACTION_HEADER, loopback_names
from streamq.testing.localserver import LocalRedis, free_port

from ..browser import chromium, dashboard

pytestmark = [pytest.mark.timeout(30)]

#: What the page sends with a retry or a purge.
ACTION = {ACTION_HEADER: "1"}
XSS_ERROR = '<img src=x onerror="window.__xss = 1">'
XSS_DATA = {"to": "<script>window.__xss = 2</script>"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def qm(server: LocalRedis, prefix: str) -> AsyncIterator[streamq.QueueManager]:
    async with streamq.QueueManager(server.url, prefix=prefix, shutdown_grace=5) as manager:
        yield manager


async def fill(qm: streamq.QueueManager) -> streamq.Queue[Any]:
    """Queue ``mail``: dead letters ``x@bad`` (its error and data look like HTML) and
    ``y@bad``, one waiting job and one delayed."""
    queue = qm.get_queue("mail")

    async def fail(job: streamq.Job[Any]) -> None:
        raise ValueError(XSS_ERROR if job.id == "x@bad" else f"bad address {job.data['to']}")

    consumer = await queue.consume(fail, max_retries=0)
    for job_id, data in (("x@bad", XSS_DATA), ("y@bad", {"to": "y@bad"})):
        await queue.enqueue(data, job_id=job_id)
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for(job_id, timeout=10)
    await consumer.stop()
    await queue.enqueue({"to": "ada@example.com"}, job_id="waiting-1")
    await queue.enqueue({"to": "bob@example.com"}, job_id="delayed-1", start_delay=600)
    return queue


@contextlib.asynccontextmanager
async def client(
    qm: streamq.QueueManager, *, allow_actions: bool = False, host: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process, as served on 127.0.0.1:8080 (so answering loopback Host names)."""
    app = create_app(qm, allow_actions=allow_actions, allowed_hosts=loopback_names(host))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
        yield c


@pytest.mark.anyio
async def test_counts_jobs_and_a_dead_letter(qm: streamq.QueueManager) -> None:
    await fill(qm)
    async with client(qm) as c:
        page = (await c.get("/api/queues")).json()
        assert page["allow_actions"] is False
        assert page["prefix"] == qm.prefix
        [mail] = page["queues"]
        assert mail["name"] == "mail"
        counts = {k: mail["stats"][k] for k in ("waiting", "delayed", "dead", "active")}
        assert counts == {"waiting": 1, "delayed": 1, "dead": 2, "active": 0}

        queue = (await c.get("/api/queue", params={"name": "mail"})).json()
        assert [j["id"] for j in queue["waiting"]] == ["waiting-1"]
        assert [j["id"] for j in queue["delayed"]] == ["delayed-1"]
        assert queue["retrying"] == []
        assert {d["job_id"] for d in queue["dead"]} == {"x@bad", "y@bad"}

        letter = await c.get("/api/dead-letter", params={"queue": "mail", "job_id": "x@bad"})
        assert letter.status_code == 200
        assert XSS_ERROR in letter.json()["error"]
        assert letter.json()["data"] == XSS_DATA
        assert letter.headers["content-type"] == "application/json"


@pytest.mark.anyio
async def test_unknown_queue_or_job_is_404_and_bad_input_400(qm: streamq.QueueManager) -> None:
    await fill(qm)
    async with client(qm, allow_actions=True) as c:
        for response in (
            await c.get("/api/queue", params={"name": "nope"}),
            await c.get("/api/dead-letter", params={"queue": "nope", "job_id": "x@bad"}),
            await c.get("/api/dead-letter", params={"queue": "mail", "job_id": "gone"}),
            await c.post("/api/retry-dead", json={"queue": "nope"}, headers=ACTION),
            await c.post(
                "/api/retry-dead", json={"queue": "mail", "job_id": "gone"}, headers=ACTION
            ),
            await c.post("/api/purge-dead", json={"queue": "nope"}, headers=ACTION),
        ):
            assert response.status_code == 404, response.text
            assert "nope" in response.json()["error"] or "gone" in response.json()["error"]
        for response in (
            await c.get("/api/queue"),
            await c.get("/api/queue", params={"name": "mail", "limit": "many"}),
            await c.get("/api/queue", params={"name": "mail", "limit": "0"}),
            await c.post("/api/purge-dead", content=b"{", headers=ACTION | _json_type()),
            await c.post("/api/purge-dead", json={"queue": "mail", "all": True}, headers=ACTION),
        ):
            assert response.status_code == 400, response.text
            assert response.json()["error"]
        assert (await c.get("/api/nothing-here")).status_code == 404
    assert (await qm.get_queue("mail").stats()).dead == 2


@pytest.mark.anyio
async def test_read_only_refuses_retry_and_purge(qm: streamq.QueueManager) -> None:
    queue = await fill(qm)
    async with client(qm) as c:
        for path, body in (
            ("/api/retry-dead", {"queue": "mail", "job_id": "x@bad"}),
            ("/api/retry-dead", {"queue": "mail"}),
            ("/api/purge-dead", {"queue": "mail"}),
        ):
            response = await c.post(path, json=body, headers=ACTION)
            assert response.status_code == 403
            assert "--allow-actions" in response.json()["error"]
    assert (await queue.stats()).dead == 2


@pytest.mark.anyio
async def test_cross_site_requests_are_refused(qm: streamq.QueueManager) -> None:
    queue = await fill(qm)
    body = json.dumps({"queue": "mail"}).encode()
    own = "http://127.0.0.1:8080"
    async with client(qm, allow_actions=True) as c:
        for headers in (
            _json_type(),  # no action header: what a form or a simple fetch of another site sends
            ACTION | {"content-type": "text/plain"},
            ACTION | {"content-type": "application/x-www-form-urlencoded"},
            ACTION | _json_type() | {"origin": "http://evil.example"},
            ACTION | _json_type() | {"origin": "null"},
            ACTION | _json_type() | {"origin": own, "sec-fetch-site": "cross-site"},
            ACTION | _json_type() | {"origin": own, "sec-fetch-site": "same-site"},
        ):
            response = await c.post("/api/purge-dead", content=body, headers=headers)
            assert response.status_code == 403, headers
        assert (await queue.stats()).dead == 2
        cross = await c.get("/api/queues", headers={"sec-fetch-site": "cross-site"})
        assert cross.status_code == 403
        assert (await c.get("/api/purge-dead")).status_code == 405  # changes are POST only

        same = ACTION | _json_type() | {"origin": own, "sec-fetch-site": "same-origin"}
        retried = await c.post(
            "/api/retry-dead", json={"queue": "mail", "job_id": "y@bad"}, headers=same
        )
        assert retried.json() == {"queue": "mail", "retried": 1}
        purged = await c.post("/api/purge-dead", content=body, headers=same)
        assert purged.json() == {"queue": "mail", "purged": 1}
    assert (await queue.stats()).dead == 0
    info = await queue.get_job("y@bad")
    assert info is not None and info.state == "waiting"


@pytest.mark.anyio
async def test_other_host_names_are_refused_on_loopback(qm: streamq.QueueManager) -> None:
    """A page of evil.example whose name a DNS rebinding pointed at 127.0.0.1 reads nothing."""
    await fill(qm)
    async with client(qm) as c:
        for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example:8080"):
            assert (await c.get("/api/queues", headers={"host": host})).status_code == 403
            assert (await c.get("/", headers={"host": host})).status_code == 403
        for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST"):
            assert (await c.get("/api/queues", headers={"host": host})).status_code == 200
    app = create_app(qm, allowed_hosts=None)  # bound beyond loopback: the user named the host
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dash.internal:8080"
    ) as c:
        assert (await c.get("/api/queues")).status_code == 200


@pytest.mark.anyio
async def test_the_page_is_static_and_locked_down(qm: streamq.QueueManager) -> None:
    async with client(qm) as c:
        page = await c.get("/")
        assert page.status_code == 200
        assert '<script src="/static/dashboard.js"' in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        script = await c.get("/static/dashboard.js")
        assert script.status_code == 200
        assert script.headers["x-content-type-options"] == "nosniff"
        # Job data is set as text, never parsed as HTML.
        assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
        assert (await c.get("/static/dashboard.css")).status_code == 200


def test_a_wrong_url_is_one_line(prefix: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    result = CliRunner().invoke(main, ["dashboard", "--port", "0", "--url", url])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ") and "127.0.0.1" in line


def test_a_port_in_use_is_one_line(server: LocalRedis, prefix: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main, ["dashboard", "--port", str(port), "--url", server.url, "--prefix", prefix]
        )
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: cannot listen on 127.0.0.1:") and "--port 0" in line


def test_without_the_extra_it_says_what_to_install() -> None:
    hide = "import sys; sys.modules['starlette'] = None; from streamq.ops.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", hide, "dashboard", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "Error: the dashboard needs Starlette and uvicorn: pip install 'streamq[dashboard]'"
    ]


@pytest.mark.anyio
async def test_in_chromium_retry_purge_and_a_screenshot(
    server: LocalRedis, prefix: str, qm: streamq.QueueManager
) -> None:
    queue = await fill(qm)
    async with dashboard(server.url, prefix, "--allow-actions") as address, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(address)
        await expect(page.locator("#queues tr[data-queue='mail']")).to_contain_text("2")
        await page.get_by_role("link", name="mail", exact=True).click()
        await page.get_by_role("tab", name="Dead").click()
        dead = page.locator("#jobs tr[data-job]")
        await expect(dead).to_have_count(2)

        # Markup in a job's error and data shows as text and never runs.
        row = page.locator("#jobs tr[data-job='x@bad']")
        await expect(row).to_contain_text(XSS_ERROR)
        await expect(row).to_contain_text(XSS_DATA["to"])
        await row.click()
        await expect(page.locator("#detail-error")).to_have_text(f"ValueError: {XSS_ERROR}")
        assert await page.locator("main img, main script").count() == 0
        assert await page.evaluate("window.__xss") is None

        # Retry: the job is waiting again, in Redis.
        await page.locator("button[data-retry='y@bad']").click()
        await expect(dead).to_have_count(1)
        info = await queue.get_job("y@bad")
        assert info is not None and info.state == "waiting"

        # Purge (the confirm dialog accepted): no dead letters left.
        await page.get_by_role("button", name="Purge all").click()
        await expect(page.locator("#no-jobs")).to_have_text("No dead jobs.")
        assert (await queue.stats()).dead == 0

        png = await page.screenshot(full_page=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 1200 and height >= 800
    assert len(png) > 20_000


@pytest.mark.anyio
async def test_in_chromium_read_only_has_no_buttons(
    server: LocalRedis, prefix: str, qm: streamq.QueueManager
) -> None:
    await fill(qm)
    async with dashboard(server.url, prefix) as address, chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{address}#queue=mail&tab=dead&job=y%40bad")
        await expect(page.locator("#detail-error")).to_have_text("ValueError: bad address y@bad")
        await expect(page.locator("#mode")).to_have_text("read-only")
        await expect(page.locator("#jobs tr[data-job]")).to_have_count(2)
        assert await page.locator("button[data-retry]").count() == 0
        await expect(page.locator("#dead-actions")).to_be_hidden()
        await expect(page.locator("#detail-retry")).to_be_hidden()


def _json_type() -> dict[str, str]:
    return {"content-type": "application/json"}

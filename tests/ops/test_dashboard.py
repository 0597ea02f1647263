"""``python -m streamq dashboard`` against a real Redis: the JSON API through httpx (counts,
a job's progress and log, cancel, pause and resume, unknown queues, read-only refusal, CSRF and
DNS-rebinding refusal), the command's errors, and the page end to end in headless Chromium
(Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner
from playwright.async_api import expect

import streamq
from streamq.ops.cli import main
from streamq.ops.dashboard import create_app
from streamq.ops.dashboard.app import CHILDREN_LISTED
from streamq.ops.dashboard.guard import ACTION_HEADER, loopback_names
from streamq.testing.localserver import LocalRedis, free_port

from ..browser import chromium, dashboard
from ..helpers import wait_until

pytestmark = [pytest.mark.timeout(30)]

#: What the page sends with a retry, a purge, a cancel, a pause or a resume.
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


class LongJobs:
    """A handler whose jobs set their data as progress and log two lines (one looks like
    HTML), then run until ``release`` is set or they are cancelled. ``started`` is set once a
    job got that far, ``stopped`` once its handler ended in any way."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.stopped = anyio.Event()

    async def handle(self, job: streamq.Job[Any]) -> str:
        try:
            await job.set_progress(job.data)
            await job.log(XSS_ERROR)
            await job.log(f"attempt {job.attempt}")
            self.started.set()
            await self.release.wait()
            return "done"
        finally:
            self.stopped.set()

    async def run(self, queue: streamq.Queue[Any], data: Any, job_id: str) -> None:
        """Consume ``queue`` and enqueue a job, returning once its handler runs."""
        await queue.consume(self.handle, max_retries=3, backoff=0.01)
        await queue.enqueue(data, job_id=job_id)
        with anyio.fail_after(10):
            await self.started.wait()


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
            await c.get("/api/job", params={"queue": "nope", "id": "waiting-1"}),
            await c.get("/api/job", params={"queue": "mail", "id": "gone"}),
            await c.post("/api/cancel", json={"queue": "nope", "job_id": "x"}, headers=ACTION),
            await c.post("/api/pause", json={"queue": "nope"}, headers=ACTION),
            await c.post("/api/resume", json={"queue": "nope"}, headers=ACTION),
        ):
            assert response.status_code == 404, response.text
            assert "nope" in response.json()["error"] or "gone" in response.json()["error"]
        for response in (
            await c.get("/api/queue"),
            await c.get("/api/queue", params={"name": "mail", "limit": "many"}),
            await c.get("/api/queue", params={"name": "mail", "limit": "0"}),
            await c.post("/api/purge-dead", content=b"{", headers=ACTION | _json_type()),
            await c.post("/api/purge-dead", json={"queue": "mail", "all": True}, headers=ACTION),
            await c.get("/api/job", params={"queue": "mail"}),
            await c.get("/api/job", params={"id": "waiting-1"}),
            await c.get("/api/job", params={"queue": "mail", "id": "j" * 2000}),
            await c.post("/api/cancel", json={"queue": "mail"}, headers=ACTION),
            await c.post("/api/cancel", json={"queue": "mail", "job_id": ""}, headers=ACTION),
            await c.post("/api/pause", json={"queue": "mail", "job_id": "x"}, headers=ACTION),
        ):
            assert response.status_code == 400, response.text
            assert response.json()["error"]
        assert (await c.get("/api/nothing-here")).status_code == 404
    stats = await qm.get_queue("mail").stats()
    assert stats.dead == 2 and stats.waiting == 1 and not stats.paused


@pytest.mark.anyio
async def test_read_only_refuses_every_action(qm: streamq.QueueManager) -> None:
    queue = await fill(qm)
    async with client(qm) as c:
        for path, body in (
            ("/api/retry-dead", {"queue": "mail", "job_id": "x@bad"}),
            ("/api/retry-dead", {"queue": "mail"}),
            ("/api/purge-dead", {"queue": "mail"}),
            ("/api/cancel", {"queue": "mail", "job_id": "waiting-1"}),
            ("/api/pause", {"queue": "mail"}),
            ("/api/resume", {"queue": "mail"}),
        ):
            response = await c.post(path, json=body, headers=ACTION)
            assert response.status_code == 403, path
            assert "--allow-actions" in response.json()["error"]
            assert "cancel" in response.json()["error"]
        # Reading a job is not an action.
        assert (await c.get("/api/job", params={"queue": "mail", "id": "waiting-1"})).is_success
    stats = await queue.stats()
    assert stats.dead == 2 and not stats.paused
    info = await queue.get_job("waiting-1")
    assert info is not None and info.state == "waiting"
    await queue.pause()
    async with client(qm) as c:
        response = await c.post("/api/resume", json={"queue": "mail"}, headers=ACTION)
        assert response.status_code == 403
    assert (await queue.stats()).paused


@pytest.mark.anyio
async def test_a_job_with_its_progress_and_log(qm: streamq.QueueManager) -> None:
    queue = qm.get_queue("mail")
    jobs = LongJobs()
    await jobs.run(queue, {"done": 2, "of": 3}, "import-1")
    async with client(qm) as c:
        response = await c.get("/api/job", params={"queue": "mail", "id": "import-1"})
        assert response.status_code == 200, response.text
        running = response.json()
        assert running["id"] == "import-1"
        assert running["state"] == "active" and running["attempts"] == 1
        assert running["progress"] == {"done": 2, "of": 3}
        assert running["logs"] == [XSS_ERROR, "attempt 1"]
        assert running["result"] is None and running["finished_at"] is None

        page = (await c.get("/api/queue", params={"name": "mail"})).json()
        assert [(j["id"], j["state"]) for j in page["active"]] == [("import-1", "active")]
        assert page["queue"]["stats"]["active"] == 1

        jobs.release.set()
        assert await queue.wait_for("import-1", timeout=10) == "done"
        done = (await c.get("/api/job", params={"queue": "mail", "id": "import-1"})).json()
        assert done["state"] == "completed" and done["result"] == "done"
        assert done["finished_at"] is not None
        assert done["logs"] == running["logs"], "the log stays with the finished job"
        assert (await c.get("/api/queue", params={"name": "mail"})).json()["active"] == []


@pytest.mark.anyio
async def test_a_flow_step_names_its_parent_and_its_first_1000_children(
    qm: streamq.QueueManager,
) -> None:
    fan_in = [streamq.Step("fetch", n, job_id=f"fetch-{n}") for n in range(10_000)]
    root = await qm.enqueue_flow(streamq.Step("reports", "sum", children=fan_in))
    async with client(qm) as c:
        parent = (await c.get("/api/job", params={"queue": "reports", "id": root})).json()
        assert parent["state"] == "waiting_children" and parent["parent"] is None
        assert parent["children_total"] == 10_000 and CHILDREN_LISTED == 1000
        listed = [{"queue": "fetch", "id": f"fetch-{n}"} for n in range(1000)]
        assert parent["children"] == listed
        child = (await c.get("/api/job", params=listed[-1])).json()  # its queue and id
        assert child["state"] == "waiting" and child["parent"] == {"queue": "reports", "id": root}
        assert child["children"] == [] and child["children_total"] == 0


@pytest.mark.anyio
async def test_cancel_stops_a_running_handler(qm: streamq.QueueManager) -> None:
    queue = qm.get_queue("mail")
    jobs = LongJobs()
    await jobs.run(queue, 0, "import-1")
    async with client(qm, allow_actions=True) as c:
        body = {"queue": "mail", "job_id": "import-1"}
        response = await c.post("/api/cancel", json=body, headers=ACTION)
        assert response.status_code == 200, response.text
        assert response.json() == {"queue": "mail", "job_id": "import-1", "cancelled": True}
        with anyio.fail_after(5):
            await jobs.stopped.wait()
        assert not jobs.release.is_set()
        with pytest.raises(streamq.JobCancelled):
            await queue.wait_for("import-1", timeout=5)
        info = await queue.get_job("import-1")
        assert info is not None and info.state == "cancelled"
        shown = (await c.get("/api/job", params={"queue": "mail", "id": "import-1"})).json()
        assert shown["state"] == "cancelled"

        again = await c.post("/api/cancel", json=body, headers=ACTION)
        assert again.json() == {"queue": "mail", "job_id": "import-1", "cancelled": False}
        unknown = {"queue": "mail", "job_id": "no-such-job"}
        response = await c.post("/api/cancel", json=unknown, headers=ACTION)
        assert response.json()["cancelled"] is False
    assert await queue.dead_letters() == []


@pytest.mark.anyio
async def test_pause_and_resume(qm: streamq.QueueManager) -> None:
    queue = await fill(qm)
    body = {"queue": "mail"}
    async with client(qm, allow_actions=True) as c:
        paused = await c.post("/api/pause", json=body, headers=ACTION)
        assert paused.status_code == 200, paused.text
        assert paused.json() == {"queue": "mail", "paused": True, "changed": True}
        assert (await queue.stats()).paused
        [listed] = (await c.get("/api/queues")).json()["queues"]
        assert listed["stats"]["paused"] is True
        page = (await c.get("/api/queue", params={"name": "mail"})).json()
        assert page["queue"]["stats"]["paused"] is True
        again = await c.post("/api/pause", json=body, headers=ACTION)
        assert again.json() == {"queue": "mail", "paused": True, "changed": False}

        resumed = await c.post("/api/resume", json=body, headers=ACTION)
        assert resumed.json() == {"queue": "mail", "paused": False, "changed": True}
        assert not (await queue.stats()).paused
        again = await c.post("/api/resume", json=body, headers=ACTION)
        assert again.json() == {"queue": "mail", "paused": False, "changed": False}
        [listed] = (await c.get("/api/queues")).json()["queues"]
        assert listed["stats"]["paused"] is False


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
        await expect(page.locator("button[data-cancel='waiting-1']")).to_be_visible()
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

        # Purge (the confirm dialog accepted): no dead letters left. #no-jobs holds "No dead
        # jobs." (hidden) on the dead tab all along: wait for the rows to go and it to show.
        await page.get_by_role("button", name="Purge all").click()
        await expect(dead).to_have_count(0)
        await expect(page.locator("#no-jobs")).to_be_visible()
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
        await expect(page.locator("#queue-actions")).to_be_hidden()

        await page.get_by_role("tab", name="Waiting").click()
        await expect(page.locator("#jobs tr[data-job='waiting-1']")).to_be_visible()
        assert await page.locator("button[data-cancel]").count() == 0
        await page.get_by_role("link", name="waiting-1", exact=True).click()
        await expect(page.locator("#job-state")).to_have_text("waiting")
        await expect(page.locator("#job-cancel")).to_be_hidden()


@pytest.mark.anyio
async def test_in_chromium_pause_a_job_view_and_cancel(
    server: LocalRedis, prefix: str, qm: streamq.QueueManager
) -> None:
    queue = qm.get_queue("mail")
    jobs = LongJobs()
    await jobs.run(queue, 40, "import-1")
    async with dashboard(server.url, prefix, "--allow-actions") as address, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(f"{address}#queue=mail&tab=active")
        listed = page.locator("#queues tr[data-queue='mail']")
        await expect(listed).not_to_contain_text("paused")
        await expect(page.locator("#queue-paused")).to_be_hidden()

        # Pause: the queue list and the queue view say so, and the button turns to Resume.
        await page.get_by_role("button", name="Pause", exact=True).click()
        await expect(listed).to_contain_text("paused")
        await expect(page.locator("#queue-paused")).to_be_visible()
        await expect(page.locator("#paused-note")).to_be_visible()
        await expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
        assert (await queue.stats()).paused

        # A job not due yet has a Cancel button too. (Not a waiting one: a consumer's read in
        # flight when the pause is sent may still take it, and then it is listed as active.)
        await queue.enqueue({"to": "ada@example.com"}, job_id="later-1", start_delay=600)
        await page.get_by_role("tab", name="Delayed").click()
        await expect(page.locator("button[data-cancel='later-1']")).to_be_visible()

        # The running job's view: state, attempts, progress, and its log lines as text.
        await page.get_by_role("tab", name="Active").click()
        active = page.locator("#jobs tr[data-job='import-1']")
        await expect(active).to_contain_text("import-1")
        await page.get_by_role("link", name="import-1", exact=True).click()
        await expect(page.locator("#job-state")).to_have_text("active")
        await expect(page.locator("#job-attempts")).to_have_text("1")
        await expect(page.locator("#job-progress")).to_have_text("40")
        await expect(page.locator("#job-progress-bar")).to_have_js_property("value", 40)
        await expect(page.locator("#job-logs li")).to_have_text([XSS_ERROR, "attempt 1"])
        assert await page.locator("main img").count() == 0
        assert await page.evaluate("window.__xss") is None

        # Cancel on the active job's row (the confirm dialog accepted): its handler stops.
        await page.locator("button[data-cancel='import-1']").click()
        with anyio.fail_after(10):
            await jobs.stopped.wait()
        await wait_until(_state_is(queue, "import-1", "cancelled"), what="the job to be cancelled")
        await expect(page.locator("#job-state")).to_have_text("cancelled")
        await expect(page.locator("#job-cancel")).to_be_hidden()
        await expect(active).to_have_count(0)

        # The delayed job's Cancel: it leaves the queue.
        await page.get_by_role("tab", name="Delayed").click()
        await page.locator("button[data-cancel='later-1']").click()
        await expect(page.locator("#jobs tr[data-job]")).to_have_count(0)
        await expect(page.locator("#no-jobs")).to_be_visible()
        await expect(page.locator("#no-jobs")).to_have_text("No delayed jobs.")
        await wait_until(_state_is(queue, "later-1", "cancelled"), what="later-1 cancelled")

        await page.get_by_role("button", name="Resume", exact=True).click()
        await expect(listed).not_to_contain_text("paused")
        assert not (await queue.stats()).paused
    assert not jobs.release.is_set()


@pytest.mark.anyio
async def test_in_chromium_a_flow_step_links_its_parent_and_children(
    server: LocalRedis, prefix: str, qm: streamq.QueueManager
) -> None:
    fetch = [streamq.Step("fetch", n, job_id=f"fetch-{n}") for n in (1, 2)]
    await qm.enqueue_flow(streamq.Step("reports", "sum", job_id="monthly", children=fetch))
    parts = [streamq.Step("parts", n) for n in range(1500)]
    big = await qm.enqueue_flow(streamq.Step("bulk", 0, children=parts))
    async with dashboard(server.url, prefix) as address, chromium() as browser:
        page = await browser.new_page()
        # No consumer yet: the parent waits for its two children, waiting on another queue.
        await page.goto(f"{address}#queue=reports&tab=waiting&job=monthly")
        job_state = page.locator("#job-state")
        await expect(job_state).to_have_text("waiting_children")
        await expect(job_state).to_have_class("tag waiting_children")
        await expect(page.locator("#job-parent-label")).to_be_hidden()
        await expect(page.locator("#job-children-label")).to_have_text("children (2)")
        children = page.locator("#job-children li[data-queue='fetch'] a")
        await expect(children).to_have_text(["fetch-1", "fetch-2"])

        # A child's link opens its view (on its own queue), whose parent links back.
        await children.nth(1).click()
        await expect(page.locator("#queue-name")).to_have_text("fetch")
        await expect(page.locator("#job-id")).to_have_text("fetch-2")
        await expect(job_state).to_have_text("waiting")
        await expect(page.locator("#job-parent")).to_have_text("reports monthly")
        await page.locator("#job-parent a").click()
        await expect(page.locator("#job-id")).to_have_text("monthly")
        await expect(page.locator("#queue-name")).to_have_text("reports")

        # Its children, then it, run: the view follows, the links stay.
        for name in ("fetch", "reports"):
            await qm.get_queue(name).consume(lambda job: job.data)
        await expect(job_state).to_have_text("completed", timeout=10_000)
        await expect(children).to_have_text(["fetch-1", "fetch-2"])

        # A fan-in of 1,500: the first 1,000 are listed, the rest counted.
        await page.goto(f"{address}#queue=bulk&tab=waiting&job={big}")
        await expect(page.locator("#job-children li")).to_have_count(1000)
        more = page.locator("#job-children-more")
        await expect(more).to_have_text("… and 500 more (the first 1,000 are listed)")


def _state_is(queue: streamq.Queue[Any], job_id: str, state: str) -> Any:
    async def check() -> bool:
        info = await queue.get_job(job_id)
        return info is not None and info.state == state

    return check


def _json_type() -> dict[str, str]:
    return {"content-type": "application/json"}


async def _run_mixed(qm: streamq.QueueManager) -> streamq.Queue[Any]:
    """Queue ``mixed``: 10 jobs that complete, 3 that fail once then complete, 2 dead letters
    (13 completed, 5 failed attempts, 2 dead), all counted in its history."""
    queue = qm.get_queue("mixed")

    async def handler(job: streamq.Job[Any]) -> str:
        if job.data == "flaky" and job.attempt == 1:
            raise RuntimeError("first attempt fails")
        if job.data == "doomed":
            raise streamq.Unrecoverable("no way")
        return "ok"

    consumer = await queue.consume(handler, max_retries=1, backoff=0)
    await queue.enqueue_many(["ok"] * 10 + ["flaky"] * 3 + ["doomed"] * 2)

    async def counted() -> bool:
        points = await queue.history(5)
        return (sum(p.completed for p in points), sum(p.started for p in points)) == (13, 15)

    await wait_until(counted, what="the history to count every job")
    await consumer.stop()
    return queue


@pytest.mark.anyio
async def test_history_of_every_queue_or_one(qm: streamq.QueueManager) -> None:
    await _run_mixed(qm)
    await qm.get_queue("idle").enqueue("x")
    async with client(qm) as c:
        page = (await c.get("/api/history")).json()
        assert page["minutes"] == 60
        assert [q["name"] for q in page["queues"]] == ["idle", "mixed"]
        idle, mixed = (q["history"] for q in page["queues"])
        assert len(idle) == len(mixed) == 60
        assert sum(p["completed"] for p in idle) == 0
        assert [sum(p[k] for p in mixed) for k in ("completed", "failed", "dead")] == [13, 5, 2]
        assert all(p["minute"] % 60 == 0 for p in mixed)
        one = (await c.get("/api/history", params={"queue": "mixed", "minutes": "3"})).json()
        [only] = one["queues"]
        assert only["name"] == "mixed" and len(only["history"]) == 3
        for params, status in (
            ({"minutes": "0"}, 400),
            ({"minutes": "121"}, 400),
            ({"minutes": "x"}, 400),
            ({"queue": "nope"}, 404),
            ({"queue": ""}, 400),
        ):
            response = await c.get("/api/history", params=params)
            assert response.status_code == status, (params, response.text)


def _drawn(d: str) -> list[tuple[float, float]]:
    """The points of an SVG path drawn as ``Mx,y Lx,y ...``."""
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


@pytest.mark.anyio
async def test_in_chromium_the_first_screen_charts_the_last_hour(
    server: LocalRedis, prefix: str, qm: streamq.QueueManager
) -> None:
    queue = await _run_mixed(qm)
    async with dashboard(server.url, prefix) as address, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        await page.goto(address)
        card = page.locator("#charts .chart-card[data-queue='mixed']")
        await expect(card.locator(".legend")).to_have_text(
            "13 completed · 5 failed attempts · 2 dead in the last hour"
        )
        history = await queue.history(60)
        rate = card.locator("svg[data-chart='rate']")
        plot = rate.locator("rect.plot")
        top = float(await plot.get_attribute("y") or "")
        height = float(await plot.get_attribute("height") or "")
        largest = float(await rate.get_attribute("data-max") or "")
        for series, total in (("completed", 13), ("failed", 5)):
            d = await rate.locator(f"path[data-series='{series}']").get_attribute("d")
            points = _drawn(d or "")
            assert len(points) == 60  # a point per minute of the hour
            assert [x for x, _ in points] == sorted(x for x, _ in points)
            # Back from the drawing to jobs per minute: what the history counted.
            per_minute = [round(largest * (1 - (y - top) / height) * 60) for _, y in points]
            assert sum(per_minute) == total
            assert max(per_minute) == max(getattr(p, series) for p in history)
        latency = card.locator("svg[data-chart='latency']")
        started = [p for p in history if p.started]
        for series in ("p50", "p99"):
            d = await latency.locator(f"path[data-series='{series}']").get_attribute("d")
            assert len(_drawn(d or "")) == len(started)  # only the minutes jobs started in
        assert float(await latency.get_attribute("data-max") or "") == pytest.approx(
            max(p.latency_p99 or 0 for p in started)
        )

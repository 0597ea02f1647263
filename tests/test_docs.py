"""The documentation site (docs/, mkdocs.yml) builds with no warning, and every code block in it
runs.

Every ```python block in docs/ runs against real servers the suite started. A block with no
marker is a program and runs as a script against the suite's server. A block marked
``<!-- docs-test: run=NAME -->`` runs as SETUPS[NAME] says (see :class:`Setup`): most are
fragments (they use a ``qm``, a queue ... defined elsewhere) that run inside a manager with the
setup's code before them and its checks after them; others open their own manager on a Redis
Cluster, Sentinel or TLS server, are a web app's start-up code, or are a test file of a user's
suite. With ``output`` in the marker, every line of the ```text block that follows (but ``...``)
is a line the code printed. There is no marker for a block that is only compiled: each must run.

Where a block names a server of its own (``redis+cluster://10.0.0.1:7000,...``), certificate
files (``/etc/streamq/ca.pem``) or leaves the user's code out (a line ``...``), the setup names
that text and the test puts the started server's URL, the files it made, or code that uses the
manager in its place (:func:`program`); it fails if the block no longer has that text.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import trustme

from streamq.testing.localcluster import LocalCluster
from streamq.testing.localserver import LocalRedis, TlsFiles

from .helpers import run_example

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
#: The application testing.md's test files import (``from app.tasks import ...``).
TESTING_PROJECT = ROOT / "examples" / "testing_project"

BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<marker>[^>]*?) -->\n)?```python\n(?P<code>.*?)```\n"
    r"(?:\s*```text\n(?P<output>.*?)```)?",
    flags=re.DOTALL,
)


@dataclass
class Block:
    where: str
    code: str
    run: str  # a SETUPS name, "" for a script
    output: str | None
    marker: list[str]

    @property
    def id(self) -> str:
        return self.where


def blocks() -> list[Block]:
    found = []
    for page in sorted(DOCS.glob("**/*.md")):
        text = page.read_text()
        for n, m in enumerate(BLOCK.finditer(text), 1):
            words = (m["marker"] or "").split()
            run = next((w.removeprefix("run=") for w in words if w.startswith("run=")), "")
            output = m["output"] if "output" in words else None
            found.append(Block(f"{page.relative_to(DOCS)}#{n}", m["code"], run, output, words))
    return found


BLOCKS = blocks()

Shape = Literal["script", "manager", "main", "module", "pytest"]
Server = Literal["redis", "own", "cluster", "sentinel", "tls"]


@dataclass(frozen=True)
class Setup:
    """How a block runs.

    ``shape``:

    - ``script``: the block is a whole program, run as it is;
    - ``manager``: inside ``async with QueueManager(prefix=...) as qm`` and a task group ``tg``
      in ``async def main``, between ``before`` and ``after``;
    - ``main``: at the top of ``async def main`` (a fragment that opens its own manager);
    - ``module``: at module level, between ``before`` (imports, what the block names) and
      ``after`` (which uses what the block defined, and runs ``main``);
    - ``pytest``: a test file of a user's suite, run by pytest with streamq's plugin (and the
      application of examples/testing_project) in a process of its own; it must pass.

    ``server`` is what ``$STREAMQ_REDIS_URL`` (``$STREAMQ_TEST_REDIS_URL`` for pytest) and
    ``{url}`` name: the suite's server (``redis``); a redis-server of the test's own (``own``:
    the block uses fixed queue names, and the checks count the server's connections); a
    Redis Cluster (``cluster``: the URL names two of its three primaries); a primary and two
    sentinels (``sentinel``); a redis-server that listens on a TLS port only and asks
    clients for a certificate (``tls``: ``{files}`` is the folder of ``ca.pem``, ``client.pem``
    and ``client.key``, made with trustme).

    ``replace`` pairs a text of the block with what the test puts in its place (formatted with
    ``url`` and ``files``); ``fill`` replaces the block's one line ``...`` (its user's code).
    """

    before: str = ""
    after: str = ""
    shape: Shape = "manager"
    server: Server = "redis"
    replace: tuple[tuple[str, str], ...] = ()
    fill: str | None = None


SCRIPT = Setup(shape="script")

#: What the blocks that open a manager on another kind of server do with it: the API is the same.
ROUND_TRIP = """
queue = qm.get_queue(f"docs-{os.getpid()}")
await queue.consume(lambda job: job.data * 2)
assert await queue.wait_for(await queue.enqueue(21), timeout=10) == 42
print("42 from", type(qm.redis).__name__)
"""

#: What the web-app blocks name: a job type and its handler; and how the checks run a server.
WEB_APP = '''
import contextlib
import os
import socket

import anyio
import httpx
import msgspec
import redis.asyncio
import streamq


class Email(msgspec.Struct):
    to: str
    subject: str


async def send_email(job: streamq.Job[Email]) -> str:
    return f"sent {job.data.subject!r} to {job.data.to}"


async def connections() -> int:
    """The server's clients but this one (the server is the script's alone)."""
    async with redis.asyncio.Redis.from_url(os.environ["STREAMQ_REDIS_URL"]) as client:
        me = await client.client_id()
        return sum(1 for c in await client.client_list() if int(c["id"]) != me)


def listening_socket() -> socket.socket:
    """Listening before the server starts: a request made at once waits in the backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    return sock
'''

#: The web apps' checks: a request whose handler enqueues a job and waits for the result (which
#: the manager's consumer computes), then, once the server stopped, no connection left open.
WEB_CHECKS = """
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "sent 'Welcome!' to ada@example.com"}, response.text
    assert serving > 0 and await connections() == 0, "the manager did not close"
    print(response.json()["result"])


anyio.run(main)
"""

SETUPS: dict[str, Setup] = {
    "control": Setup('imports = qm.get_queue("imports")'),
    "fair": Setup('imports = qm.get_queue("imports", str)'),
    "manager": Setup(),
    "workflows": Setup('fetch = qm.get_queue("fetch", str)\nreports = qm.get_queue("reports")'),
    "broadcast-group": Setup("""
local_cache: dict[str, str] = {}
async def apply(job: streamq.Job[dict[str, str]]) -> None:
    local_cache[job.data["key"]] = job.data["value"]
sync = qm.get_queue("cache-sync")
await sync.consume(apply, consumer_group=f"cache-sync:{qm.instance_id}")
job_id = await sync.enqueue({"key": "user:1", "value": "v2"})
"""),
    "priorities": Setup("""
class Invoice(msgspec.Struct):
    id: int
reports, invoices = qm.get_queue("reports"), qm.get_queue("invoices", Invoice)
job, inv = {"month": "2026-11"}, Invoice(7)
job_id = await reports.enqueue(job, start_delay=60)
"""),
    "recurring": Setup('maintenance = qm.get_queue("maintenance")'),
    "history": Setup("""
queue = qm.get_queue("emails")
await queue.consume(lambda job: None)
await queue.wait_for(await queue.enqueue("hi"), timeout=10)
"""),
    "rate-limit": Setup("""
queue = qm.get_queue("partner-api")
async def call_partner_api(job: streamq.Job[object]) -> None:
    pass
"""),
    "dead-letters": Setup("""
queue = qm.get_queue("flaky")
async def handler(job: streamq.Job[object]) -> None:
    raise ValueError(f"cannot handle {job.data!r}")
first = await queue.consume(handler, consumer_group="first", max_retries=0)
with contextlib.suppress(streamq.JobFailed):
    await queue.wait_for(await queue.enqueue({"n": 1}), timeout=10, group="first")
await first.stop()
"""),
    # failures.md: Retry and Unrecoverable do what the text says.
    "retry-or-not": Setup(
        """
class Payment(msgspec.Struct):
    amount: int
class Gateway:  # a payment provider's client
    up = True
    async def ready(self) -> bool:
        return self.up
    async def charge(self, payment: Payment) -> str:
        return f"charged {payment.amount}"
gateway = Gateway()
payments = qm.get_queue("payments", Payment)
""",
        """
await payments.consume(charge, max_retries=3)
assert await payments.wait_for(await payments.enqueue(Payment(5)), timeout=10) == "charged 5"
# Unrecoverable: to the dead letters at once, with 3 retries left, its reason as the error.
refused = await payments.enqueue(Payment(0))
with contextlib.suppress(streamq.JobFailed):
    await payments.wait_for(refused, timeout=10)
dead = await payments.get_job(refused)
assert dead is not None and (dead.state, dead.attempts) == ("dead", 1), dead
assert dead.error == "Unrecoverable: amount 0 can never be charged", dead.error
[letter] = await payments.dead_letters()
assert letter.job_id == refused, letter
# Retry: an attempt that failed with the reason; the job waits its 30 s to run again.
gateway.up = False
later = await payments.enqueue(Payment(7))
with anyio.fail_after(10):
    while (info := await payments.get_job(later)) is None or info.state != "retrying":
        await anyio.sleep(0.02)
assert (info.attempts, info.error) == (1, "Retry: gateway down (in 30s)"), info
assert (await payments.stats()).retrying == 1
print(dead.error)
""",
    ),
    # operations.md: a handler enqueues the next job through job.manager.
    "follow-up": Setup(
        """
class Image(msgspec.Struct):
    path: str
images = qm.get_queue("images", Image)
""",
        """
thumbnails = qm.get_queue("thumbnails", Image)
made: list[Image] = []
await images.consume(resize)
await thumbnails.consume(lambda job: made.append(job.data))
await images.wait_for(await images.enqueue(Image("cat.png")), timeout=10)
await thumbnails.drain(timeout=10)
assert made == [Image("cat.png")], made
""",
    ),
    # redis.md
    "cluster": Setup(
        shape="main",
        server="cluster",
        replace=(("redis+cluster://10.0.0.1:7000,10.0.0.2:7000", "{url}"),),
        fill="assert len(qm.redis.get_primaries()) == 3  # it found the third\n" + ROUND_TRIP,
    ),
    "sentinel": Setup(
        shape="main",
        server="sentinel",
        replace=(("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster", "{url}"),),
        fill='assert (await qm.redis.info("replication"))["role"] == "master"\n' + ROUND_TRIP,
    ),
    "durability": Setup(
        """
url = os.environ["STREAMQ_REDIS_URL"]
class Charge(msgspec.Struct):
    id: int
charge = Charge(1)
""",
        shape="main",
    ),
    "tls": Setup(
        shape="main",
        server="tls",
        replace=(("rediss://redis.internal:6380/0", "{url}"), ("/etc/streamq/", "{files}/")),
        fill=ROUND_TRIP,
    ),
    # queues.md
    "broadcast": Setup("local_cache: dict[str, str] = {}", shape="main"),
    # testing.md
    "pytest": Setup(shape="pytest"),
    # web-apps.md: the app serves a request whose handler uses the manager, and stops.
    "fastapi": Setup(
        WEB_APP,
        """
import fastapi
import uvicorn

app = fastapi.FastAPI(lifespan=lifespan)


@app.post("/welcome")
async def welcome(request: fastapi.Request, to: str) -> dict[str, str]:
    emails = request.state.streamq.get_queue("emails", Email)
    job_id = await emails.enqueue(Email(to=to, subject="Welcome!"))
    return {"result": await emails.wait_for(job_id, timeout=10)}


async def main() -> None:
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    with listening_socket() as sock, anyio.fail_after(20):
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            async with httpx.AsyncClient(base_url=base_url) as client:
                response = await client.post("/welcome", params={"to": "ada@example.com"})
            serving = await connections()
            server.should_exit = True  # the lifespan's exit: the manager closes
"""
        + WEB_CHECKS,
        shape="module",
        server="own",
    ),
    "aiohttp": Setup(
        WEB_APP,
        """
from aiohttp import web


async def consume_emails(app: web.Application) -> None:
    await app["streamq"].get_queue("emails", Email).consume(send_email)


async def welcome(request: web.Request) -> web.Response:
    emails = request.app["streamq"].get_queue("emails", Email)
    job_id = await emails.enqueue(Email(to=request.query["to"], subject="Welcome!"))
    return web.json_response({"result": await emails.wait_for(job_id, timeout=10)})


async def main() -> None:
    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_startup.append(consume_emails)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/welcome", welcome)
    runner = web.AppRunner(app)
    with listening_socket() as sock, anyio.fail_after(20):
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.setup)  # the start-up in a task of its own, the clean-up here
        await web.SockSite(runner, sock).start()
        try:
            async with httpx.AsyncClient(base_url=base_url) as client:
                response = await client.post("/welcome", params={"to": "ada@example.com"})
            serving = await connections()
        finally:
            await runner.cleanup()
"""
        + WEB_CHECKS,
        shape="module",
        server="own",
    ),
}

PRELUDE = """\
import contextlib
import datetime
import os
import time

import anyio
import msgspec
import streamq


async def main() -> None:
"""


def setup_of(block: Block) -> Setup:
    return SETUPS[block.run] if block.run else SCRIPT


def fill(code: str, lines: str, where: str) -> str:
    """``code`` with its line ``...`` replaced by ``lines``, at that line's indentation."""
    found = code.splitlines()
    holes = [n for n, line in enumerate(found) if line.strip().startswith("...")]
    assert len(holes) == 1, f"{where}: no single line `...` to fill in"
    hole = found[holes[0]]
    indent = hole[: len(hole) - len(hole.lstrip())]
    found[holes[0] : holes[0] + 1] = textwrap.indent(lines.strip("\n"), indent).splitlines()
    return "\n".join(found) + "\n"


def program(block: Block, url: str = "redis://127.0.0.1:6379/0", files: str = "/tmp") -> str:
    setup = setup_of(block)
    code = block.code
    for text, by in setup.replace:
        assert text in code, f"{block.where} no longer names {text!r}"
        code = code.replace(text, by.format(url=url, files=files))
    if setup.fill is not None:
        code = fill(code, setup.fill, block.where)
    if setup.shape in ("script", "pytest"):
        return code
    if setup.shape == "module":
        return setup.before + "\n" + code + "\n" + setup.after
    body = setup.before + "\n" + code + "\n" + setup.after
    if setup.shape == "main":
        return PRELUDE + textwrap.indent(body, "    ") + "\n\nanyio.run(main)\n"
    prefix = f"docs-{uuid.uuid4().hex[:8]}"
    return (
        PRELUDE
        + f"    async with streamq.QueueManager(prefix={prefix!r}, shutdown_grace=5) as qm,"
        + " anyio.create_task_group() as tg:\n"
        + textwrap.indent(body + "\ntg.cancel_scope.cancel()\n", "        ")
        + "\n\nanyio.run(main)\n"
    )


def run_pytest(code: str, redis_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a test file as a user's suite would: pytest with anyio's plugin and streamq's (named
    with ``-p``, nothing else loaded), the example application importable, the suite's server as
    ``$STREAMQ_TEST_REDIS_URL``."""
    (tmp_path / "test_docs_block.py").write_text(code)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\n"
        "addopts = -p no:cacheprovider --strict-markers --strict-config\n"
        f"pythonpath = {TESTING_PROJECT}\n"
        "timeout = 20\n"
        "filterwarnings = error\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "anyio", "-p", "pytest_timeout", "-p", "streamq"],
        cwd=tmp_path,
        env={
            "STREAMQ_TEST_REDIS_URL": redis_url,
            "PATH": "/usr/bin:/bin",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ left in examples/testing_project
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# -- the servers some blocks name ----------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[LocalRedis]:
    """For a script that uses fixed queue names and counts the server's connections."""
    with LocalRedis() as server:
        yield server


@pytest.fixture(scope="module")
def docs_cluster() -> Iterator[str]:
    """Three primaries (no replicas: the block needs none); the URL names two of them."""
    with LocalCluster(primaries=3, replicas=0) as cluster:
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes[:2])


@pytest.fixture(scope="module")
def docs_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A primary and two sentinels that monitor it as ``mymaster``, as the block names (ready at
    once: a sentinel names the primary it was configured with before it knows its peers, where
    the session's LocalSentinel waits ~2 s for three sentinels to find each other)."""
    folder = tmp_path_factory.mktemp("docs-sentinel")
    with contextlib.ExitStack() as stack:
        primary = stack.enter_context(LocalRedis())
        sentinels = []
        for n in range(2):
            config = folder / f"sentinel-{n}.conf"  # a sentinel rewrites its own
            config.write_text(f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n")
            sentinel = LocalRedis(config_file=str(config), extra_args=["--sentinel"])
            sentinels.append(stack.enter_context(sentinel))
        yield "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in sentinels) + "/mymaster"


@pytest.fixture(scope="module")
def docs_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A TLS-only server whose certificate a private CA signed, asking clients for theirs; the
    folder holds the CA's certificate and a client's certificate and key, as the block names."""
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("docs-tls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "server.pem")
    )
    client = ca.issue_cert("streamq-client")
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    server = str(folder / "server.pem")
    with LocalRedis(tls=TlsFiles(server, server, str(folder / "ca.pem"), auth_clients=True)) as tls:
        yield tls.url, folder


def server_for(setup: Setup, redis_url: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """The URL (and the files folder) a block's setup runs against; started on first use."""
    if setup.server == "own":
        return request.getfixturevalue("own_server").url, ""
    if setup.server == "cluster":
        return request.getfixturevalue("docs_cluster"), ""
    if setup.server == "sentinel":
        return request.getfixturevalue("docs_sentinel"), ""
    if setup.server == "tls":
        url, folder = request.getfixturevalue("docs_tls")
        return url, str(folder)
    return redis_url, ""


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_site_builds_with_no_warning(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    api = (tmp_path / "api.html").read_text()
    for name in ("QueueManager.get_queue", "Queue.enqueue", "Queue.consume", "Job.checkpoint"):
        assert f'id="streamq.{name}"' in api, name
    assert (tmp_path / "index.html").is_file() and (tmp_path / "dashboard.png").is_file()


def test_every_block_is_found_and_every_marker_known() -> None:
    assert len(BLOCKS) >= 20
    fences = sum(page.read_text().count("```python\n") for page in DOCS.glob("**/*.md"))
    assert fences == len(BLOCKS), "a ```python block the pattern missed"
    for block in BLOCKS:
        assert block.run in ("", *SETUPS), block.where
        for word in block.marker:
            assert word == "output" or word.startswith("run="), f"{block.where}: {word!r}"
    assert {b.run for b in BLOCKS if b.run} == set(SETUPS), "a setup no block uses"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_block_compiles(block: Block) -> None:
    compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    compile(program(block), block.where, "exec")


@pytest.mark.newest_servers
@pytest.mark.timeout(45)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_block_runs(
    block: Block, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    setup = setup_of(block)
    url, files = server_for(setup, redis_url, request)
    if setup.shape == "pytest":
        done = run_pytest(program(block, url, files), url, tmp_path)
        tests = len(re.findall(r"^(?:async )?def test_", block.code, flags=re.MULTILINE))
        assert done.returncode == 0, f"{block.where}:\n{done.stdout}\n{done.stderr}"
        assert f" {tests} passed" in done.stdout, f"{block.where}:\n{done.stdout}"
        return
    done = run_example(program(block, url, files), url, tmp_path)
    assert done.returncode == 0, f"{block.where}:\n{done.stdout}\n{done.stderr}"
    if block.output is not None:
        printed = done.stdout.splitlines()
        for line in block.output.splitlines():
            if line.strip() != "...":
                assert line in printed, f"{block.where}: {line!r} not in:\n{done.stdout}"

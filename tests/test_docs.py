"""The documentation site (docs/, mkdocs.yml) builds with no warning, and its code runs.

Every ```python block in docs/ compiles. A block with no marker is a program and runs as a
script against the suite's server; a block marked ``<!-- docs-test: run=NAME -->`` is a fragment
(it uses a ``qm``, a queue ... defined elsewhere) and runs inside a manager with SETUPS[NAME]
before it; ``<!-- docs-test: compile -->`` marks the few that need what the suite has not got
(a cluster, sentinels, certificates, a user's application) and are only compiled. With
``output`` in the marker, every line of the ```text block that follows (but ``...``) is a line
the code printed.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import run_example

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"

BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<marker>[^>]*?) -->\n)?```python\n(?P<code>.*?)```\n"
    r"(?:\s*```text\n(?P<output>.*?)```)?",
    flags=re.DOTALL,
)


@dataclass
class Block:
    where: str
    code: str
    run: str | None  # a SETUPS name, "" for a script, None for compile only
    output: str | None

    @property
    def id(self) -> str:
        return self.where


def blocks() -> list[Block]:
    found = []
    for page in sorted(DOCS.glob("**/*.md")):
        text = page.read_text()
        for n, m in enumerate(BLOCK.finditer(text), 1):
            words = (m["marker"] or "").split()
            run: str | None = ""
            for word in words:
                if word == "compile":
                    run = None
                elif word.startswith("run="):
                    run = word.removeprefix("run=")
            output = m["output"] if "output" in words else None
            found.append(Block(f"{page.relative_to(DOCS)}#{n}", m["code"], run, output))
    return found


BLOCKS = blocks()

#: What a fragment of a page assumes, run inside ``async with QueueManager(...) as qm`` and a
#: task group ``tg`` (or, for "script-body" ones, at the top of an ``async def main``).
SETUPS: dict[str, str] = {
    "control": 'imports = qm.get_queue("imports")',
    "fair": 'imports = qm.get_queue("imports", str)',
    "manager": "",
    "workflows": 'fetch = qm.get_queue("fetch", str)\nreports = qm.get_queue("reports")',
    "broadcast-group": """
local_cache: dict[str, str] = {}
async def apply(job: streamq.Job[dict[str, str]]) -> None:
    local_cache[job.data["key"]] = job.data["value"]
sync = qm.get_queue("cache-sync")
await sync.consume(apply, consumer_group=f"cache-sync:{qm.instance_id}")
job_id = await sync.enqueue({"key": "user:1", "value": "v2"})
""",
    "priorities": """
class Invoice(msgspec.Struct):
    id: int
reports, invoices = qm.get_queue("reports"), qm.get_queue("invoices", Invoice)
job, inv = {"month": "2026-11"}, Invoice(7)
job_id = await reports.enqueue(job, start_delay=60)
""",
    "recurring": 'maintenance = qm.get_queue("maintenance")',
    "history": """
queue = qm.get_queue("emails")
await queue.consume(lambda job: None)
await queue.wait_for(await queue.enqueue("hi"), timeout=10)
""",
    "rate-limit": """
queue = qm.get_queue("partner-api")
async def call_partner_api(job: streamq.Job[object]) -> None:
    pass
""",
    "dead-letters": """
queue = qm.get_queue("flaky")
async def handler(job: streamq.Job[object]) -> None:
    raise ValueError(f"cannot handle {job.data!r}")
first = await queue.consume(handler, consumer_group="first", max_retries=0)
with contextlib.suppress(streamq.JobFailed):
    await queue.wait_for(await queue.enqueue({"n": 1}), timeout=10, group="first")
await first.stop()
""",
}
#: Fragments that open their own manager: they run in ``main`` without one.
SCRIPT_BODY: dict[str, str] = {
    "broadcast": "local_cache: dict[str, str] = {}",
    "durability": """
url = os.environ["STREAMQ_REDIS_URL"]
class Charge(msgspec.Struct):
    id: int
charge = Charge(1)
""",
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


def program(block: Block) -> str:
    assert block.run is not None
    if block.run == "":
        return block.code
    if block.run in SCRIPT_BODY:
        body = SCRIPT_BODY[block.run] + "\n" + block.code
        return PRELUDE + textwrap.indent(body, "    ") + "\n\nanyio.run(main)\n"
    prefix = f"docs-{uuid.uuid4().hex[:8]}"
    body = SETUPS[block.run] + "\n" + block.code + "\ntg.cancel_scope.cancel()\n"
    return (
        PRELUDE
        + f"    async with streamq.QueueManager(prefix={prefix!r}, shutdown_grace=5) as qm,"
        + " anyio.create_task_group() as tg:\n"
        + textwrap.indent(body, "        ")
        + "\n\nanyio.run(main)\n"
    )


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
        assert block.run in (None, "", *SETUPS, *SCRIPT_BODY), block.where


@pytest.mark.timeout(10)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_block_compiles(block: Block) -> None:
    compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if block.run is not None:
        compile(program(block), block.where, "exec")


RUN = [b for b in BLOCKS if b.run is not None]


@pytest.mark.newest_servers
@pytest.mark.timeout(45)
@pytest.mark.parametrize("block", RUN, ids=lambda b: b.id)
def test_block_runs(block: Block, redis_url: str, tmp_path: Path) -> None:
    done = run_example(program(block), redis_url, tmp_path)
    assert done.returncode == 0, f"{block.where}:\n{done.stdout}\n{done.stderr}"
    if block.output is not None:
        printed = done.stdout.splitlines()
        for line in block.output.splitlines():
            if line.strip() != "...":
                assert line in printed, f"{block.where}: {line!r} not in:\n{done.stdout}"

"""The README's first example runs as printed, against the suite's own server."""

from __future__ import annotations

import re
from pathlib import Path

from .helpers import run_example

README = Path(__file__).parent.parent / "README.md"


def test_work_queue_example_runs(redis_url: str, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    done = run_example(blocks[0], redis_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sending 'Welcome' to ada@example.com (attempt 1)" in done.stdout
    assert "sent" in done.stdout
    assert "QueueStats(" in done.stdout


def test_dashboard_section_shows_the_committed_screenshot() -> None:
    text = README.read_text()
    section = text[text.index("\n## Dashboard\n") : text.index("\n## Redis Cluster\n")]
    assert "python -m streamq dashboard" in section and "--allow-actions" in section
    [image] = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", section)
    png = (README.parent / image).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000

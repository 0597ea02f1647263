"""The sample application in examples/testing_project: its own tests, which use streamq's
pytest plugin, ``queue.drain()`` and ``make_job``, pass when run as its developers would run
them, in a pytest process of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.timeout(60)

PROJECT = Path(__file__).parents[2] / "examples" / "testing_project"
TESTS = 8


def run_sample_tests(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STREAMQ_", "PYTEST_"))
    }
    # No .pytest_cache or __pycache__ left in the example.
    environment.update(PYTHONDONTWRITEBYTECODE="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def test_the_sample_tests_pass_on_a_given_server_and_leave_nothing_there(redis_url: str) -> None:
    # The suite's own server, as a user's STREAMQ_TEST_REDIS_URL.
    done = run_sample_tests(STREAMQ_TEST_REDIS_URL=redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{TESTS} passed" in done.stdout
    # Each test's queues were deleted after it: none of its keys are left.
    with redis.Redis.from_url(redis_url) as client:
        assert list(client.scan_iter(match="streamq-test-*")) == []


def test_the_sample_tests_pass_on_the_plugins_own_server_loaded_by_name() -> None:
    # Where plugins are not loaded automatically, `-p streamq` loads it (after anyio's: it
    # imports anyio, which pytest must see first to rewrite its asserts).
    done = run_sample_tests(
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        PYTEST_ADDOPTS="-p anyio -p pytest_timeout -p streamq",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{TESTS} passed" in done.stdout

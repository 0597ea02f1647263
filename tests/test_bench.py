"""`python -m streamq.bench`: its help, a short real run, and bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys


def run_bench(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if url:
        env["STREAMQ_REDIS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "streamq.bench", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_help_lists_the_scenarios() -> None:
    done = run_bench("--help")
    assert done.returncode == 0
    for scenario in ("enqueue", "process", "latency", "delayed", "priority", "mixed"):
        assert scenario in done.stdout


def test_a_short_run_reports_rates_and_redis_cost_as_json(redis_url: str) -> None:
    done = run_bench(
        "--jobs", "300", "--seconds", "0.5", "--scenario", "enqueue", "--scenario", "process",
        "--scenario", "latency", "--scenario", "priority", "--json", url=redis_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    environment = report["environment"]
    assert environment["redis_server"]
    for library in ("redis", "hiredis", "msgspec", "anyio", "uvloop"):
        assert environment[library][0].isdigit(), (library, environment[library])
    rows = {(r["scenario"], r["label"]): r for r in report["results"]}
    assert {s for s, _ in rows} == {"enqueue", "process", "latency", "priority"}
    for row in rows.values():
        assert row["rate"] > 0 and row["jobs"] > 0
        assert row["redis_cpu_us"] > 0 and row["round_trips"] > 0
    assert rows["enqueue", "one at a time"]["extra"]["vs_bare_xadd"] > 0
    latency = next(r for (s, _), r in rows.items() if s == "latency")
    assert 0 < latency["extra"]["p50_ms"] <= latency["extra"]["p99_ms"]


def test_a_throwaway_server_is_started_when_no_url_is_given() -> None:
    done = run_bench("--jobs", "100", "--scenario", "process", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["jobs"] == 100


def test_bad_arguments_are_clear_errors() -> None:
    done = run_bench("--jobs", "0")
    assert done.returncode == 2 and "--jobs must be at least 1" in done.stderr
    done = run_bench("--scenario", "nope")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_worker_processes_drain_the_queue(redis_url: str) -> None:
    done = run_bench(
        "--jobs", "400", "--scenario", "process", "--processes", "2", "--json", url=redis_url
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["results"]
    assert [r["label"] for r in rows] == [
        "1 consumer, concurrency 10",
        "2 processes, concurrency 10 each",
    ]
    assert rows[1]["jobs"] == 399 and rows[1]["rate"] > 0

"""`python -m streamq.bench`: its help, short real runs (on a server and on a cluster), and bad
arguments."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis
from redis.crc import key_slot

from streamq.testing.localserver import LocalRedis


def run_bench(
    *args: str, url: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if url:
        env["STREAMQ_REDIS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "streamq.bench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_lists_the_scenarios() -> None:
    done = run_bench("--help")
    assert done.returncode == 0
    for scenario in ("enqueue", "process", "latency", "delayed", "priority", "mixed"):
        assert scenario in done.stdout


def test_a_short_run_reports_rates_and_redis_cost_as_json(redis_url: str) -> None:
    done = run_bench(
        "--jobs",
        "300",
        "--seconds",
        "0.5",
        "--scenario",
        "enqueue",
        "--scenario",
        "process",
        "--scenario",
        "latency",
        "--scenario",
        "priority",
        "--json",
        url=redis_url,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    environment = report["environment"]
    assert environment["redis_server"]
    with redis.Redis.from_url(redis_url) as client:
        info = client.info("server")
    valkey = info.get("valkey_version")
    assert environment["server"] == (
        f"Valkey {valkey}" if valkey else f"Redis {info['redis_version']}"
    )
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


def test_a_run_against_a_users_redis_leaves_nothing_behind() -> None:
    with LocalRedis() as server:
        mine = redis.Redis.from_url(server.url)
        mine.set("users-own-key", "stays")
        done = run_bench(
            "--jobs",
            "300",
            "--seconds",
            "0.5",
            *("--scenario", "enqueue", "--scenario", "process", "--scenario", "latency"),
            *("--scenario", "delayed", "--scenario", "priority", "--scenario", "mixed"),
            *("--scenario", "memory", "--scenario", "control"),
            url=server.url,
        )
        assert done.returncode == 0, done.stderr
        assert sorted(mine.keys()) == [b"users-own-key"]
        mine.close()


def test_the_flows_scenario_times_a_fan_in_and_chains_against_plain_jobs(redis_url: str) -> None:
    done = run_bench("--jobs", "100", "--scenario", "flows", "--json", url=redis_url)
    assert done.returncode == 0, done.stderr
    rows = {r["label"]: r for r in json.loads(done.stdout)["results"]}
    assert set(rows) == {"plain jobs", "fan-in of 99 children", "10 chains of 10"}
    for row in rows.values():
        assert row["jobs"] == 100 and row["rate"] > 0 and row["redis_cpu_us"] > 0


def test_the_fairness_scenario_compares_keys_and_limits_with_keyless_jobs(redis_url: str) -> None:
    done = run_bench("--jobs", "100", "--scenario", "fairness", "--json", url=redis_url)
    assert done.returncode == 0, done.stderr
    rows = {r["label"]: r for r in json.loads(done.stdout)["results"]}
    assert set(rows) == {
        "no fairness key",
        "1 keys",
        "100 keys",
        "100 keys, per-key concurrency 1",
    }
    for row in rows.values():
        assert row["jobs"] == 100 and row["rate"] > 0
        assert row["extra"]["memory_per_waiting_job"] > 0


def test_the_control_scenario_times_call_and_cancel(redis_url: str) -> None:
    done = run_bench("--jobs", "100", "--scenario", "control", "--json", url=redis_url)
    assert done.returncode == 0, done.stderr
    rows = {r["label"]: r for r in json.loads(done.stdout)["results"]}
    assert set(rows) == {"call, idle consumer", "cancel of a running handler"}
    for row in rows.values():
        assert 0 < row["extra"]["p50_ms"] <= row["extra"]["p99_ms"] <= row["extra"]["max_ms"]
    assert rows["call, idle consumer"]["jobs"] == 100
    assert rows["cancel of a running handler"]["jobs"] == 100


def test_events_can_be_turned_off_to_see_their_cost(redis_url: str) -> None:
    done = run_bench(
        "--jobs", "200", "--scenario", "process", "--keep-events", "0", "--json", url=redis_url
    )
    assert done.returncode == 0, done.stderr
    assert [r["rate"] > 0 for r in json.loads(done.stdout)["results"]] == [True]
    refused = run_bench("--keep-events", "-1", url=redis_url)
    assert refused.returncode == 2 and "--keep-events must be at least 0" in refused.stderr


def test_metrics_can_be_attached_to_see_their_cost(redis_url: str) -> None:
    done = run_bench("--jobs", "200", "--scenario", "process", "--metrics", "--json", url=redis_url)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["environment"]["metrics"] is True
    assert [r["rate"] > 0 for r in report["results"]] == [True]


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
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["results"]
    assert [r["label"] for r in rows] == [
        "1 consumer, concurrency 10",
        "2 processes, concurrency 10 each",
    ]
    assert rows[1]["jobs"] == 399 and rows[1]["rate"] > 0


#: The slot ranges ``redis-cli --cluster create`` gives three primaries.
_THIRDS = ((0, 5460), (5461, 10922), (10923, 16383))


def _third(queue: str) -> int:
    slot = key_slot(f"streamq:{{{queue}}}:stream".encode())
    return next(n for n, (first, last) in enumerate(_THIRDS) if first <= slot <= last)


@pytest.mark.timeout(200)
def test_on_a_throwaway_cluster_queues_spread_two_per_primary() -> None:
    # No URL: the bench starts a LocalCluster; its default scenarios are enqueue, process, shards.
    done = run_bench("--cluster", "--jobs", "50", "--processes", "2", "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["environment"]["cluster"] == {"primaries": 3, "replicas": 3}
    rows = {(r["scenario"], r["label"]): r for r in report["results"]}
    assert {s for s, _ in rows} == {"enqueue", "process", "shards"}
    for row in rows.values():
        assert row["rate"] > 0 and row["jobs"] > 0 and row["redis_cpu_us"] > 0, row
        assert row["extra"]["replicas_cpu_us"] > 0, row
    assert rows["process", "2 processes, concurrency 10 each"]["jobs"] == 49
    shards = [rows["shards", f"6 queues on 3 primaries, {n}"] for n in ("1 process", "2 processes")]
    assert [r["jobs"] for r in shards] == [300, 299]
    for row in shards:
        primaries = row["primaries"]
        assert len({p["primary"] for p in primaries}) == 3
        # Each primary's two queues hash into its own third of the slots, checked here apart
        # from the bench's own slot map.
        assert sorted([_third(q) for q in p["queues"]] for p in primaries) == [
            [0, 0],
            [1, 1],
            [2, 2],
        ]
        for p in primaries:
            assert len(p["queues"]) == 2 and p["jobs"] == 100 and len(p["replicas"]) == 1
            assert p["redis_cpu_us"] > 0 and p["replicas_cpu_us"] > 0 and p["cpu_pct"] > 0
            assert p["commands"] > 1 and p["round_trips"] > 0


@pytest.mark.timeout(60)
def test_cluster_arguments_are_checked() -> None:
    done = run_bench("--scenario", "shards")
    assert done.returncode == 2 and "shards scenario needs a Redis Cluster" in done.stderr
    done = run_bench("--cluster", "--url", "redis://127.0.0.1:6379/0")
    assert done.returncode == 2 and "--cluster needs a redis+cluster://" in done.stderr

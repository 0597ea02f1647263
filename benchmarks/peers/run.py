# ruff: noqa: RUF001  (the table prints an en dash and a multiplication sign)
"""Run the common workload on streamq and its peers, interleaved, against a throwaway Redis.

    bash benchmarks/peers/setup.sh                       # the peers' venvs, once
    .venv/bin/python benchmarks/peers/run.py --json-out peers.json

Starts its own ``redis-server`` on a free loopback port (``streamq.testing.localserver.LocalRedis``,
stopped by its PID), then runs round 1 (every library), round 2 (every library) ... so that a
noisy machine hits every library alike; each round starts one library further along the list.
The server is flushed before every run. Each adapter is ``benchmarks/peers/<name>_bench.py``,
run with its own venv's python (streamq's with this interpreter) and a timeout; it prints one
JSON object. Prints a markdown table of the per-column medians and a last row of streamq's
figure divided by the best peer's (highest throughput, lowest latency).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from streamq.testing.localserver import LocalRedis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEER_VENVS = ROOT / ".cache" / "peers"
LIBRARIES = ("streamq", "arq", "saq", "streaq", "taskiq", "bullmq")
METRICS = ("enqueue", "bulk", "process", "process_redis_us", "p50_ms", "p99_ms")
LOWER_IS_BETTER = {"process_redis_us", "p50_ms", "p99_ms"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def python_for(name: str) -> Path | None:
    if name == "streamq":
        return Path(sys.executable)
    python = PEER_VENVS / name / "venv" / "bin" / "python"
    return python if python.exists() else None


def run_adapter(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    python = python_for(name)
    if python is None:
        return {"library": name, "error": "no venv: run benchmarks/peers/setup.sh"}
    command = [
        str(python), str(HERE / f"{name}_bench.py"), "--url", url, "--jobs", str(args.jobs),
        "--concurrency", str(args.concurrency), "--rate", str(args.rate),
        "--seconds", str(args.seconds),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHONUNBUFFERED"] = "1"
    start = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT, env=env,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        return {"library": name, "error": f"timed out after {args.timeout:.0f} s",
                "stderr": (stderr or "")[-2000:]}  # fmt: skip
    seconds = time.monotonic() - start
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
    if done.returncode != 0 or not lines:
        return {"library": name, "error": f"exit {done.returncode}", "stderr": done.stderr[-2000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    result["seconds"] = round(seconds, 1)
    result["stderr"] = done.stderr[-2000:]
    return result


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        good = [r for r in runs if r["library"] == name and "error" not in r]
        row: dict[str, Any] = {
            "library": name,
            "runs": len(good),
            "failed": sum(1 for r in runs if r["library"] == name) - len(good),
        }
        row["version"] = good[0]["version"] if good else "–"
        for metric in METRICS:
            row[metric] = median([r.get(metric) for r in good])
        rows.append(row)
    return rows


def ratios(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    ours = next((r for r in rows if r["library"] == "streamq"), None)
    peers = [r for r in rows if r["library"] != "streamq"]
    out: dict[str, float | None] = {}
    for metric in METRICS:
        values = [r[metric] for r in peers if r[metric] is not None]
        if ours is None or ours[metric] is None or not values:
            out[metric] = None
            continue
        best = min(values) if metric in LOWER_IS_BETTER else max(values)
        out[metric] = ours[metric] / best if best else None
    return out


def fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    return "–" if value is None else (f"{value:.1f}" if value >= 10 else f"{value:.2f}")


def fmt_us(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def table(rows: list[dict[str, Any]], ratio: dict[str, float | None]) -> str:
    lines = [
        "| library | version | enqueue/s | bulk/s | process/s | Redis µs/job | p50/p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        note = "" if not r["failed"] else f" ({r['failed']} failed)"
        latency = f"{fmt_ms(r['p50_ms'])} / {fmt_ms(r['p99_ms'])}"
        if r["p50_ms"] is None:
            latency = "–"
        lines.append(
            f"| {r['library']}{note} | {r['version']} | {fmt_rate(r['enqueue'])} |"
            f" {fmt_rate(r['bulk'])} | {fmt_rate(r['process'])} |"
            f" {fmt_us(r['process_redis_us'])} | {latency} |"
        )
    lines.append(
        f"| streamq ÷ best peer | | {fmt_ratio(ratio['enqueue'])} | {fmt_ratio(ratio['bulk'])} |"
        f" {fmt_ratio(ratio['process'])} | {fmt_ratio(ratio['process_redis_us'])} |"
        f" {fmt_ratio(ratio['p50_ms'])} / {fmt_ratio(ratio['p99_ms'])} |"
    )
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(LIBRARIES)}")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rate", type=float, default=400.0, help="offered jobs/s (latency)")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per adapter run")
    parser.add_argument("--json-out", type=Path, help="write the runs and medians here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(LIBRARIES)
    unknown = [n for n in names if n not in LIBRARIES]
    if unknown:
        parser.error(f"unknown libraries: {', '.join(unknown)} (known: {', '.join(LIBRARIES)})")
    args.names = names
    if args.jobs < 1 or args.rounds < 1 or args.concurrency < 1:
        parser.error("--jobs, --rounds and --concurrency must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs: list[dict[str, Any]] = []
    started = dt.datetime.now(dt.UTC)
    with LocalRedis() as server:
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        log(f"redis-server {info['redis_version']} at {server.url} (pid {server.pid})")
        for round_no in range(args.rounds):
            shift = round_no % len(args.names)
            order = args.names[shift:] + args.names[:shift]
            for name in order:
                client.flushall()
                log(f"round {round_no + 1}/{args.rounds}: {name} ...")
                result = run_adapter(name, server.url, args)
                result["round"] = round_no + 1
                runs.append(result)
                if "error" in result:
                    log(f"  {name} FAILED: {result['error']}\n{result.get('stderr', '')[-800:]}")
                else:
                    log(
                        f"  {name}: enqueue {fmt_rate(result['enqueue'])}/s, bulk"
                        f" {fmt_rate(result['bulk'])}/s, process {fmt_rate(result['process'])}/s,"
                        f" p50/p99 {fmt_ms(result['p50_ms'])}/{fmt_ms(result['p99_ms'])} ms"
                        f" ({result['seconds']} s)"
                    )
        client.flushall()
        client.close()
    rows = summarize(runs, args.names)
    ratio = ratios(rows)
    header = (
        f"{args.jobs:,} jobs, concurrency {args.concurrency}, latency at {args.rate:g} jobs/s for"
        f" {args.seconds:g} s; medians of {args.rounds} interleaved rounds; Redis"
        f" {info['redis_version']}, {os.cpu_count()} × {cpu_model()}, {started:%Y-%m-%d}"
    )
    print(header + "\n")
    print(table(rows, ratio))
    if args.json_out:
        report = {
            "environment": {
                "date": started.isoformat(timespec="seconds"),
                "redis_server": info["redis_version"],
                "cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
                "jobs": args.jobs, "concurrency": args.concurrency, "rate": args.rate,
                "seconds": args.seconds, "rounds": args.rounds,
            },
            "medians": rows, "streamq_over_best_peer": ratio,
            "runs": runs,
        }  # fmt: skip
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {args.json_out}")
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

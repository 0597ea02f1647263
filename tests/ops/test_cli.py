"""``python -m streamq info | jobs | watch | enqueue | dead | recurring`` against a real Redis:
their output, their JSON and their exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
import msgspec
import pytest
from click.testing import CliRunner, Result

import streamq
from streamq.ops.cli import main
from streamq.testing.localserver import LocalRedis

pytestmark = [pytest.mark.timeout(60)]


class Cli:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(
            main, [*args, "--prefix", self.prefix], env={"STREAMQ_REDIS_URL": self.url}
        )
        assert result.exit_code == code, (result.output, result.exception)
        if code == 0:
            assert result.exception is None
        else:  # a clean error, never a traceback
            assert isinstance(result.exception, SystemExit), result.exception
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").output)

    def setup(self, steps: Callable[[streamq.QueueManager], Awaitable[None]]) -> None:
        async def run() -> None:
            async with streamq.QueueManager(self.url, prefix=self.prefix) as qm:
                await steps(qm)

        anyio.run(run)


@pytest.fixture
def cli(server: LocalRedis, prefix: str) -> Cli:
    return Cli(server.url, prefix)


async def _dead_letters(qm: streamq.QueueManager) -> None:
    """Two jobs of ``mail`` in the dead letters, one waiting, one delayed."""
    queue = qm.get_queue("mail")

    async def fail(job: streamq.Job[Any]) -> None:
        raise ValueError(f"bad address {job.data['to']}")

    consumer = await queue.consume(fail, max_retries=0)
    ids = [await queue.enqueue({"to": to}, job_id=to) for to in ("x@bad", "y@bad")]
    for job_id in ids:
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for(job_id, timeout=10)
    await consumer.stop()
    await queue.enqueue({"to": "z@ok"}, job_id="z")
    await queue.enqueue({"to": "later"}, job_id="later", start_delay=600)


def test_info_lists_every_queue_with_its_counts_and_groups(cli: Cli) -> None:
    assert "no queues yet" in cli("info").output
    cli.setup(_dead_letters)
    cli("enqueue", "other", '"hello"')
    table = cli("info").output
    assert "mail" in table and "other" in table and "Consumer groups" in table
    [mail, other] = cli.json("info")
    assert (mail["name"], other["name"]) == ("mail", "other")
    assert {k: mail["stats"][k] for k in ("waiting", "delayed", "dead", "completed")} == {
        "waiting": 1,
        "delayed": 1,
        "dead": 2,
        "completed": 0,
    }
    assert [(g["name"], g["pending"]) for g in mail["groups"]] == [("mail", 0)]
    assert other["stats"]["waiting"] == 1 and other["groups"] == []
    assert 0 < other["stats"]["memory_bytes"] < mail["stats"]["memory_bytes"]
    assert "memory" in table and " KiB" in table
    assert [q["name"] for q in cli.json("info", "other")] == ["other"]


def test_jobs_lists_a_queues_jobs_by_state(cli: Cli) -> None:
    cli.setup(_dead_letters)
    [waiting] = cli.json("jobs", "mail")
    assert (waiting["id"], waiting["data"], waiting["state"]) == ("z", {"to": "z@ok"}, "waiting")
    [delayed] = cli.json("jobs", "mail", "--state", "delayed")
    assert delayed["id"] == "later" and delayed["due_at"] > delayed["enqueued_at"] + 590
    assert "later" in cli("jobs", "mail", "-s", "delayed").output


def test_dead_letters_listed_shown_retried_and_purged(cli: Cli) -> None:
    cli.setup(_dead_letters)
    letters = cli.json("dead", "list", "mail")
    assert [(d["job_id"], d["attempts"]) for d in letters] == [("x@bad", 1), ("y@bad", 1)]
    assert "ValueError: bad address x@bad" in letters[0]["error"]
    assert "ValueError: bad address y@bad" in cli("dead", "list", "mail").output

    shown = cli("dead", "show", "mail", "x@bad").output
    assert "ValueError: bad address x@bad" in shown and '{"to":"x@bad"}' in shown
    assert "traceback:" in shown and "in fail" in shown
    assert cli.json("dead", "show", "mail", "y@bad")["job_id"] == "y@bad"
    assert "no dead letter 'nope'" in cli("dead", "show", "mail", "nope", code=1).output

    assert cli("dead", "retry", "mail", "x@bad").output == "retried 1 dead job of 'mail'\n"
    assert "no dead letter 'x@bad'" in cli("dead", "retry", "mail", "x@bad", code=1).output
    assert [d["job_id"] for d in cli.json("dead", "list", "mail")] == ["y@bad"]
    assert {j["id"] for j in cli.json("jobs", "mail")} == {"x@bad", "z"}

    assert "pass --yes" in cli("dead", "purge", "mail", code=2).output
    assert cli.json("dead", "purge", "mail", "--yes") == {"queue": "mail", "purged": 1}
    assert cli.json("dead", "list", "mail") == []
    assert "JOB_ID or --all" in cli("dead", "retry", "mail", code=2).output


def test_delete_asks_then_deletes_a_queue(cli: Cli) -> None:
    cli.setup(_dead_letters)
    assert "pass --yes" in cli("delete", "mail", code=2).output
    assert cli.json("jobs", "mail")  # nothing deleted
    assert cli.json("delete", "mail", "--yes") == {"queue": "mail", "deleted_records": 4}
    assert [q["name"] for q in cli.json("info")] == []
    assert "unknown queue 'mail'" in cli("delete", "mail", "--yes", code=1).output


def test_dead_retry_all(cli: Cli) -> None:
    cli.setup(_dead_letters)
    assert cli.json("dead", "retry", "mail", "--all") == {"queue": "mail", "retried": 2}
    assert cli.json("info", "mail")[0]["stats"]["dead"] == 0


def test_enqueue_adds_a_job_with_json_data(cli: Cli) -> None:
    job_id = cli("enqueue", "jobs", '{"n": 1}').output.strip()
    assert cli.json("enqueue", "jobs", "[1, 2]", "--job-id", "fixed", "--priority", "4") == {
        "queue": "jobs",
        "job_id": "fixed",
    }
    cli("enqueue", "jobs", '"later"', "--delay", "60")
    listed = cli.json("jobs", "jobs")
    assert [(j["id"], j["data"], j["priority"]) for j in listed] == [
        ("fixed", [1, 2], 4),
        (job_id, {"n": 1}, 0),
    ]
    assert cli.json("jobs", "jobs", "--state", "delayed")[0]["data"] == "later"


class Email(msgspec.Struct):
    to: str
    subject: str = "hello"
    tries: Annotated[int, msgspec.Meta(ge=1)] = 1


def test_enqueue_checks_the_data_against_the_type_a_typed_queue_recorded(cli: Cli) -> None:
    async def typed(qm: streamq.QueueManager) -> None:
        await qm.get_queue("emails", Email).enqueue(Email(to="ada@example.com"))

    cli.setup(typed)
    refused = {
        "42": "at `$`: expected object, got integer",
        '{"to": 5}': "at `$.to`: expected string, got integer",
        '{"subject": "x"}': "at `$`: missing required field 'to'",
        '{"to": "a@b", "tries": 0}': "at `$.tries`: expected a number >= 1, got 0",
    }
    for data, problem in refused.items():
        output = cli("enqueue", "emails", data, code=1).output
        assert problem in output and "Email" in output, (data, output)
    assert len(cli.json("jobs", "emails")) == 1  # nothing was written
    cli("enqueue", "emails", '{"to": "grace@example.com", "tries": 2}')
    assert [j["data"]["to"] for j in cli.json("jobs", "emails")][-1] == "grace@example.com"
    cli("enqueue", "untyped", "42")  # a queue no typed manager used: anything goes


def test_recurring_list(cli: Cli) -> None:
    async def schedule(qm: streamq.QueueManager) -> None:
        queue = qm.get_queue("reports")
        await queue.schedule_recurring("daily", {"kind": "sales"}, cron="0 6 * * *")
        await queue.schedule_recurring("pulse", "p", 30)

    cli.setup(schedule)
    listed = cli.json("recurring", "list", "reports")
    assert [(s["job_id"], s["cron"], s["interval_seconds"]) for s in listed] == [
        ("pulse", None, 30.0),
        ("daily", "0 6 * * *", None),
    ]
    table = cli("recurring", "list", "reports").output
    assert "cron 0 6 * * * (UTC)" in table and "30s" in table


def test_watch_refreshes(cli: Cli) -> None:
    cli("enqueue", "w", "1")
    lines = cli("watch", "--count", "3", "--interval", "0.1", "--json").output.splitlines()
    snapshots = [json.loads(line) for line in lines]
    assert [s["queues"][0]["stats"]["waiting"] for s in snapshots] == [1, 1, 1]
    assert snapshots[0]["at"] < snapshots[1]["at"] < snapshots[2]["at"]
    assert cli("watch", "--count", "2", "--interval", "0.1").output.count("Queues") == 2


def test_errors_are_one_clear_line(cli: Cli) -> None:
    assert "unknown queue 'nope'" in cli("info", "nope", code=1).output
    assert "unknown queue 'nope'" in cli("dead", "list", "nope", code=1).output
    assert "JSON is malformed" in cli("enqueue", "q", "{oops", code=2).output
    assert "braces" in cli("enqueue", "bad{name}", "1", code=1).output
    assert "No such option '--bogus'" in cli("info", "--bogus", code=2).output
    assert "'dead'" in cli("jobs", "q", "--state", "dead", code=2).output


def test_a_wrong_url_is_one_line_without_a_traceback() -> None:
    """A real process: what a user sees, exit status and all."""
    for command in (["info"], ["dead", "list", "q"], ["enqueue", "q", "1"], ["watch"]):
        done = subprocess.run(
            [sys.executable, "-m", "streamq", *command, "--url", "redis://127.0.0.1:1/0"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 1, done
        assert done.stderr.startswith("Error: cannot connect to Redis at redis://127.0.0.1:1/0")
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_every_command_has_help() -> None:
    commands = [
        ["worker"],
        ["info"],
        ["jobs"],
        ["watch"],
        ["enqueue"],
        ["delete"],
        ["job"],
        ["job", "show"],
        ["flow"],
        ["flow", "show"],
        ["dead"],
        ["dead", "list"],
        ["dead", "show"],
        ["dead", "retry"],
        ["dead", "purge"],
        ["recurring"],
        ["recurring", "list"],
    ]
    for command in commands:
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.output and "Show this message and exit." in result.output


def test_job_show_tells_a_job_in_full_and_completed_jobs_are_listed(cli: Cli) -> None:
    async def run_some(qm: streamq.QueueManager) -> None:
        queue = qm.get_queue("shown")

        async def handle(job: streamq.Job[Any]) -> Any:
            if job.data == "bad":
                raise ValueError("no good")
            return {"sent": job.data}

        consumer = await queue.consume(handle, max_retries=0)
        await queue.wait_for(await queue.enqueue("ok", job_id="ok"), timeout=10)
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for(await queue.enqueue("bad", job_id="bad"), timeout=10)
        await consumer.stop()

    cli.setup(run_some)
    shown = cli("job", "show", "shown", "ok").output
    assert "state:     completed" in shown and 'result:    {"sent":"ok"}' in shown
    assert "attempts:  1" in shown and "finished:" in shown
    failed = cli.json("job", "show", "shown", "bad")
    assert (failed["state"], failed["error"]) == ("dead", "ValueError: no good")
    assert "no job 'nope' in queue 'shown'" in cli("job", "show", "shown", "nope", code=1).output
    assert (
        "does not go to consumer group 'x'"
        in cli("job", "show", "shown", "ok", "--group", "x", code=1).output
    )
    [completed] = cli.json("jobs", "shown", "--state", "completed")
    assert (completed["id"], completed["result"]) == ("ok", {"sent": "ok"})
    assert "Completed jobs of 'shown'" in cli("jobs", "shown", "-s", "completed").output
    assert "has no active jobs" in cli("jobs", "shown", "-s", "active").output


def test_pause_resume_and_cancel_from_the_command_line(cli: Cli) -> None:
    ids: dict[str, str] = {}

    async def enqueue(qm: streamq.QueueManager) -> None:
        queue = qm.get_queue("controlled")
        ids["later"] = await queue.enqueue("later", start_delay=3600)

        async def handle(job: streamq.Job[Any]) -> str:
            await job.set_progress({"rows": 10})
            for n in range(25):
                await job.log(f"row {n}")
            return "done"

        consumer = await queue.consume(handle)
        ids["done"] = await queue.enqueue("now")
        await queue.wait_for(ids["done"], timeout=10)
        await consumer.stop()

    cli.setup(enqueue)
    assert "queue 'controlled' is paused now" in cli("pause", "controlled").output
    assert "was paused already" in cli("pause", "controlled").output
    assert "controlled (paused)" in cli("info", "controlled").output
    [listed] = cli.json("info", "controlled")
    assert listed["stats"]["paused"] is True
    assert cli.json("resume", "controlled") == {
        "queue": "controlled",
        "paused": False,
        "changed": True,
    }
    assert f"cancelled job {ids['later']!r}" in cli("cancel", "controlled", ids["later"]).output
    assert cli.json("job", "show", "controlled", ids["later"])["state"] == "cancelled"
    refused = cli("cancel", "controlled", ids["later"], code=1).output
    assert "was not cancelled: it is unknown or finished" in refused
    shown = cli("job", "show", "controlled", ids["done"]).output
    assert 'progress:  {"rows":10}' in shown
    assert "log (the last 20 of 25; --json has all):" in shown and "  row 24" in shown
    assert "  row 4\n" not in shown
    full = cli.json("job", "show", "controlled", ids["done"])
    assert full["logs"] == [f"row {n}" for n in range(25)] and full["progress"] == {"rows": 10}


def test_flow_show_draws_the_tree_of_a_flow_with_each_step_s_state(cli: Cli) -> None:
    async def run_a_flow(qm: streamq.QueueManager) -> None:
        async def handle(job: streamq.Job[Any]) -> Any:
            if job.data == "bad":
                raise ValueError("no good")
            return job.data.upper()

        for name in ("reports", "fetch"):
            await qm.get_queue(name).consume(handle, max_retries=0)
        flow = streamq.Step(
            "reports",
            "sum",
            job_id="monthly",
            children=[
                streamq.Step("fetch", "a", job_id="fetch-a"),
                streamq.Step("fetch", "b", job_id="fetch-b"),
            ],
            on_child_failure="ignore",
        )
        await qm.enqueue_flow(flow)
        assert await qm.get_queue("reports").wait_for("monthly", timeout=10) == "SUM"
        await qm.stop_consumers()

    cli.setup(run_a_flow)
    shown = cli("flow", "show", "monthly").output
    assert shown.splitlines()[0] == 'reports  monthly  completed  -> "SUM"'
    assert 'fetch  fetch-a  completed  -> "A"' in shown and "fetch  fetch-b" in shown
    tree = cli.json("flow", "show", "monthly", "--queue", "reports")
    assert tree["state"] == "completed"
    assert {c["id"]: c["result"] for c in tree["children"]} == {"fetch-a": "A", "fetch-b": "B"}
    assert "no job 'nope'" in cli("flow", "show", "nope", code=1).output


def test_jobs_lists_one_fairness_keys_waiting_jobs(cli: Cli) -> None:
    async def enqueue(qm: streamq.QueueManager) -> None:
        queue = qm.get_queue("tenants")
        await queue.enqueue_many(["a1", "a2"], fairness_key="acme")
        await queue.enqueue("g1", fairness_key="globex")
        await queue.enqueue("plain", priority=1)

    cli.setup(enqueue)
    listed = cli.json("jobs", "tenants", "--key", "acme")
    assert [job["data"] for job in listed] == ["a1", "a2"]
    every = cli.json("jobs", "tenants")
    assert [job["data"] for job in every] == ["plain", "a1", "a2", "g1"]
    assert "no waiting jobs of key 'nobody'" in cli("jobs", "tenants", "--key", "nobody").output
    failed = cli("jobs", "tenants", "--key", "acme", "--state", "delayed", code=1).output
    assert "fairness_key lists waiting jobs" in failed

"""Logging: one line per failure and per reclaim (queue, job id, attempt, error as JSON keys with
the JSON formatter); nothing per successful job at INFO."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

import streamq
from streamq.ops.logs import JsonFormatter, configure
from streamq.store.keys import QueueKeys

from ..helpers import wait_until

pytestmark = [pytest.mark.timeout(30)]


class JsonLines:
    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]


@pytest.fixture
def json_log() -> Iterator[JsonLines]:
    """What the ``streamq`` loggers write at INFO and above, as JSON lines."""
    captured = JsonLines()
    handler = logging.StreamHandler(captured.buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("streamq")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.anyio
async def test_a_failure_is_one_json_line_and_a_success_none(
    qm: streamq.QueueManager, queue_name: str, json_log: JsonLines
) -> None:
    queue = qm.get_queue(queue_name)

    async def handle(job: streamq.Job[str]) -> None:
        if job.data == "fail":
            raise ValueError("boom")

    await queue.consume(handle, max_retries=1, backoff=0)
    good = [await queue.enqueue("ok") for _ in range(5)]
    for job_id in good:
        await queue.wait_for(job_id, timeout=10)
    bad = await queue.enqueue("fail")
    with pytest.raises(streamq.JobFailed):
        await queue.wait_for(bad, timeout=10)

    lines = json_log.lines()
    retried, dead = (line for line in lines if line.get("job_id") == bad)
    assert retried["level"] == "WARNING" and dead["level"] == "ERROR"
    for line, attempt in ((retried, 1), (dead, 2)):
        assert line["logger"] == "streamq"
        assert (line["queue"], line["group"], line["attempt"]) == (queue_name, queue_name, attempt)
        assert line["error"] == "ValueError: boom" and bad in line["message"]
    assert retried["retry_in"] == 0.0 and dead["retry_in"] is None
    assert "dead-lettered" in dead["message"]
    # Nothing about the jobs that succeeded.
    assert not [line for line in lines if any(g in json.dumps(line) for g in good)]


@pytest.mark.anyio
async def test_a_reclaim_is_one_json_line(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, json_log: JsonLines
) -> None:
    queue = qm.get_queue(queue_name)
    stream = QueueKeys(qm.prefix, queue_name).stream
    await redis.xgroup_create(stream, queue_name, id="0", mkstream=True)
    payload = queue._codec.encode("orphan", enqueued_at=time.time(), priority=0)
    await redis.xadd(stream, {"j": "orphan-1", "p": payload})
    await redis.xreadgroup(queue_name, "died", {stream: ">"}, count=1)  # and never acks
    consumer = await queue.consume(lambda job: job.data, visibility_timeout=0.3)
    await wait_until(
        lambda: any(line.get("job_id") for line in json_log.lines()), what="the reclaim"
    )
    (line,) = [line for line in json_log.lines() if line.get("job_id") == "orphan-1"]
    assert line["level"] == "WARNING"
    assert (line["queue"], line["group"], line["attempt"], line["delivery"]) == (
        queue_name,
        queue_name,
        1,
        2,
    )
    assert "stopped heart-beating for 0.3s" in line["error"]
    assert consumer.name in line["message"] and "reclaimed" in line["message"]


def test_configure_writes_json_lines_with_extra_keys_and_tracebacks() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure("json", "warning", stream=stream)
        log = logging.getLogger("streamq.test")
        log.info("not at this level")
        log.warning("job %s failed", "j1", extra={"queue": "q", "job_id": "j1", "attempt": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("with a traceback")
        configure("text", "info", stream=stream)
        log.info("plain %s", "text")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    first, second, third = stream.getvalue().splitlines()
    one = json.loads(first)
    assert one["message"] == "job j1 failed" and one["level"] == "WARNING"
    assert (one["queue"], one["job_id"], one["attempt"]) == ("q", "j1", 3)
    assert one["logger"] == "streamq.test" and one["time"].endswith("+00:00")
    assert "ValueError: boom" in json.loads(second)["exception"]
    assert third.endswith("INFO streamq.test: plain text")
    with pytest.raises(streamq.InvalidArgument, match="text, json"):
        configure("yaml")  # type: ignore[arg-type]

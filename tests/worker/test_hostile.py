"""Hostile and bad input: foreign stream entries, oversized payloads, odd ids and names, pickles.

Entries written into a queue's stream by something else go to the dead letters with the reason
and the consumer goes on; streamq never unpickles anything.
"""

from __future__ import annotations

import ast
import math
import pickle
from pathlib import Path
from typing import Any, cast

import anyio
import msgspec
import pytest
import redis.asyncio as aioredis

import streamq
from streamq.store.serialization import Codec

from ..helpers import wait_until

pytestmark = pytest.mark.anyio

PACKAGE = Path(streamq.__file__).parent


class Order(msgspec.Struct):
    order_id: int


def _envelope(
    data: Any, *, max_retries: Any = None, timeout: Any = None, priority: Any = 0
) -> bytes:
    """A payload as streamq writes it (written by hand here, as another program would)."""
    return msgspec.msgpack.encode([1.5, priority, max_retries, timeout, data])


def _stream(queue_name: str) -> str:
    return f"streamq:{{{queue_name}}}:stream"


async def _dead(queue: streamq.Queue[Any], n: int) -> bool:
    return (await queue.stats()).dead == n


# -- max_payload_bytes --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "512k", None])
def test_max_payload_bytes_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(streamq.InvalidArgument, match="max_payload_bytes must be an int >= 1"):
        streamq.QueueManager("redis://127.0.0.1:1/0", max_payload_bytes=bad)  # type: ignore[arg-type]


def test_the_default_limit_is_512_kib() -> None:
    assert streamq.QueueManager("redis://127.0.0.1:1/0").max_payload_bytes == 512 * 1024


async def test_a_payload_over_the_limit_is_refused_at_enqueue_and_nothing_is_written(
    redis_url: str, queue_name: str, redis: aioredis.Redis
) -> None:
    limit = 1000
    # The limit counts the encoded job (data and metadata): the largest string that fits.
    overhead = len(Codec("q", Any).encode("x" * 900, enqueued_at=0.0)) - 900
    fits = "x" * (limit - overhead)
    async with streamq.QueueManager(redis_url, max_payload_bytes=limit) as qm:
        queue = qm.get_queue(queue_name)
        await queue.enqueue(fits)
        with pytest.raises(streamq.EncodeError) as caught:
            await queue.enqueue(fits + "x")
        message = str(caught.value)
        assert f"{limit + 1:,} bytes" in message and f"max_payload_bytes ({limit:,})" in message
        assert caught.value.queue == queue_name
        assert (await queue.stats()).waiting == 1

        # One item too big: nothing of the batch is written.
        with pytest.raises(streamq.EncodeError, match="max_payload_bytes"):
            await queue.enqueue_many(["small", "y" * 5000, "small"])
        assert (await queue.stats()).waiting == 1
        with pytest.raises(streamq.EncodeError, match="max_payload_bytes"):
            await queue.schedule_recurring("big", "z" * 5000, interval_seconds=60)
        keys = cast("list[bytes]", await redis.keys(f"streamq:{{{queue_name}}}:recurring*"))
        assert keys == []


async def test_an_oversized_entry_written_by_another_program_is_dead_lettered_undecoded(
    redis_url: str, queue_name: str, redis: aioredis.Redis
) -> None:
    async with streamq.QueueManager(redis_url, max_payload_bytes=1000, shutdown_grace=5) as qm:
        queue = qm.get_queue(queue_name, Order)
        huge = _envelope({"order_id": 1, "padding": "p" * 5000})
        await redis.xadd(_stream(queue_name), {"j": "huge", "p": huge})
        handled: list[int] = []
        await queue.consume(lambda job: handled.append(job.data.order_id))
        assert await queue.wait_for(await queue.enqueue(Order(2)), timeout=5) is None
        await wait_until(lambda: _dead(queue, 1), what="the oversized entry's dead letter")
        (letter,) = await queue.dead_letters()
        assert letter.job_id == "huge" and handled == [2]
        assert f"payload is {len(huge):,} bytes" in letter.error
        assert "max_payload_bytes (1,000)" in letter.error and "not decoded" in letter.error
        assert letter.data == huge, "kept as it was, never decoded"


# -- entries written by something else ---------------------------------------------------------


async def test_foreign_entries_of_every_kind_are_dead_lettered_with_the_reason(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    """What tests/test_malformed.py does not cover: each field missing or garbled, and valid
    MessagePack that is not an envelope (or one whose metadata is out of range)."""
    queue = qm.get_queue(queue_name, Order)
    good = _envelope({"order_id": 1})
    entries: dict[str, tuple[dict[Any, Any], str]] = {
        "no-payload": ({"j": "no-payload"}, "no payload (field 'p')"),
        "empty-payload": (
            {"j": "empty-payload", "p": b""},
            "DecodeError: Input data was truncated",
        ),
        "attempt-zero": ({"j": "attempt-zero", "p": good, "a": "0"}, "field 'a'"),
        "attempt-negative": ({"j": "attempt-negative", "p": good, "a": "-3"}, "field 'a'"),
        "attempt-huge": ({"j": "attempt-huge", "p": good, "a": "9" * 30}, "field 'a'"),
        "a-map": ({"j": "a-map", "p": msgspec.msgpack.encode({"data": 1})}, "Expected `array`"),
        "short": ({"j": "short", "p": msgspec.msgpack.encode([1.0, 0])}, "at least length 5"),
        "a-string": ({"j": "a-string", "p": msgspec.msgpack.encode("hi")}, "Expected `array`"),
        "bad-time": (
            {"j": "bad-time", "p": msgspec.msgpack.encode(["yesterday", 0, None, None, {}])},
            "Expected `float`, got `str` - at `$[0]` (the job's enqueued_at",
        ),
        "negative-retries": (
            {"j": "negative-retries", "p": _envelope({"order_id": 1}, max_retries=-5)},
            "Expected `int` >= 0",
        ),
        "nan-timeout": (
            {"j": "nan-timeout", "p": _envelope({"order_id": 1}, timeout=math.nan)},
            "Expected `float` > 0.0",
        ),
        "huge-priority": (
            {"j": "huge-priority", "p": _envelope({"order_id": 1}, priority=10**12)},
            "Expected `int` <= 1000000",
        ),
        "wrong-type": (
            {"j": "wrong-type", "p": _envelope(["not", "an", "order"])},
            "Expected `object`, got `array`",
        ),
    }
    stream = _stream(queue_name)
    for fields, _ in entries.values():
        await redis.xadd(stream, fields)
    # Job ids another program got wrong: dead-lettered under the entry's id.
    await redis.xadd(stream, {"j": "", "p": good})
    await redis.xadd(stream, {"j": "x" * 5000, "p": good})
    await redis.xadd(stream, {"j": "y" * 1100, "p": good})

    handled: list[int] = []
    consumer = await queue.consume(lambda job: handled.append(job.data.order_id), max_retries=0)
    assert await queue.wait_for(await queue.enqueue(Order(7)), timeout=5) is None
    await wait_until(lambda: _dead(queue, len(entries) + 3), what="every foreign entry dead")
    letters = {d.job_id: d for d in await queue.dead_letters()}
    for job_id, (_, reason) in entries.items():
        assert reason in letters[job_id].error, (job_id, letters[job_id].error)
        assert letters[job_id].attempts == 1
    by_entry = sorted(d.error for job_id, d in letters.items() if job_id.startswith("entry-"))
    assert len(by_entry) == 3
    assert any("no job id" in e for e in by_entry)
    assert any("is 5,000 bytes long" in e for e in by_entry)
    assert any("has 1,100 characters" in e for e in by_entry)
    assert handled == [7] and consumer.running
    assert (await queue.stats()).active == 0


async def test_a_well_formed_entry_without_a_job_record_runs(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    """Another producer that XADDs streamq's format directly: its jobs run like any other (and
    one that fails lands in the dead letters, from where it can be replayed)."""
    queue = qm.get_queue(queue_name, Order)
    await redis.xadd(_stream(queue_name), {"j": "orphan-ok", "p": _envelope({"order_id": 1})})
    await redis.xadd(_stream(queue_name), {"j": "orphan-bad", "p": _envelope({"order_id": -1})})
    handled: list[int] = []

    def handle(job: streamq.Job[Order]) -> int:
        handled.append(job.data.order_id)
        if job.data.order_id < 0 and handled.count(job.data.order_id) == 1:
            raise ValueError("negative order")
        return job.data.order_id

    await queue.consume(handle, max_retries=0)
    await wait_until(lambda: _dead(queue, 1), what="the failed orphan's dead letter")
    assert await queue.get_job("orphan-ok") is None, "no record is invented for it"
    assert (await queue.stats()).completed == 1
    (letter,) = await queue.dead_letters()
    assert letter.job_id == "orphan-bad" and "negative order" in letter.error
    assert await queue.retry_dead("orphan-bad") == 1
    assert await queue.wait_for("orphan-bad", timeout=5) == -1
    assert sorted(handled) == [-1, -1, 1]


class _RunsCode:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


async def test_a_pickle_is_never_unpickled(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    bomb = pickle.dumps(_RunsCode(marker))
    queue = qm.get_queue(queue_name)  # untyped: any data is accepted, as bytes
    await redis.xadd(_stream(queue_name), {"j": "bare-pickle", "p": bomb})
    await redis.xadd(_stream(queue_name), {"j": "wrapped-pickle", "p": _envelope(bomb)})
    received: list[Any] = []
    await queue.consume(lambda job: received.append(job.data), max_retries=0)
    await wait_until(lambda: _dead(queue, 1), what="the bare pickle's dead letter")
    await wait_until(lambda: len(received) == 1, what="the wrapped pickle to reach the handler")
    assert received == [bomb], "the handler gets the bytes, not an object"
    (letter,) = await queue.dead_letters()
    assert letter.job_id == "bare-pickle" and letter.data == bomb
    assert not marker.exists()


def test_streamq_has_no_way_to_run_data_as_code() -> None:
    """No module of the package imports a deserializer that can run code, or calls eval/exec;
    no script loads Lua code from data. (A check of the source, not a proof: it catches the
    plain ways in.)"""
    unsafe_modules = {
        "pickle",
        "_pickle",
        "cPickle",
        "marshal",
        "shelve",
        "dill",
        "cloudpickle",
        "jsonpickle",
        "yaml",
    }
    unsafe_calls = {"eval", "exec", "compile", "__import__"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in unsafe_calls:
                    found.append(f"{path.name}:{node.lineno} calls {node.func.id}")
                continue
            else:
                continue
            found += [
                f"{path.name}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] in unsafe_modules
            ]
    for path in sorted(PACKAGE.rglob("*.lua")):
        text = path.read_text()
        found += [f"{path.name} uses {word}" for word in ("loadstring", "load(") if word in text]
    assert found == []
    assert len(list(PACKAGE.rglob("*.py"))) > 20, "the scan saw the package"


# -- odd job ids and queue names ---------------------------------------------------------------

ODD_IDS = [
    "with space",
    "tab\there",
    "new\nline\r\n",
    "colon:a:b",
    "{braces}",
    "}{",
    "ünïcødé-日本語-🚀",
    "\x00nul",
    "r:looks-like-a-dead-record-field",
    "@1700000000000",
    "x" * 1024,
]


@pytest.mark.cluster
async def test_odd_job_ids_round_trip(qm: streamq.QueueManager, queue_name: str) -> None:
    """enqueue -> consume -> get_job -> dead letters -> retry_dead -> wait_for, dedup, cancel
    and a recurring schedule, for ids with whitespace, braces, colons, unicode, NUL and the
    longest allowed."""
    queue = qm.get_queue(queue_name)
    runs: dict[str, int] = {}

    def handle(job: streamq.Job[Any]) -> Any:
        runs[job.id] = runs.get(job.id, 0) + 1
        if runs[job.id] == 1 and job.id in ODD_IDS:
            raise RuntimeError(f"first run of {job.id!r}")
        return job.data

    await queue.consume(handle, max_retries=0)
    for n, job_id in enumerate(ODD_IDS):
        assert await queue.enqueue(n, job_id=job_id) == job_id
    await wait_until(lambda: _dead(queue, len(ODD_IDS)), what="every odd id dead")
    letters = {d.job_id: d for d in await queue.dead_letters()}
    assert set(letters) == set(ODD_IDS)
    for n, job_id in enumerate(ODD_IDS):
        assert letters[job_id].data == n
        info = await queue.get_job(job_id)
        assert info is not None and (info.id, info.state) == (job_id, "dead")
        with pytest.raises(streamq.JobFailed) as failed:
            await queue.wait_for(job_id, timeout=5)
        assert failed.value.job_id == job_id
    assert await queue.retry_dead(ODD_IDS[0]) == 1
    assert await queue.retry_dead() == len(ODD_IDS) - 1
    for n, job_id in enumerate(ODD_IDS):
        assert await queue.wait_for(job_id, timeout=10) == n
        info = await queue.get_job(job_id)
        assert info is not None and info.state == "completed" and info.attempts == 1

    for job_id in ODD_IDS:  # dedup while unfinished, then cancel
        assert await queue.enqueue("later", job_id=job_id, start_delay=60) == job_id
        assert await queue.enqueue("again", job_id=job_id, start_delay=60) == job_id
        assert await queue.cancel(job_id)
        info = await queue.get_job(job_id)
        assert info is not None and info.state == "cancelled"
    assert (await queue.stats()).delayed == 0

    schedule = "every {tick}\n日本"
    await queue.schedule_recurring(schedule, "tick", interval_seconds=0.2)
    await wait_until(lambda: any(j.startswith(schedule + "@") for j in runs), what="a tick")
    assert await queue.cancel_recurring(schedule)


@pytest.mark.parametrize(
    ("job_id", "message"),
    [
        ("x" * 1025, "has 1,025 characters: use at most 1,024"),
        ("", "non-empty str"),
        (b"bytes", "non-empty str"),
        ("lone \ud800 surrogate", "not valid Unicode"),
    ],
)
async def test_bad_job_ids_are_refused_before_anything_is_sent(
    qm: streamq.QueueManager, queue_name: str, job_id: Any, message: str
) -> None:
    queue = qm.get_queue(queue_name)
    for call in (
        lambda: queue.enqueue(1, job_id=job_id),
        lambda: queue.get_job(job_id),
        lambda: queue.cancel(job_id),
        lambda: queue.wait_for(job_id, timeout=1),
        lambda: queue.retry_dead(job_id),
        lambda: queue.schedule_recurring(job_id, 1, interval_seconds=1),
    ):
        with pytest.raises(streamq.InvalidArgument, match=message):
            await call()
    assert (await queue.stats()).waiting == 0


async def test_a_bad_id_does_not_fail_the_jobs_enqueued_beside_it(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    """Concurrent enqueues share script calls: a job id that could not be sent would have
    failed all of them."""
    queue = qm.get_queue(queue_name)
    outcomes: dict[int, str] = {}

    async def enqueue(n: int) -> None:
        job_id = f"ok-{n}" if n % 5 else f"bad-{n}-\udc80"
        try:
            await queue.enqueue(n, job_id=job_id)
            outcomes[n] = "ok"
        except streamq.InvalidArgument:
            outcomes[n] = "refused"

    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(enqueue, n)
    assert [n for n, o in outcomes.items() if o == "refused"] == sorted(range(0, 50, 5))
    assert (await queue.stats()).waiting == 40


@pytest.mark.parametrize(
    "name", ["q" * 200, "日本語:キュー🚀", "a:b:c", "job:x", "-", "\x00", "q.with.dots"]
)
async def test_queue_names_at_the_edges_work(qm: streamq.QueueManager, name: str) -> None:
    queue = qm.get_queue(name)
    await queue.consume(lambda job: job.data * 2)
    assert await queue.wait_for(await queue.enqueue(21), timeout=5) == 42


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("q" * 201, "has 201 characters: use 1 to 200"),
        ("", "has 0 characters"),
        ("a{b", "contains '{'"),
        ("a}b", "contains '}'"),
        ("a b", "contains ' '"),
        ("a\tb", "contains '\\\\t'"),
        ("a\nb", "contains '\\\\n'"),
        ("em\u2003space", "contains"),
        ("lone\ud800", "not valid Unicode"),
        (7, "must be a str"),
    ],
)
def test_bad_queue_names_are_refused(name: Any, message: str) -> None:
    qm = streamq.QueueManager("redis://127.0.0.1:1/0")
    with pytest.raises(streamq.InvalidArgument, match=message):
        qm.get_queue(name)

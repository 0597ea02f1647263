"""Pydantic models as queue types: validated at enqueue (nothing written on failure) and by the
consumer (a payload that does not validate is a dead letter naming the problem), results stored
as the model's JSON, the schema tools check against is pydantic's, and streamq works without
pydantic."""

from __future__ import annotations

import datetime
import enum
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import anyio
import msgspec
import pydantic
import pytest
import redis.asyncio as aioredis
from pydantic.dataclasses import dataclass as pydantic_dataclass

import streamq
from streamq.ops.process import load_handler
from streamq.store.schema import problem_in, schema_of, schema_title
from streamq.store.serialization import Codec, decode_result, encode_result

from ..helpers import run_example, wait_until

README = Path(__file__).parent.parent.parent / "README.md"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    city: str
    zip: str = pydantic.Field(pattern=r"^\d{5}$")


class Order(pydantic.BaseModel):
    id: int
    placed_at: datetime.datetime
    color: Color
    lines: list[Annotated[int, pydantic.Field(gt=0)]]
    ship_to: Address | None = None
    note: str | None = None


class Receipt(pydantic.BaseModel):
    order_id: int = pydantic.Field(alias="orderId")
    total: float

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def total_cents(self) -> int:
        return round(self.total * 100)


def an_order(number: int = 1) -> Order:
    return Order(
        id=number,
        placed_at=datetime.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=datetime.UTC),
        color=Color.BLUE,
        lines=[1, 2, number],
        ship_to=Address(city="Lyon", zip="69001"),
    )


async def handle_order(job: streamq.Job[Order]) -> None:
    """A handler for the worker command (``module:function``), typed ``Job[Order]``."""


async def _keys_of(redis: aioredis.Redis, queue_name: str) -> list[bytes]:
    return sorted(cast("list[bytes]", await redis.keys(f"streamq:{{{queue_name}}}:*")))


@pytest.mark.anyio
async def test_a_nested_model_round_trips_and_a_dict_that_validates_is_accepted(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name, Order)
    seen: list[Any] = []
    await queue.consume(lambda job: seen.append(job.data))
    order = an_order()
    await queue.wait_for(await queue.enqueue(order), timeout=10)
    # Like a Struct-typed queue, a dict is taken when it validates; the handler gets the model.
    as_dict = {"id": 2, "placed_at": "2026-01-02T03:04:05Z", "color": "red", "lines": [3]}
    await queue.wait_for(await queue.enqueue(as_dict), timeout=10)  # type: ignore[arg-type]
    assert seen[0] == order and isinstance(seen[0], Order)
    assert seen[1] == Order(
        id=2,
        placed_at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        color=Color.RED,
        lines=[3],
    )


@pytest.mark.anyio
async def test_a_returned_model_is_stored_as_its_json(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name, Order)

    async def bill(job: streamq.Job[Order]) -> Receipt:
        return Receipt(orderId=job.data.id, total=12.5)

    await queue.consume(bill)
    result = await queue.call(an_order(7), timeout=10)
    # model_dump(mode="json", by_alias=True): aliases and computed fields, as an API answers.
    assert result == {"orderId": 7, "total": 12.5, "total_cents": 1250}
    assert Receipt.model_validate(result) == Receipt(orderId=7, total=12.5)


@pytest.mark.anyio
async def test_bad_data_is_refused_at_enqueue_and_nothing_is_written(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name, Order)
    bad = {**an_order().model_dump(mode="json"), "lines": [1, 0], "color": "green"}
    with pytest.raises(streamq.EncodeError) as caught:
        await queue.enqueue(bad)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"queue {queue_name!r}: data is not a valid Order (")
    assert "Input should be 'red' or 'blue' - at `$.color`" in message
    assert "Input should be greater than 0 - at `$.lines[1]`" in message
    assert message.endswith("fix the data or the queue's type")
    assert caught.value.queue == queue_name
    with pytest.raises(streamq.EncodeError, match=r"not a valid Order .*`\$\.id`"):
        await queue.enqueue(Address(city="Lyon", zip="69001"))  # type: ignore[arg-type]
    # One bad item refuses them all.
    items: list[Any] = [an_order(1), {**bad, "color": "red", "lines": [1], "ship_to": {"zip": 1}}]
    with pytest.raises(streamq.EncodeError, match=r"Field required - at `\$\.ship_to\.city`"):
        await queue.enqueue_many(items)
    with pytest.raises(streamq.EncodeError, match="not a valid Order"):
        await qm.enqueue_flow(streamq.Step(queue_name, {"id": "nine"}))
    assert await _keys_of(redis, queue_name) == []
    assert (await queue.stats()).waiting == 0


@pytest.mark.anyio
async def test_a_payload_that_does_not_validate_is_dead_lettered_with_the_reason(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name, Order)
    stream = f"streamq:{{{queue_name}}}:stream"
    # What an older producer (or another program) wrote: the envelope is fine, the data is not.
    stale = {**an_order().model_dump(mode="json"), "id": "not a number"}
    await redis.xadd(
        stream, {"j": "stale", "p": msgspec.msgpack.encode([1.0, 0, None, None, stale])}
    )
    not_json = msgspec.msgpack.encode([1.0, 0, None, None, msgspec.msgpack.Ext(1, b"?")])
    await redis.xadd(stream, {"j": "not-json", "p": not_json})

    handled: list[int] = []
    await queue.consume(lambda job: handled.append(job.data.id), max_retries=0)
    await queue.wait_for(await queue.enqueue(an_order(3)), timeout=10)
    assert handled == [3], "the consumer goes on"

    async def two_dead() -> bool:
        return (await queue.stats()).dead == 2

    await wait_until(two_dead, what="two dead letters")
    letters = {d.job_id: d for d in await queue.dead_letters()}
    error = letters["stale"].error
    assert error.startswith("undecodable entry") and "ValidationError" in error
    assert (
        "Input should be a valid integer, unable to parse string as an integer - at `$.id`" in error
    )
    assert "the data is not JSON-like" in letters["not-json"].error
    assert isinstance(letters["stale"].data, bytes), "kept as written, for a fix and a replay"


@pytest.mark.anyio
async def test_enqueue_many_flows_and_recurring_schedules_carry_models(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name, Order)
    seen: list[Order] = []
    got_recurring = anyio.Event()

    async def handle(job: streamq.Job[Order]) -> int:
        seen.append(job.data)
        if job.data.id == 100:
            got_recurring.set()
        return job.data.id

    await queue.consume(handle)
    ids = await queue.enqueue_many([an_order(n) for n in range(1, 6)])
    for job_id in ids:
        await queue.wait_for(job_id, timeout=10)
    assert sorted(seen, key=lambda o: o.id) == [an_order(n) for n in range(1, 6)]

    root = await qm.enqueue_flow(
        streamq.chain(
            streamq.Step(queue_name, an_order(10)), streamq.Step(queue_name, an_order(11))
        )
    )
    assert await queue.wait_for(root, timeout=10) == 11

    await queue.schedule_recurring("every", an_order(100), interval_seconds=0.1)
    with anyio.fail_after(10):
        await got_recurring.wait()
    await queue.cancel_recurring("every")
    assert an_order(100) in seen and an_order(10) in seen


@pytest.mark.anyio
async def test_the_schema_for_tools_is_the_models_json_schema(
    qm: streamq.QueueManager, queue_name: str, redis: aioredis.Redis
) -> None:
    queue = qm.get_queue(queue_name, Order)
    await queue.enqueue(an_order())
    stored = await redis.get(f"streamq:{{{queue_name}}}:schema")
    assert stored is not None
    assert msgspec.json.decode(stored) == Order.model_json_schema()
    assert schema_title(stored) == "Order"
    # The command line's check reads it: the path of the problem in the data.
    good = an_order().model_dump(mode="json")
    assert problem_in(good, stored) is None
    assert problem_in({**good, "color": "green"}, stored) == (
        "at `$.color`: expected one of 'red', 'blue', got 'green'"
    )
    assert problem_in({**good, "ship_to": {"city": "X"}}, stored) == (
        "at `$.ship_to`: missing required field 'zip'"
    )


class Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True, extra="forbid")

    when: datetime.datetime
    user: int = pydantic.Field(alias="userId")
    raw: pydantic.Json[list[int]]

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def count(self) -> int:
        return len(self.raw)


class Cat(pydantic.BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(pydantic.BaseModel):
    kind: Literal["dog"]
    good: bool


Pet = Annotated[Cat | Dog, pydantic.Field(discriminator="kind")]


@pydantic_dataclass
class Point:
    x: int
    y: int = pydantic.Field(ge=0)


def test_strict_aliased_and_json_fields_round_trip() -> None:
    # The payload is the JSON the model validates back from (computed fields left out), and
    # the consumer validates it as JSON, where a strict model takes its ISO datetime.
    codec: Codec[Strict] = Codec("q", Strict)
    value = Strict.model_validate(
        {"when": datetime.datetime(2026, 5, 6, 7, 8), "userId": 3, "raw": "[1, 2]"}
    )
    assert codec.decode(codec.encode(value, enqueued_at=1.0)).data == value


@pytest.mark.parametrize(
    ("type_", "good", "bad", "problem"),
    [
        (
            list[Cat],
            [Cat(kind="cat", lives=9), {"kind": "cat", "lives": 7}],
            [{"kind": "cat"}],
            "`$[0].lives`",
        ),
        (
            Pet,
            Dog(kind="dog", good=True),
            {"kind": "cow"},
            "does not match any of the expected tags",
        ),
        (Cat | None, None, {"kind": "dog"}, "Input should be 'cat'"),
        (Point, Point(x=1, y=2), {"x": 1, "y": -1}, "greater than or equal to 0 - at `$.y`"),
    ],
)
def test_types_built_of_models_are_validated_by_pydantic(
    type_: Any, good: Any, bad: Any, problem: str
) -> None:
    codec: Codec[Any] = Codec("q", type_)
    decoded = codec.decode(codec.encode(good, enqueued_at=1.0)).data
    assert decoded == pydantic.TypeAdapter(type_).validate_python(good)
    with pytest.raises(streamq.EncodeError, match=re.escape(problem)):
        codec.encode(bad, enqueued_at=1.0)
    assert schema_of(type_) == msgspec.json.encode(pydantic.TypeAdapter(type_).json_schema())


def test_models_in_results_and_in_untyped_data_encode_as_json() -> None:
    receipt = Receipt(orderId=1, total=2.0)
    assert decode_result(encode_result([receipt])) == [
        {"orderId": 1, "total": 2.0, "total_cents": 200}
    ]
    untyped: Codec[Any] = Codec("q", Any)
    payload = untyped.encode({"r": receipt}, enqueued_at=1.0)
    assert untyped.decode(payload).data == {"r": {"orderId": 1, "total": 2.0}}
    with pytest.raises(streamq.EncodeError, match="Encoding objects of type object is unsupported"):
        untyped.encode(object(), enqueued_at=1.0)


def test_the_worker_command_takes_the_queue_type_from_a_job_hint() -> None:
    handler, type_ = load_handler(f"{__name__}:handle_order")
    assert handler is handle_order and type_ is Order


def test_streamq_works_without_pydantic(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    script = tmp_path / "no_pydantic.py"
    script.write_text(
        textwrap.dedent(
            """
            import dataclasses, sys
            sys.modules["pydantic"] = None  # import pydantic now raises ImportError
            import anyio, streamq

            @dataclasses.dataclass
            class Ping:
                host: str

            async def main() -> None:
                async with streamq.QueueManager(sys.argv[1]) as qm:
                    queue = qm.get_queue(sys.argv[2], Ping)
                    await queue.consume(lambda job: job.data.host.upper())
                    print(await queue.call(Ping("a"), timeout=10))
                    try:
                        await queue.enqueue({"host": 1})
                    except streamq.EncodeError as exc:
                        print("refused:", exc)
                assert sys.modules["pydantic"] is None

            anyio.run(main)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), redis_url, queue_name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "A"
    assert f"refused: queue {queue_name!r}: data is not a valid Ping" in done.stdout


def test_streamq_does_not_import_pydantic_for_other_types() -> None:
    code = (
        "import sys, dataclasses, streamq\n"
        "from streamq.store.serialization import Codec\n"
        "from streamq.store.schema import schema_of\n"
        "Codec('q', dict[str, int]).encode({'a': 1}, enqueued_at=1.0)\n"
        "assert schema_of(int) is not None\n"
        "print('pydantic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_readme_pydantic_example_prints_what_the_readme_shows(
    redis_url: str, tmp_path: Path
) -> None:
    text = README.read_text()
    section = text[text.index("\n### Pydantic models\n") :]
    code, shown = re.findall(r"```(?:python|text)\n(.*?)```", section, flags=re.DOTALL)[:2]
    done = run_example(code, redis_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown

"""The check of JSON data against a queue type's recorded schema agrees with msgspec itself:
data it accepts decodes into the type, data it refuses does not, and the problem names the
path in the data."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

import msgspec
import pytest

from streamq.store.schema import problem_in, schema_of, schema_title


class Address(msgspec.Struct):
    city: str
    zip: Annotated[str, msgspec.Meta(pattern=r"^\d{5}$")]


class Order(msgspec.Struct):
    id: int
    kind: Literal["a", "b"]
    lines: list[Annotated[int, msgspec.Meta(gt=0)]]
    ship_to: Address | None = None
    tags: dict[str, float] = {}
    pair: tuple[int, str] | None = None


@dataclasses.dataclass
class Ping:
    host: str


GOOD = {"id": 1, "kind": "a", "lines": [1, 2], "ship_to": {"city": "X", "zip": "12345"}}
BAD = {
    "missing id": ({"kind": "a", "lines": []}, "at `$`: missing required field 'id'"),
    "id a string": ({**GOOD, "id": "1"}, "at `$.id`: expected integer, got string"),
    "id a float": ({**GOOD, "id": 1.5}, "at `$.id`: expected integer, got number"),
    "id a bool": ({**GOOD, "id": True}, "at `$.id`: expected integer, got boolean"),
    "kind unknown": ({**GOOD, "kind": "c"}, "at `$.kind`: expected one of 'a', 'b'"),
    "line zero": ({**GOOD, "lines": [1, 0]}, "at `$.lines[1]`: expected a number > 0"),
    "bad zip": (
        {**GOOD, "ship_to": {"city": "X", "zip": "1"}},
        "at `$.ship_to.zip`: expected a string matching",
    ),
    "address a list": ({**GOOD, "ship_to": []}, "at `$.ship_to`: expected Address or null"),
    "tag a string": ({**GOOD, "tags": {"x": "y"}}, "at `$.tags.x`: expected number"),
    "pair swapped": ({**GOOD, "pair": ["a", 1]}, "at `$.pair[0]`: expected integer"),
    "not an object": (42, "at `$`: expected object, got integer"),
}


def test_good_data_fits_and_decodes() -> None:
    schema = schema_of(Order)
    assert schema is not None and schema_title(schema) == "Order"
    assert problem_in(GOOD, schema) is None
    msgspec.convert(GOOD, Order)


@pytest.mark.parametrize("case", BAD)
def test_bad_data_is_refused_at_its_path_as_msgspec_refuses_it(case: str) -> None:
    data, expected = BAD[case]
    problem = problem_in(data, schema_of(Order) or b"")
    assert problem is not None and expected in problem, problem
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(data, Order, strict=True)


def test_untyped_queues_and_other_types() -> None:
    assert schema_of(Any) is None
    ping = schema_of(Ping)
    assert ping is not None and schema_title(ping) == "Ping"
    assert problem_in({"host": 3}, ping) == "at `$.host`: expected string, got integer"
    ints = schema_of(list[int])
    assert ints is not None and schema_title(ints) is None
    assert problem_in([1, "2"], ints) == "at `$[1]`: expected integer, got string"

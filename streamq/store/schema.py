"""A queue's type as a JSON Schema kept in Redis, so tools that do not have the type (the command
line) check data against it before they enqueue.

The schema is msgspec's (``msgspec.json.schema``), or pydantic's for a pydantic model
(``model_json_schema()``, validation mode: what the consumer accepts). :func:`problem_in`
checks JSON data against the part of JSON Schema that msgspec writes (types, ``$ref``, ``anyOf``,
``enum``, ``const``, properties, items and the numeric, length and pattern bounds), naming the
first problem by its path in the user's data (``$.to``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import msgspec

from .serialization import is_pydantic_type

__all__ = ("problem_in", "schema_of", "schema_title")

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_of(type_: Any) -> bytes | None:
    """The JSON Schema of a queue's type, or None for an untyped queue (or a type msgspec cannot
    describe: then nothing is checked)."""
    if type_ is Any:
        return None
    if is_pydantic_type(type_):
        from .pydantic_codec import json_schema

        return json_schema(type_)
    try:
        return msgspec.json.encode(msgspec.json.schema(type_))
    except (TypeError, ValueError):
        return None


def schema_title(schema: bytes | str) -> str | None:
    """The type's name as the schema gives it (a Struct's, a dataclass's, a model's), if it
    does."""
    root = msgspec.json.decode(schema)
    if "$ref" in root:
        name = root["$ref"].rsplit("/", 1)[-1]
        return str(root.get("$defs", {}).get(name, {}).get("title", name))
    title = root.get("title")
    return None if title is None else str(title)


def problem_in(data: Any, schema: bytes | str) -> str | None:
    """What is wrong with ``data`` (decoded JSON) for the schema, first problem only; None when
    it fits."""
    root = msgspec.json.decode(schema)
    return _check(data, root, root.get("$defs", {}), "$")


def _check(value: Any, schema: dict[str, Any], defs: dict[str, Any], path: str) -> str | None:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _check(value, defs.get(name, {}), defs, path)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            problems = [_check(value, option, defs, path) for option in schema[key]]
            if all(problems):
                # One option of the value's kind (the object of `Address | None`): its problem
                # says where inside the value it went wrong.
                near = [
                    p
                    for o, p in zip(schema[key], problems, strict=True)
                    if _kind_fits(value, o, defs)
                ]
                if len(near) == 1:
                    return near[0]
                fits = " or ".join(_described(option, defs) for option in schema[key])
                return f"at `{path}`: expected {fits}, got {_json_name(value)}"
    if "const" in schema and value != schema["const"]:
        return f"at `{path}`: expected {schema['const']!r}, got {value!r}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        return f"at `{path}`: expected one of {allowed}, got {value!r}"
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, kind) for kind in kinds):
            return f"at `{path}`: expected {' or '.join(kinds)}, got {_json_name(value)}"
    if isinstance(value, dict):
        return _check_object(value, schema, defs, path)
    if isinstance(value, list):
        return _check_array(value, schema, defs, path)
    if isinstance(value, str):
        return _check_string(value, schema, path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_number(value, schema, path)
    return None


def _check_object(
    value: dict[str, Any], schema: dict[str, Any], defs: dict[str, Any], path: str
) -> str | None:
    properties = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            return f"at `{path}`: missing required field {name!r}"
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in properties:
            problem = _check(item, properties[name], defs, where)
        elif isinstance(schema.get("additionalProperties"), dict):
            problem = _check(item, schema["additionalProperties"], defs, where)
        elif schema.get("additionalProperties") is False:
            problem = f"at `{path}`: unknown field {name!r}"
        else:
            problem = None
        if problem:
            return problem
    return None


def _check_array(
    value: list[Any], schema: dict[str, Any], defs: dict[str, Any], path: str
) -> str | None:
    if len(value) < schema.get("minItems", 0):
        return f"at `{path}`: expected at least {schema['minItems']} items, got {len(value)}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"at `{path}`: expected at most {schema['maxItems']} items, got {len(value)}"
    fixed = schema.get("prefixItems", [])
    for index, item in enumerate(value):
        if index < len(fixed):
            problem = _check(item, fixed[index], defs, f"{path}[{index}]")
        elif isinstance(schema.get("items"), dict):
            problem = _check(item, schema["items"], defs, f"{path}[{index}]")
        else:
            problem = None
        if problem:
            return problem
    return None


def _check_string(value: str, schema: dict[str, Any], path: str) -> str | None:
    if len(value) < schema.get("minLength", 0):
        return f"at `{path}`: expected at least {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"at `{path}`: expected at most {schema['maxLength']} characters"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return f"at `{path}`: expected a string matching {schema['pattern']!r}"
    return None


#: JSON Schema's numeric bounds: (keyword, whether a value keeps it, how it reads).
_BOUNDS: tuple[tuple[str, Callable[[float, float], bool], str], ...] = (
    ("minimum", operator.ge, ">="),
    ("maximum", operator.le, "<="),
    ("exclusiveMinimum", operator.gt, ">"),
    ("exclusiveMaximum", operator.lt, "<"),
)


def _check_number(value: float, schema: dict[str, Any], path: str) -> str | None:
    for key, holds, sign in _BOUNDS:
        if key in schema and not holds(value, schema[key]):
            return f"at `{path}`: expected a number {sign} {schema[key]}, got {value}"
    if "multipleOf" in schema and value % schema["multipleOf"]:
        return f"at `{path}`: expected a multiple of {schema['multipleOf']}, got {value}"
    return None


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, _JSON_TYPES.get(kind, ()))


def _kind_fits(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return _kind_fits(value, defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds or []
    return any(_is(value, kind) for kind in kinds)


def _described(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return str(defs.get(name, {}).get("title", name))
    kinds = schema.get("type", "a value")
    return " or ".join(kinds) if isinstance(kinds, list) else str(kinds)


def _json_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    for name, types in _JSON_TYPES.items():
        if name != "number" and isinstance(value, types):
            return name
    return "number"

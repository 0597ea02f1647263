"""Pydantic (v2) models as queue types: validation and JSON Schema by pydantic itself.

Imported only once a queue's type turns out to be built of pydantic models (which means pydantic
is already imported), so streamq works without pydantic and queues of other types never reach
this module.

On the wire the data is what ``model_dump(mode="json", by_alias=True, round_trip=True)`` gives,
inside the same MessagePack envelope as any other queue's (the command line and the inspection
tools read it like any data). Decoding takes that JSON-shaped data back through pydantic's JSON
validation, the mode ``model_dump(mode="json")`` round-trips with: strict models accept their ISO
datetimes there, and ``Json[...]`` fields their strings.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, get_args

import msgspec
import pydantic
from pydantic.dataclasses import is_pydantic_dataclass
from pydantic.fields import FieldInfo

from ..errors import EncodeError
from .serialization import Envelope

__all__ = ("ModelDecoder", "built_of_models", "json_schema")

T = TypeVar("T")

#: Problems a dead letter or an ``EncodeError`` lists before it says how many more there are.
_SHOWN_PROBLEMS = 3

_envelope_decoder: msgspec.msgpack.Decoder[Envelope[Any]] = msgspec.msgpack.Decoder(Envelope[Any])
_json_encoder = msgspec.json.Encoder()


def built_of_models(type_: Any) -> bool:
    """Whether pydantic should handle ``type_``: a model, a pydantic dataclass, or a type made
    of them (``list[Model]``, ``A | B``, ``Annotated[..., Field(discriminator=...)]``)."""
    # A parametrized builtin (list[Model]) is no class in issubclass's sense.
    if (
        isinstance(type_, type)
        and not get_args(type_)
        and (issubclass(type_, pydantic.BaseModel) or is_pydantic_dataclass(type_))
    ):
        return True
    return any(isinstance(arg, FieldInfo) or built_of_models(arg) for arg in get_args(type_))


class ModelDecoder(Generic[T]):
    """Decodes a payload's envelope and validates its data with pydantic; a payload that does
    not validate raises ``msgspec.ValidationError``, as msgspec's decoders do, so callers treat
    both kinds of queue alike (a dead letter, an ``EncodeError`` at enqueue)."""

    __slots__ = ("_adapter",)

    def __init__(self, queue: str, type_: Any) -> None:
        try:
            self._adapter: pydantic.TypeAdapter[T] = pydantic.TypeAdapter(type_)
        except pydantic.PydanticUserError as exc:
            raise EncodeError(
                f"queue {queue!r}: pydantic cannot validate type {type_!r} ({exc}); fix the"
                " model or use one pydantic supports",
                queue=queue,
            ) from exc

    def decode(self, buf: bytes, /) -> Envelope[T]:
        envelope = _envelope_decoder.decode(buf)
        try:
            # Tuple keys or MessagePack extensions from another producer fail here.
            text = _json_encoder.encode(envelope.data)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise msgspec.ValidationError(f"the data is not JSON-like ({exc}) - at `$`") from exc
        try:
            data = self._adapter.validate_json(text)
        except pydantic.ValidationError as exc:
            raise msgspec.ValidationError(_problems(exc)) from exc
        return Envelope(
            envelope.enqueued_at,
            envelope.priority,
            envelope.max_retries,
            envelope.timeout,
            data,
            envelope.meta,
        )


def json_schema(type_: Any) -> bytes | None:
    """The type's JSON Schema for validation (``Model.model_json_schema()`` for a model), or
    None if pydantic cannot write one."""
    try:
        return _json_encoder.encode(pydantic.TypeAdapter(type_).json_schema())
    except (pydantic.PydanticUserError, TypeError, ValueError):
        return None


def _problems(exc: pydantic.ValidationError) -> str:
    """Pydantic's errors the way msgspec words its one: ``<problem> - at `$.path```."""
    errors = exc.errors(include_url=False)
    shown = [f"{error['msg']} - at `{_path(error['loc'])}`" for error in errors[:_SHOWN_PROBLEMS]]
    if len(errors) > _SHOWN_PROBLEMS:
        shown.append(f"and {len(errors) - _SHOWN_PROBLEMS} more")
    return "; ".join(shown)


def _path(loc: tuple[int | str, ...]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)

"""MessagePack encoding of payloads, results and records, with encoders and decoders built once.

A stream entry carries the job id (field ``j``) and an encoded :class:`Envelope` (field ``p``); the
envelope holds the job's metadata and its data. Nothing here ever unpickles.

Pydantic models encode as their JSON (``model_dump(mode="json", by_alias=True)``) wherever they
appear; a queue whose type is built of them validates with pydantic (``pydantic_codec.py``,
imported only then, so pydantic stays optional).
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Annotated, Any, Generic, Protocol, TypeVar

import msgspec

from ..errors import EncodeError
from ..ops.hooks import carried_by

if TYPE_CHECKING:
    from ..ops.hooks import Hooks
    from .pydantic_codec import ModelDecoder

__all__ = (
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_PRIORITY",
    "Codec",
    "DeadRecord",
    "Envelope",
    "RecurringDef",
    "decode_result",
    "encode_result",
    "envelope_of",
    "in_user_terms",
    "is_pydantic_type",
)

T = TypeVar("T")


def _unsupported(value: Any) -> TypeError:
    return TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


def _model_data(value: Any) -> Any:
    """A pydantic model in a job's data as the JSON it validates back from (computed fields
    left out, ``Json`` fields as strings). msgspec calls this only for what it cannot encode
    itself, so other data pays nothing."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", by_alias=True, round_trip=True)
    raise _unsupported(value)


def _model_result(value: Any) -> Any:
    """A pydantic model in a result or checkpoint as the JSON an API would answer with."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    raise _unsupported(value)


_encoder = msgspec.msgpack.Encoder(enc_hook=_model_data)
_result_encoder = msgspec.msgpack.Encoder(enc_hook=_model_result)
_any_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder()


#: The largest encoded job (``p``, the envelope: the data and ~20 bytes of metadata) that
#: ``enqueue`` accepts and a consumer decodes, unless the manager's ``max_payload_bytes`` says
#: otherwise.
DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024
#: Priorities are kept exact in the staged set's scores (doubles) up to 2**20.
MAX_PRIORITY = 1_000_000


class Envelope(msgspec.Struct, Generic[T], array_like=True, frozen=True):
    enqueued_at: float
    # Bounded like the API's arguments: an entry someone else wrote with, say, a negative retry
    # count or a NaN timeout is refused at decoding (a dead letter naming the field).
    priority: Annotated[int, msgspec.Meta(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]
    max_retries: Annotated[int, msgspec.Meta(ge=0)] | None
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None
    data: T
    #: What hooks carry with the job (``Hooks.carry``: a trace context). Encoded only when
    #: there is some (a job without any is the 5-item array it was before), so shorter arrays
    #: decode with None.
    meta: dict[str, str] | None = None


_raw_envelope_decoder: msgspec.msgpack.Decoder[Envelope[msgspec.Raw]] = msgspec.msgpack.Decoder(
    Envelope[msgspec.Raw]
)


#: A path into the envelope's data (`$[4]`, `$[4].to`) is a path into the user's data.
_DATA_PATH = re.compile(r"`\$\[4\](?=[`.\[])")
_ENVELOPE_PATH = re.compile(r"`\$\[([0-35])\]`")
_ENVELOPE_FIELDS = ("enqueued_at", "priority", "max_retries", "timeout", "data", "meta")


def in_user_terms(error: Exception) -> str:
    """A decoding error with its path in the job's data (`$.to`), not in streamq's envelope
    around it (`$[4].to`); a bad envelope field is named."""
    text = _DATA_PATH.sub("`$", str(error))
    return _ENVELOPE_PATH.sub(
        lambda m: f"{m[0]} (the job's {_ENVELOPE_FIELDS[int(m[1])]}, in streamq's envelope)",
        text,
    )


class DeadRecord(msgspec.Struct, array_like=True, frozen=True):
    """What the dead letters keep besides the payload (stored apart, so scripts can replay it)."""

    job_id: str
    error: str
    attempts: int
    failed_at: float
    #: The handler's traceback (its end), when it raised; "" otherwise (and in older records).
    traceback: str = ""


_dead_record_decoder = msgspec.msgpack.Decoder(DeadRecord)


class RecurringDef(msgspec.Struct, array_like=True, frozen=True):
    """A recurring schedule as stored; the same arguments always encode to the same bytes."""

    interval_ms: int | None
    cron: str | None
    tz: str | None
    start_delay_ms: int
    priority: int
    #: The job's data, encoded (and checked against the queue's type) once.
    data: msgspec.Raw


_recurring_decoder = msgspec.msgpack.Decoder(RecurringDef)


def encode_recurring(definition: RecurringDef) -> bytes:
    return _encoder.encode(definition)


def decode_recurring(raw: bytes) -> RecurringDef:
    return _recurring_decoder.decode(raw)


def envelope_of(data: msgspec.Raw, *, enqueued_at: float, priority: int) -> bytes:
    """A payload around data that is already encoded (a recurring job's occurrence)."""
    return _encoder.encode((enqueued_at, priority, None, None, data))


def is_pydantic_type(type_: Any) -> bool:
    """Whether the type is a pydantic model or built of them; False without importing pydantic
    when nothing has (no type can then be one)."""
    if sys.modules.get("pydantic") is None:
        return False
    from .pydantic_codec import built_of_models

    return built_of_models(type_)


class HooksHost(Protocol):
    """Where a codec finds the hooks that may carry strings with a job (the manager)."""

    @property
    def hooks(self) -> tuple[Hooks, ...]: ...


class Codec(Generic[T]):
    """Encodes and validates one queue's payloads against its type and size limit."""

    __slots__ = ("_decoder", "_host", "_validates", "max_payload_bytes", "queue", "type")

    def __init__(
        self,
        queue: str,
        type_: Any,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        host: HooksHost | None = None,
    ) -> None:
        self.queue = queue
        self._host = host
        self.type = type_
        self.max_payload_bytes = max_payload_bytes
        # Either decodes and validates the envelope and its data in one call, so encode() and
        # the consumer stay the same code for both kinds of type.
        self._decoder: msgspec.msgpack.Decoder[Envelope[T]] | ModelDecoder[T]
        if is_pydantic_type(type_):
            from .pydantic_codec import ModelDecoder

            self._decoder = ModelDecoder(queue, type_)
        else:
            try:
                self._decoder = msgspec.msgpack.Decoder(Envelope[type_])
            except TypeError as exc:
                raise EncodeError(
                    f"queue {queue!r}: type {type_!r} is not supported by msgspec ({exc});"
                    " use a msgspec.Struct, a dataclass, a TypedDict, a builtin type or a"
                    " pydantic model",
                    queue=queue,
                ) from exc
        self._validates = type_ is not Any

    def encode(
        self,
        data: Any,
        *,
        enqueued_at: float,
        priority: int = 0,
        max_retries: int | None = None,
        timeout: float | None = None,
        job_id: str | None = None,
    ) -> bytes:
        """A job's payload; raises :class:`EncodeError` if ``data`` does not fit the queue.
        With ``job_id`` (a job to enqueue), what the host's hooks carry goes with it."""
        meta = None
        if job_id is not None and self._host is not None and (hooks := self._host.hooks):
            meta = carried_by(hooks, self.queue, job_id)
        # A tuple encodes as the Envelope's array does, without meta when there is none.
        envelope: tuple[Any, ...] = (enqueued_at, priority, max_retries, timeout, data)
        if meta is not None:
            envelope += (meta,)
        try:
            payload = _encoder.encode(envelope)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise EncodeError(
                f"queue {self.queue!r}: cannot encode {type(data).__name__} data as MessagePack"
                f" ({type(exc).__name__}: {exc}); pass msgspec-encodable data (builtins,"
                " msgspec.Struct, dataclasses) or pydantic models",
                queue=self.queue,
            ) from exc
        if len(payload) > self.max_payload_bytes:
            raise EncodeError(
                f"queue {self.queue!r}: the job is {len(payload):,} bytes encoded, over"
                f" max_payload_bytes ({self.max_payload_bytes:,}); keep big data elsewhere (a"
                " file, object storage) and enqueue a reference to it, or raise the"
                " QueueManager's max_payload_bytes (on producers and consumers alike)",
                queue=self.queue,
            )
        if self._validates:
            # Decoding exactly as the consumer will is the only check that cannot drift from it.
            try:
                self._decoder.decode(payload)
            except (msgspec.ValidationError, RecursionError) as exc:
                raise EncodeError(
                    f"queue {self.queue!r}: data is not a valid {_type_name(self.type)}"
                    f" ({in_user_terms(exc)}); fix the data or the queue's type",
                    queue=self.queue,
                ) from exc
        return payload

    def encode_job(
        self, job_id: str, data: Any, *, enqueued_at: float, priority: int
    ) -> tuple[str, bytes]:
        """``(job_id, payload)``: a job of ``enqueue_many``."""
        return job_id, self.encode(data, enqueued_at=enqueued_at, priority=priority, job_id=job_id)

    def encode_data(self, data: Any, priority: int = 0) -> msgspec.Raw:
        """``data`` alone, encoded and checked like :meth:`encode` does (with the priority its
        jobs will have: their payloads are then exactly the size checked here)."""
        payload = self.encode(data, enqueued_at=0.0, priority=priority)
        return _raw_envelope_decoder.decode(payload).data

    def decode(self, payload: bytes) -> Envelope[T]:
        """Raises ``msgspec.DecodeError`` (including ``ValidationError``) on a bad payload."""
        return self._decoder.decode(payload)

    def decode_data_or_raw(self, payload: bytes) -> Any:
        """The job's data for inspection: decoded when possible, else the raw payload bytes
        (always for one over the size limit: it may be anything)."""
        envelope = self.decode_for_inspection(payload)
        return payload if envelope is None else envelope.data

    def decode_for_inspection(self, payload: bytes) -> Envelope[T] | None:
        """The payload's envelope, or None when it cannot be decoded or is over the size limit
        (it may be anything)."""
        if len(payload) > self.max_payload_bytes:
            return None
        try:
            return self._decoder.decode(payload)
        except msgspec.DecodeError:
            return None


def encode_result(value: Any) -> bytes:
    return _result_encoder.encode(value)


def decode_result(raw: bytes | None) -> Any:
    return None if raw is None else _any_decoder.decode(raw)


def encode_dead_record(record: DeadRecord) -> bytes:
    return _encoder.encode(record)


def decode_dead_record(raw: bytes) -> DeadRecord:
    return _dead_record_decoder.decode(raw)


def _type_name(type_: Any) -> str:
    return getattr(type_, "__name__", repr(type_))

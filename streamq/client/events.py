"""Reading a queue's lifecycle events (``Queue.events``): the capped stream the finishing,
enqueue and control scripts write to in the same call as each transition, read with blocking
XREADs from any process and resumable by event id."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

import msgspec
from redis.exceptions import RedisError

from ..errors import InvalidArgument
from ..job import Event, EventType
from ..store.serialization import decode_result
from .redis_errors import as_streamq_error

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from ..transport.connection import Client

__all__ = ("check_since", "read_events")

#: Longest one read blocks: well within any socket timeout, so an idle reader is not taken
#: for a stalled one.
BLOCK_MS = 1000
#: Events one read takes.
READ_COUNT = 500
_EVENT_ID = re.compile(r"\d+(-\d+)?")
#: Types whose detail is MessagePack (the rest: text, or a count).
_ENCODED = frozenset((b"completed", b"progress"))


def check_since(since: object) -> str | None:
    if since is None:
        return None
    if not isinstance(since, str) or not _EVENT_ID.fullmatch(since):
        raise InvalidArgument(
            f"since must be an event id such as '1733450000000-0' (an Event.id), '0' for every"
            f" event kept, or None for new ones only; got {since!r}"
        )
    return since


async def read_events(client: Client, keys: QueueKeys, since: str | None) -> AsyncIterator[Event]:
    """The queue's events after ``since`` (None: from now on), as they come. A Redis error
    ends the iteration as streamq's error; iterate again from the last ``Event.id`` seen."""
    last = since
    try:
        if last is None:
            newest = cast("list[Any]", await client.xrevrange(keys.events, count=1))
            last = newest[0][0] if newest else "0-0"
        while True:
            reply = cast(
                "list[Any]",
                await client.xread({keys.events: last}, count=READ_COUNT, block=BLOCK_MS),
            )
            for _stream, entries in reply or ():
                for event_id, fields in entries:
                    last = event_id
                    yield event_of(event_id, fields)
    except RedisError as exc:
        after = "nothing was changed; go on with events(since=<the last Event.id you saw>)"
        doing = f"queue {keys.queue!r}: events"
        raise as_streamq_error(exc, keys.prefix, doing, after) from exc


def event_of(event_id: bytes, fields: dict[bytes, bytes]) -> Event:
    kind = fields.get(b"t", b"")
    raw = fields.get(b"d")
    detail: Any = None
    if raw is not None:
        if kind in _ENCODED:
            try:
                detail = decode_result(raw)
            except msgspec.DecodeError:
                detail = raw
        elif kind == b"reclaimed":
            detail = int(raw)
        else:
            detail = raw.decode(errors="replace")
    group = fields.get(b"g")
    return Event(
        id=event_id.decode(),
        type=cast("EventType", kind.decode(errors="replace")),
        job_id=fields.get(b"j", b"").decode(errors="replace"),
        attempt=int(fields.get(b"a", b"0")),
        at=int(event_id.split(b"-", 1)[0]) / 1000,
        detail=detail,
        group=group.decode(errors="replace") if group else None,
    )

"""Setting a recurring schedule (``Queue.schedule_recurring``): its arguments checked into a
definition before anything is written, and its first run by the server's clock, so every
manager computes the same one. The scheduler runs it (``worker/recurring.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store.serialization import RecurringDef, encode_recurring
from ..validation import check_staging
from ..worker.recurring import check_schedule, first_run_ms

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from ..store.serialization import Codec
    from .host import Connection

__all__ = ("recurring_definition", "set_schedule")


def recurring_definition(
    codec: Codec[Any],
    data: Any,
    interval_seconds: float | None,
    cron: str | None,
    tz: str | None,
    start_delay: float,
    priority: int,
) -> RecurringDef:
    """The schedule's definition, with ``data`` encoded and checked for the queue; raises
    :class:`InvalidArgument` or :class:`EncodeError` naming what is wrong."""
    interval_ms, expression, zone = check_schedule(interval_seconds, cron, tz)
    delay_ms = check_staging(priority, start_delay)
    return RecurringDef(
        interval_ms, expression, zone, delay_ms, priority, codec.encode_data(data, priority)
    )


async def set_schedule(
    connection: Connection, keys: QueueKeys, schedule_id: str, definition: RecurringDef
) -> bool:
    """Create or replace the schedule ``schedule_id`` (an unchanged one is left as it is);
    True if it was created or replaced."""
    seconds, micros = await connection.client.time()
    first = first_run_ms(definition, seconds * 1000 + micros // 1000)
    return await connection.scripts.recurring_set(
        keys, schedule_id, encode_recurring(definition), first
    )

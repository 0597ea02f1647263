"""Logging: streamq logs through the standard ``logging`` module (loggers ``streamq.*``).

A failed attempt is one line (WARNING when it is retried, ERROR when it goes to the dead
letters), a reclaimed job one WARNING line; each carries ``queue``, ``group``, ``job_id``,
``attempt`` and ``error`` as record attributes (``extra=``). A job that succeeds logs nothing at
INFO. :class:`JsonFormatter` writes one JSON object per line with those attributes as keys;
:func:`configure` sets up the root logger as the worker command does (``--log-format``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

__all__ = ("LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure")

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: What every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, the ``extra=`` attributes, and ``exception`` with the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=repr, ensure_ascii=False)


def configure(
    format: LogFormat = "text",
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
) -> None:
    """Send every log record at ``level`` or above to ``stream`` (stderr by default), as text
    lines or JSON lines; replaces the root logger's handlers."""
    if format not in LOG_FORMATS:
        from ..errors import InvalidArgument

        raise InvalidArgument(f"log format must be one of {', '.join(LOG_FORMATS)}, not {format!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    if isinstance(level, str):
        level = level.upper()
    logging.basicConfig(level=level, handlers=[handler], force=True)

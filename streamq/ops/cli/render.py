"""How the inspection commands print: rich tables for people, JSON for programs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ...client.inspection import JobSummary, QueueOverview, RecurringInfo, to_json
from ...job import DeadLetter, JobInfo

__all__ = (
    "dead_letter_details",
    "dead_letters_table",
    "echo_json",
    "history_table",
    "jobs_table",
    "overview_tables",
    "recurring_table",
    "show_listing",
)

#: Characters of a job's data shown in a table cell; --json shows everything.
DATA_WIDTH = 60


def echo_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout (bytes as base64, as msgspec writes them)."""
    sys.stdout.write(to_json(value).decode() + "\n")
    sys.stdout.flush()


def show_listing(
    listed: Sequence[Any], *, as_json: bool, empty: str, table: Callable[[], RenderableType]
) -> None:
    """A listing: JSON with --json, else one line when it is empty, else its table."""
    if as_json:
        echo_json(listed)
    elif not listed:
        click.echo(empty)
    else:
        console().print(table())


def console() -> Console:
    # Wide enough for the tables when stdout is a file or a pipe (no terminal to measure).
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def age(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h10m``, ``4d3h``: short enough for a table column."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def size(memory: int) -> str:
    """Bytes as people read them: 812 B, 3.4 KiB, 12.0 MiB."""
    amount, unit = float(memory), "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, bigger
    return f"{amount:,.0f} B" if unit == "B" else f"{amount:,.1f} {unit}"


def when(unix: float | None) -> str:
    if unix is None:
        return "-"
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def data_text(data: Any, width: int | None = DATA_WIDTH) -> str:
    """A job's data as compact JSON (raw bytes, undecodable, as a Python literal)."""
    text = repr(data) if isinstance(data, bytes) else to_json(data).decode()
    if width is not None and len(text) > width:
        return text[: width - 1] + "…"
    return text


def overview_tables(overviews: Sequence[QueueOverview], caption: str | None = None) -> Group:
    """The queues' counts, then their consumer groups."""
    queues = Table(title="Queues", title_justify="left", caption=caption, caption_justify="left")
    for column in ("queue", "waiting", "active", "delayed", "retrying", "dead", "completed"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    queues.add_column("oldest waiting", justify="right")
    queues.add_column("groups", justify="right")
    queues.add_column("memory", justify="right")
    groups = Table(title="Consumer groups", title_justify="left")
    for column in ("queue", "group", "consumers", "pending", "lag", "most idle consumer"):
        groups.add_column(column, justify="left" if column in ("queue", "group") else "right")
    for o in overviews:
        s = o.stats
        queues.add_row(
            f"{o.name} (paused)" if s.paused else o.name,
            f"{s.waiting:,}",
            f"{s.active:,}",
            f"{s.delayed:,}",
            f"{s.retrying:,}",
            f"{s.dead:,}",
            f"{s.completed:,}",
            age(s.oldest_waiting_age) if s.waiting else "-",
            str(s.groups),
            size(s.memory_bytes),
        )
        for g in o.groups:
            idle = max((c.idle for c in g.consumers), default=None)
            lag = "?" if g.lag is None else f"{g.lag:,}"
            groups.add_row(o.name, g.name, str(len(g.consumers)), f"{g.pending:,}", lag, age(idle))
    shown: list[RenderableType] = [queues]
    if any(o.groups for o in overviews):
        shown += ["", groups]
    if any(o.busiest_keys for o in overviews):
        shown += ["", _busiest_keys_table(overviews)]
    return Group(*shown)


def history_table(overviews: Sequence[QueueOverview], minutes: int) -> Table:
    """The queues' last minutes (``info --history``), oldest first, a row per minute."""
    table = Table(
        title=f"History, the last {minutes} minutes (UTC)",
        title_justify="left",
        caption="latency: from enqueue to a job's first start, estimated within a factor of 2",
        caption_justify="left",
    )
    for column in ("queue", "minute", "completed", "failed", "dead", "started"):
        table.add_column(column, justify="left" if column in ("queue", "minute") else "right")
    table.add_column("latency p50", justify="right")
    table.add_column("latency p99", justify="right")
    for o in overviews:
        for p in o.history:
            table.add_row(
                o.name,
                datetime.fromtimestamp(p.minute, UTC).strftime("%H:%M"),
                f"{p.completed:,}",
                f"{p.failed:,}",
                f"{p.dead:,}",
                f"{p.started:,}",
                latency(p.latency_p50),
                latency(p.latency_p99),
            )
    return table


def latency(seconds: float | None) -> str:
    """``0.4ms``, ``12ms``, ``1.5s``, ``3m05s``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return age(seconds)


def _busiest_keys_table(overviews: Sequence[QueueOverview]) -> Table:
    table = Table(title="Busiest fairness keys", title_justify="left")
    for column in ("queue", "fairness key", "waiting"):
        table.add_column(column, justify="right" if column == "waiting" else "left")
    for o in overviews:
        for key, waiting in o.busiest_keys:
            table.add_row(o.name, Text(key), f"{waiting:,}")  # a key is text, not markup
    return table


def jobs_table(queue: str, state: str, jobs: Sequence[JobSummary]) -> Table:
    table = Table(title=f"{state.capitalize()} jobs of {queue!r}", title_justify="left")
    if state == "completed":
        for column in ("job id", "enqueued", "finished", "attempts", "result"):
            table.add_column(column, justify="right" if column == "attempts" else "left")
        for job in jobs:
            table.add_row(
                job.id,
                when(job.enqueued_at),
                when(job.finished_at),
                str(job.attempts),
                data_text(job.result),
            )
        return table
    for column in ("job id", "priority", "enqueued", "due", "attempts", "data"):
        table.add_column(column, justify="right" if column in ("priority", "attempts") else "left")
    if state in ("retrying", "active"):
        table.add_column("group")
    if state == "retrying":
        table.add_column("last error")
    for job in jobs:
        row = [
            job.id,
            str(job.priority),
            when(job.enqueued_at),
            when(job.due_at),
            str(job.attempts),
            data_text(job.data),
        ]
        if state in ("retrying", "active"):
            row.append(job.group or "-")
        if state == "retrying":
            row.append(_first_line(job.error))
        table.add_row(*row)
    return table


#: Log lines ``job show`` prints (the newest).
SHOWN_LOG_LINES = 20


def job_details(queue: str, info: JobInfo, logs: Sequence[str] = ()) -> str:
    """One job in full, as ``job show`` prints it (with the last of its log lines)."""
    lines = [
        f"queue:     {queue}",
        f"job id:    {info.id}",
        f"state:     {info.state}",
        f"attempts:  {info.attempts}",
        f"enqueued:  {when(info.enqueued_at)}",
        f"finished:  {when(info.finished_at)}",
    ]
    if info.groups:
        lines.append("groups:")
        lines += [f"  {group}: {state}" for group, state in sorted(info.groups.items())]
    if info.result is not None:
        lines.append(f"result:    {data_text(info.result, width=None)}")
    if info.progress is not None:
        lines.append(f"progress:  {data_text(info.progress, width=None)}")
    if info.error:
        lines += ["error:", *(f"  {line}" for line in info.error.splitlines())]
    if logs:
        shown = logs[-SHOWN_LOG_LINES:]
        more = (
            f" (the last {len(shown)} of {len(logs)}; --json has all)"
            if len(shown) < len(logs)
            else ""
        )
        lines += [f"log{more}:", *(f"  {line}" for line in shown)]
    return "\n".join(lines)


def dead_letters_table(queue: str, letters: Sequence[DeadLetter]) -> Table:
    table = Table(title=f"Dead letters of {queue!r}", title_justify="left")
    for column in ("job id", "failed", "attempts", "error", "data"):
        table.add_column(column, justify="right" if column == "attempts" else "left")
    for letter in letters:
        table.add_row(
            letter.job_id,
            when(letter.failed_at),
            str(letter.attempts),
            _first_line(letter.error),
            data_text(letter.data),
        )
    return table


def dead_letter_details(queue: str, letter: DeadLetter) -> str:
    return "\n".join(
        (
            f"queue:     {queue}",
            f"job id:    {letter.job_id}",
            f"failed:    {when(letter.failed_at)}",
            f"attempts:  {letter.attempts}",
            f"groups:    {', '.join(letter.groups) or '-'}",
            f"data:      {data_text(letter.data, width=None)}",
            "error:",
            *(f"  {line}" for line in letter.error.splitlines()),
            *(["traceback:"] if letter.traceback else []),
            *(f"  {line}" for line in (letter.traceback or "").splitlines()),
        )
    )


def recurring_table(queue: str, schedules: Sequence[RecurringInfo]) -> Table:
    table = Table(title=f"Recurring schedules of {queue!r}", title_justify="left")
    for column in ("job id", "every", "next run", "priority", "data"):
        table.add_column(column, justify="right" if column == "priority" else "left")
    for s in schedules:
        every = (
            f"cron {s.cron}" + (f" ({s.tz})" if s.tz else " (UTC)")
            if s.cron is not None
            else age(s.interval_seconds)
        )
        table.add_row(s.job_id, every, when(s.next_run_at), str(s.priority), data_text(s.data))
    return table


def _first_line(text: str | None, width: int = 80) -> str:
    if not text:
        return "-"
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"

"""The fault suite's figures: one row per scenario, printed as a table at the end of the run.

Each scenario injects real faults (killed and stopped processes, a killed server, deleted keys,
a stalled network) and counts, in the style of Jepsen's queue checker, the jobs enqueued, the
enqueues Redis acknowledged, the jobs completed, the acknowledged jobs lost (must be 0) and
the runs beyond the first.

``STREAMQ_CHAOS=full`` (``make chaos``) runs every scenario at full scale; otherwise (CI, plain
``make test``) each runs a shorter version of the same faults.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ("FIGURES", "Row", "dump", "full", "load", "record", "scaled", "table")

#: Where a full run leaves its rows (README quotes them).
FULL_RESULTS = Path(__file__).parent.parent.parent / ".cache" / "chaos-figures.json"


def full() -> bool:
    """Whether this is the full run (``make chaos``), not the short one."""
    return os.environ.get("STREAMQ_CHAOS") == "full"


def scaled(short: int, full_size: int) -> int:
    return full_size if full() else short


@dataclass
class Row:
    scenario: str
    enqueued: int
    acknowledged: int
    completed: int
    lost: int
    #: Runs beyond a job's first (a worker died while running it).
    reruns: int
    #: What was done to the system, e.g. "24 SIGKILL".
    faults: str
    seconds: float
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)


FIGURES: list[Row] = []


def record(row: Row) -> Row:
    """Keep ``row`` for the table (called once the scenario's assertions passed or failed: the
    figures are printed either way)."""
    FIGURES.append(row)
    return row


def dump() -> str:
    """This process's rows as JSON (a pytest-xdist worker sends them to the controller)."""
    return json.dumps([asdict(r) for r in FIGURES])


def load(rows: str) -> None:
    """Rows another process recorded (:func:`dump`)."""
    FIGURES.extend(Row(**row) for row in json.loads(rows))


def table() -> str:
    headers = ("scenario", "enqueued", "acked", "completed", "lost", "reruns", "faults", "s")
    rows = [
        (
            r.scenario,
            f"{r.enqueued:,}",
            f"{r.acknowledged:,}",
            f"{r.completed:,}",
            str(r.lost),
            str(r.reruns),
            r.faults,
            f"{r.seconds:.1f}",
        )
        for r in _in_order()
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    notes = [f"- {r.scenario}: {r.notes}" for r in _in_order() if r.notes]
    return "\n".join(lines + notes)


def _in_order() -> list[Row]:
    """By the scenario's number (the issue's list), whatever order the tests ran in."""
    return sorted(FIGURES, key=lambda row: row.scenario)


def save() -> None:
    """A full run's rows, for the README."""
    if full() and FIGURES:
        FULL_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        FULL_RESULTS.write_text(json.dumps([asdict(r) for r in FIGURES], indent=2))

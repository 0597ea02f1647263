"""``python -m streamq flow show``: a flow's tree of steps with their states."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text
from rich.tree import Tree

from ...client.flows import FlowTree, read_flow_tree
from ...errors import JobNotFound
from ...job import JobInfo
from ..eventloop import run
from . import fail_cleanly, json_option, main, prefix_option, url_option
from .render import console, data_text, echo_json
from .session import known_queues, manager

#: Steps read and shown at most; a bigger flow's fan-ins are summed up.
MOST_STEPS = 1000


@main.group(short_help="Workflows: show.")
def flow() -> None:
    """A flow of steps (QueueManager.enqueue_flow)."""


@flow.command(name="show")
@click.argument("root_id")
@click.option("-q", "--queue", help="The root step's queue (default: looked for in every queue).")
@url_option
@prefix_option
@json_option
@fail_cleanly
def flow_show(root_id: str, queue: str | None, url: str | None, prefix: str, as_json: bool) -> None:
    """The flow under ROOT_ID as a tree: each step's queue, id and state, with its result or
    error; a parent runs once its children completed.

    Example: python -m streamq flow show monthly-report-2026-11
    """

    async def read() -> FlowTree | None:
        async with manager(url, prefix) as qm:

            async def get_job(name: str, job_id: str) -> JobInfo | None:
                return await qm.get_queue(name).get_job(job_id)

            for name in await known_queues(qm, [queue] if queue else []):
                if await get_job(name, root_id) is not None:
                    return await read_flow_tree(get_job, name, root_id, MOST_STEPS)
            return None

    tree = run(read)
    if tree is None:
        raise JobNotFound(root_id, queue=queue)
    if as_json:
        echo_json(_as_dict(tree))
        return
    shown = Tree(_label(tree))
    _grow(shown, tree)
    console().print(shown)


def _label(tree: FlowTree) -> Text:
    """One step's line (Text, not markup: ids, results and errors are shown as they are)."""
    info = tree.info
    label = Text(f"{tree.queue}  {tree.id}  ")
    if info is None:
        label.append("(gone: finished longer ago than it is kept)")
        return label
    label.append(info.state, style="bold")
    if info.error:
        label.append(f"  {info.error.splitlines()[0][:120]}")
    elif info.result is not None:
        label.append(f"  -> {data_text(info.result)}")
    return label


def _grow(shown: Tree, tree: FlowTree) -> None:
    for child in tree.children:
        _grow(shown.add(_label(child)), child)
    if tree.unread:
        shown.add(Text(f"... and {tree.unread} more"))


def _as_dict(tree: FlowTree) -> dict[str, Any]:
    info = tree.info
    return {
        "queue": tree.queue,
        "id": tree.id,
        "state": None if info is None else info.state,
        "result": None if info is None else info.result,
        "error": None if info is None else info.error,
        "children": [_as_dict(child) for child in tree.children],
        "unread": tree.unread,
    }

"""The coalescing of concurrent enqueues, on its own (an in-memory send; no Redis involved)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import anyio
import pytest

from streamq.client.batching import Coalescer, Outcomes

pytestmark = pytest.mark.anyio


class Sender:
    """Records batches; each send waits until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = anyio.Event()
        self.fail: set[str] = set()

    async def send(self, items: Sequence[str]) -> Outcomes:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(i) if i in self.fail else True for i in items]


async def test_waiters_go_together_in_the_next_batch() -> None:
    sender = Sender()
    coalescer: Coalescer[str] = Coalescer(sender.send)
    async with anyio.create_task_group() as tg:
        for item in "abcd":
            tg.start_soon(coalescer.submit, item)
            await anyio.lowlevel.checkpoint()
        await wait_for_batches(sender, 1)
        sender.gate.set()
    assert sender.batches == [["a"], ["b", "c", "d"]]


async def test_each_caller_gets_its_own_outcome() -> None:
    sender = Sender()
    sender.fail = {"c"}
    coalescer: Coalescer[str] = Coalescer(sender.send)
    errors: dict[str, BaseException | None] = {}

    async def submit(item: str) -> None:
        try:
            await coalescer.submit(item)
            errors[item] = None
        except ValueError as exc:
            errors[item] = exc

    async with anyio.create_task_group() as tg:
        for item in "abcd":
            tg.start_soon(submit, item)
            await anyio.lowlevel.checkpoint()
        sender.gate.set()
    assert [k for k, v in sorted(errors.items()) if v is not None] == ["c"]


async def test_a_waiter_cancelled_before_its_turn_does_not_block_the_rest() -> None:
    sender = Sender()
    coalescer: Coalescer[str] = Coalescer(sender.send)
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.submit, "first")
        await wait_for_batches(sender, 1)
        with anyio.move_on_after(0.01):
            await coalescer.submit("gave up")  # waits behind "first", then is cancelled
        sender.gate.set()
    with anyio.fail_after(2):
        await coalescer.submit("later")
    assert sender.batches == [["first"], ["later"]]


async def test_plain_asyncio_cancellation_of_the_sender_does_not_fake_success() -> None:
    sender = Sender()
    coalescer: Coalescer[str] = Coalescer(sender.send)
    outcome: dict[str, str] = {}

    async def submit(item: str) -> None:
        try:
            await coalescer.submit(item)
            outcome[item] = "sent"
        except ValueError:
            outcome[item] = "failed"

    sender.fail = {"rider"}
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.submit, "first")
        await wait_for_batches(sender, 1)
        leader = asyncio.ensure_future(coalescer.submit("leader"))
        await anyio.lowlevel.checkpoint()
        tg.start_soon(submit, "rider")
        await anyio.lowlevel.checkpoint()
        sender.gate.set()  # "first" is written; "leader" now sends itself and "rider"...
        await wait_for_batches(sender, 2)
        leader.cancel()  # ...and is cancelled the plain asyncio way while that is on its way
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert sender.batches[1] == ["leader", "rider"]
    assert outcome == {"rider": "failed"}, "the rider must learn what became of its job"


async def wait_for_batches(sender: Sender, n: int) -> None:
    with anyio.fail_after(2):
        while len(sender.batches) < n:
            await anyio.lowlevel.checkpoint()

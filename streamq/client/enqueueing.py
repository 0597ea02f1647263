"""Writing a queue's jobs (``Queue.enqueue``, ``enqueue_many``, ``call``, ``payload_for``):
checking and encoding them before anything is written, sending them (concurrent enqueues
coalesced into one script call, ``batching.py``), and telling the hooks once Redis has them."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import NotReplicated
from ..ops.hooks import tell_enqueued
from ..validation import (
    check_fairness_key,
    check_job_id,
    check_max_retries,
    check_seconds,
    check_staging,
    new_job_id,
)
from .batching import Coalescer, Enqueue, Outcomes, batches, send_grouped
from .waiting import wait_for_job

if TYPE_CHECKING:
    from ..store.keys import QueueKeys
    from ..store.scripts import Scripts
    from ..store.serialization import Codec
    from .host import QueueHost
    from .registration import Registration

__all__ = ("Enqueuer",)

T = TypeVar("T")


class Enqueuer(Generic[T]):
    """One queue's producer side, as its ``Queue`` hands it the caller's arguments."""

    def __init__(
        self,
        host: QueueHost,
        keys: QueueKeys,
        codec: Codec[T],
        registration: Registration,
        events: int,
    ) -> None:
        self._host = host
        self._keys = keys
        self._codec = codec
        self._registration = registration
        #: The lifecycle events the queue keeps (``Retention.events``).
        self._events = events
        self._coalescer: Coalescer[Enqueue] = Coalescer(self._send_together)

    @property
    def _scripts(self) -> Scripts:
        """Where enqueues go: with ``min_replicas``, a lane of their own that waits for them."""
        return self._host.connection().enqueue_scripts

    async def prepare(
        self,
        data: T,
        priority: int,
        start_delay: float,
        job_id: str | None,
        max_retries: int | None,
        timeout: float | None,
        fairness_key: str | None,
    ) -> Enqueue:
        """Check and encode a job (nothing is written before this succeeded)."""
        delay_ms = check_staging(priority, start_delay)
        key = check_fairness_key(fairness_key)
        if max_retries is not None:
            check_max_retries(max_retries)
        if timeout is not None:
            check_seconds(timeout, what="timeout")
        job_id = new_job_id() if job_id is None else check_job_id(job_id)
        now = time.time()
        payload = self._codec.encode(
            data,
            enqueued_at=now,
            priority=priority,
            max_retries=max_retries,
            timeout=timeout,
            job_id=job_id,
        )
        await self._registration.ensure()
        return job_id, payload, now, priority, delay_ms, key

    async def payload(
        self, data: T, *, priority: int, enqueued_at: float, job_id: str | None
    ) -> bytes:
        """What :meth:`prepare` would encode, for a job that goes elsewhere (a flow's step)."""
        payload = self._codec.encode(
            data, enqueued_at=enqueued_at, priority=priority, job_id=job_id
        )
        await self._registration.ensure()
        return payload

    async def send(self, job: Enqueue) -> None:
        """Write a prepared job, with the enqueues that arrive meanwhile."""
        added = await self._coalescer.submit(job)
        if hooks := self._host.hooks:
            tell_enqueued(hooks, self._keys.queue, job[0], job[3], job[4], job[2], added)

    async def call(self, job: Enqueue, timeout: float) -> Any:
        """Write a prepared job and wait for its result (``Queue.call``): the enqueue registers
        the wait too, one round trip rather than two."""
        job_id, payload, now, priority, delay_ms, key = job

        async def enqueue_watched() -> None:
            [added] = await self._scripts.enqueue(
                self._keys,
                [(job_id, payload)],
                now,
                priority,
                delay_ms,
                self._events,
                watch=True,
                fairness_key=key,
            )
            if hooks := self._host.hooks:
                tell_enqueued(hooks, self._keys.queue, job_id, priority, delay_ms, now, added)

        connection = self._host.connection()
        notices = await self._host.notices(self._keys)
        return await wait_for_job(
            connection.scripts, self._keys, notices, job_id, timeout, None, register=enqueue_watched
        )

    async def send_many(
        self, items: Iterable[T], priority: int, start_delay: float, fairness_key: str | None
    ) -> list[str]:
        """``Queue.enqueue_many``: every item encoded before anything is written, then batches;
        with ``min_replicas`` every batch is written even when one is not confirmed."""
        delay_ms = check_staging(priority, start_delay)
        key = check_fairness_key(fairness_key)
        now = time.time()
        encode = functools.partial(self._codec.encode_job, enqueued_at=now, priority=priority)
        jobs = [encode(new_job_id(), item) for item in items]
        await self._registration.ensure()
        unconfirmed: list[NotReplicated] = []
        hooks = self._host.hooks
        for batch in batches(jobs):
            try:
                added = await self._scripts.enqueue(
                    self._keys, batch, now, priority, delay_ms, self._events, fairness_key=key
                )
            except NotReplicated as exc:
                unconfirmed.append(exc)
                added = [True] * len(batch)  # written, not confirmed by the replicas
            if hooks:
                for (job_id, _), new in zip(batch, added, strict=True):
                    tell_enqueued(hooks, self._keys.queue, job_id, priority, delay_ms, now, new)
        if unconfirmed:
            raise NotReplicated.merged(unconfirmed)
        return [job_id for job_id, _ in jobs]

    async def _send_together(self, jobs: Sequence[Enqueue]) -> Outcomes:
        return await send_grouped(self._scripts, self._keys, self._events, jobs)

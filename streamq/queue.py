"""The producer and inspection side of a queue; the consumer loop lives in ``consumer.py``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import anyio

from .backoff import Backoff
from .errors import InvalidArgument, JobFailed, JobNotFound, StreamqError
from .job import DeadLetter, Job, JobInfo, QueueStats
from .keys import QueueKeys, validate_group
from .serialization import Codec, decode_dead_record, decode_result
from .validation import check_count, check_job_id, check_max_retries, check_seconds, new_job_id

if TYPE_CHECKING:
    from .consumer import Consumer
    from .manager import QueueManager
    from .scripts import Scripts

__all__ = ("Handler", "Queue")

T = TypeVar("T")

#: ``handler(job)``: an ``async def`` (a plain function runs in a worker thread); its return value
#: is the job's result and raising is a failure.
Handler = Callable[[Job[T]], Awaitable[Any]] | Callable[[Job[T]], Any]

#: Jobs per script call in ``enqueue_many``: big enough for throughput, small enough that one
#: call never holds the server for long.
ENQUEUE_BATCH = 500
#: How long one blocking wait in ``wait_for`` lasts before the job's record is read again.
WAIT_SLICE = 1.0
_TERMINAL = ("completed", "dead", "cancelled")


class Queue(Generic[T]):
    """A named queue. Get one from :meth:`QueueManager.get_queue`."""

    def __init__(self, manager: QueueManager, name: str, type_: Any) -> None:
        self.name = name
        self.type = type_
        self._manager = manager
        self._keys = QueueKeys(manager.prefix, name)
        self._codec: Codec[T] = Codec(name, type_)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} of {getattr(self.type, '__name__', self.type)}>"

    @property
    def _scripts(self) -> Scripts:
        return self._manager._connected().scripts

    # -- producing ------------------------------------------------------------------------

    async def enqueue(
        self,
        data: T,
        *,
        priority: int = 0,
        start_delay: float = 0,
        job_id: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """Add a job; returns its id (``job_id`` when given).

        While a job with ``job_id`` is unfinished, enqueueing the id again changes nothing.
        """
        _check_staging(priority, start_delay)
        if max_retries is not None:
            check_max_retries(max_retries)
        if timeout is not None:
            check_seconds(timeout, what="timeout")
        job_id = new_job_id() if job_id is None else check_job_id(job_id)
        now = time.time()
        payload = self._codec.encode(
            data, enqueued_at=now, priority=priority, max_retries=max_retries, timeout=timeout
        )
        await self._scripts.enqueue(self._keys, [(job_id, payload, now)])
        return job_id

    async def enqueue_many(
        self, items: Iterable[T], *, priority: int = 0, start_delay: float = 0
    ) -> list[str]:
        """Add many jobs in few round trips; returns their ids in order.

        Every item is encoded and checked before anything is written.
        """
        _check_staging(priority, start_delay)
        now = time.time()
        jobs = [
            (new_job_id(), self._codec.encode(item, enqueued_at=now, priority=priority), now)
            for item in items
        ]
        for start in range(0, len(jobs), ENQUEUE_BATCH):
            await self._scripts.enqueue(self._keys, jobs[start : start + ENQUEUE_BATCH])
        return [job_id for job_id, _, _ in jobs]

    # -- consuming ------------------------------------------------------------------------

    async def consume(
        self,
        handler: Handler[T],
        *,
        consumer_group: str | None = None,
        max_retries: int = 3,
        concurrency: int = 10,
        timeout: float | None = None,
        backoff: Backoff | float | None = None,
        visibility_timeout: float = 60,
        rate_limit: tuple[int, float] | None = None,
    ) -> Consumer[T]:
        """Start a consumer in the background and return it (stop it with ``await c.stop()``).

        Consumers sharing ``consumer_group`` (default: the queue's name) share the work; every
        distinct group receives every job.
        """
        from .consumer import ConsumerOptions  # the consumer loop is only imported by consumers

        if rate_limit is not None:
            raise InvalidArgument(
                "rate_limit is not supported yet; limit starts with concurrency for now"
            )
        options = ConsumerOptions.build(
            group=validate_group(self.name if consumer_group is None else consumer_group),
            max_retries=max_retries,
            concurrency=concurrency,
            timeout=timeout,
            backoff=backoff,
            visibility_timeout=visibility_timeout,
        )
        return await self._manager._start_consumer(self, handler, options)

    # -- inspecting -----------------------------------------------------------------------

    async def get_job(self, job_id: str) -> JobInfo | None:
        """The job's state, or None if it is unknown (or finished longer than result_ttl ago)."""
        reply = await self._scripts.get_job(self._keys, check_job_id(job_id))
        if reply is None:
            return None
        running, record = reply
        state = record.get(b"state", b"waiting").decode()
        return JobInfo(
            id=job_id,
            state="active" if running else state,  # type: ignore[arg-type]
            attempts=int(record.get(b"attempts", 0)),
            result=decode_result(record.get(b"result")),
            error=_text(record.get(b"error")),
            enqueued_at=_float(record.get(b"enqueued_at")),
            finished_at=_float(record.get(b"finished_at")),
        )

    async def wait_for(self, job_id: str, timeout: float | None = None) -> Any:
        """The job's result once it completes.

        Raises :class:`JobFailed` if it went to the dead letters, :class:`JobNotFound` for an
        unknown job and :class:`TimeoutError` when ``timeout`` seconds pass first.
        """
        check_job_id(job_id)
        client = self._manager._connected().client
        done_key = self._keys.done(job_id)
        registered = False
        try:
            with anyio.fail_after(timeout):
                while True:
                    reply = await self._scripts.watch_job(
                        self._keys, job_id, "=" if registered else "+"
                    )
                    if reply is None:
                        raise JobNotFound(job_id, queue=self.name)
                    state, result, error = reply
                    if state in _TERMINAL:
                        registered = False  # the finishing script took the registration back
                        if state == "completed":
                            return decode_result(result)
                        raise JobFailed(job_id, _text(error) or state, queue=self.name)
                    registered = True  # once: the finishing script pushes once per waiter
                    await client.blpop([done_key], timeout=WAIT_SLICE)
        finally:
            if registered:  # gave up (timeout, cancellation) before the job finished
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await self._scripts.watch_job(self._keys, job_id, "-")

    async def stats(self) -> QueueStats:
        s = await self._scripts.stats(self._keys)
        return QueueStats(
            waiting=s.waiting,
            active=s.active,
            delayed=0,
            retrying=s.retrying,
            completed=s.completed,
            dead=s.dead,
            oldest_waiting_age=s.oldest_waiting_ms / 1000,
            groups=s.groups,
        )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Jobs that failed past their retries, oldest failure first."""
        check_count(limit, what="limit")
        letters = []
        for job_id, raw_record, payload, groups in await self._scripts.dead_list(self._keys, limit):
            record = decode_dead_record(raw_record)
            letters.append(
                DeadLetter(
                    job_id=job_id,
                    data=self._codec.decode_data_or_raw(payload),
                    error=record.error,
                    attempts=record.attempts,
                    failed_at=record.failed_at,
                    groups=tuple(groups),
                )
            )
        return letters

    async def retry_dead(self, job_id: str | None = None) -> int:
        """Replay one dead job (or all when ``job_id`` is None) with fresh attempts."""
        scripts = self._scripts
        if job_id is not None:
            return await scripts.revive(self._keys, [check_job_id(job_id)])
        client = self._manager._connected().client
        revived = 0
        while ids := cast(
            "list[bytes]", await client.zrange(self._keys.dead, 0, ENQUEUE_BATCH - 1)
        ):
            revived += await scripts.revive(self._keys, [i.decode() for i in ids])
        return revived

    async def purge_dead(self) -> int:
        """Drop every dead letter; returns how many there were."""
        return await self._scripts.purge_dead(self._keys)


def _check_staging(priority: int, start_delay: float) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidArgument(f"priority must be an int, got {priority!r}")
    check_seconds(start_delay, what="start_delay", allow_zero=True)
    if priority or start_delay:
        raise StreamqError("priority and start_delay are not supported yet: enqueue without them")


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="replace")


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)

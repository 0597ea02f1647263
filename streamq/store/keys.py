"""Every Redis key streamq uses is named here, and only here.

All keys of one queue carry the queue's name as a hash tag (``streamq:{emails}:stream``), so every
Lua script touches a single slot on Redis Cluster while different queues spread over the slots.
Scripts that reach a job's own keys get the prefixes below and append the job id themselves.
"""

from __future__ import annotations

import re

from ..errors import InvalidArgument
from ..validation import check_utf8

__all__ = ("HISTORY_TTL", "QueueKeys", "registry_key", "validate_group", "validate_name")

MAX_NAME_LENGTH = 200
#: Seconds a minute's history hash (``QueueKeys.history``) lives from its first write (in its
#: minute): two hours past the minute's end at least, so a queue keeps about 120 of them.
HISTORY_TTL = 2 * 3600 + 60
_FORBIDDEN = re.compile(r"[{}\s]")


def validate_name(name: object, *, what: str = "queue name") -> str:
    """Return ``name`` if it can be part of a key, else raise :class:`InvalidArgument`."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{what} must be a str, got {type(name).__name__}")
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"{what} {name[:40]!r} has {len(name)} characters: use 1 to {MAX_NAME_LENGTH}"
        )
    bad = _FORBIDDEN.search(name)
    if bad:
        raise InvalidArgument(
            f"{what} {name!r} contains {bad.group()!r}: braces and whitespace are not allowed"
            " (braces would break the Redis Cluster hash tag)"
        )
    return check_utf8(name, what=what)


def validate_group(group: object) -> str:
    """Consumer groups share the rules of queue names: scripts split on whitespace after them."""
    return validate_name(group, what="consumer group")


def registry_key(prefix: str) -> str:
    """Sorted set of every queue name a manager used, scored by when it was first used (unix
    seconds): how tools list queues without scanning the database's keys."""
    return f"{prefix}:queues"


class QueueKeys:
    """The keys of one queue, computed once (they are used on every enqueue)."""

    __slots__ = (
        "cancels",
        "completed",
        "dead",
        "dead_records",
        "delayed",
        "events",
        "fair",
        "fair_full",
        "fair_limits",
        "fair_limits_by",
        "fair_parked",
        "fair_turn",
        "fair_waiting",
        "finished",
        "flows_creating",
        "groups",
        "history_prefix",
        "job_prefix",
        "key_active_prefix",
        "key_moves_prefix",
        "key_starts_prefix",
        "kstaged_prefix",
        "logs_prefix",
        "outbox",
        "paused",
        "prefix",
        "queue",
        "rate_log_prefix",
        "rate_seq_prefix",
        "recurring",
        "recurring_defs",
        "retry",
        "retry_payloads",
        "schema",
        "slots_prefix",
        "staged",
        "staged_seq",
        "stream",
        "wake",
        "window",
    )

    def __init__(self, prefix: str, queue: str) -> None:
        base = f"{prefix}:{{{queue}}}:"
        self.prefix = prefix
        self.queue = queue
        #: The ready window: entries that consumers read with XREADGROUP.
        self.stream = base + "stream"
        #: Sorted set of job ids waiting for room in the ready window, best first: scored
        #: ``-priority * 2**32 + sequence`` (higher priority first, FIFO within a priority).
        self.staged = base + "staged"
        #: Counter giving staged jobs their FIFO sequence.
        self.staged_seq = base + "staged:seq"
        #: Fair queues (``enqueue(..., fairness_key=K)``; ``stage`` in ``_lib.lua``, which
        #: names these from the staged set's key): ``kstaged_prefix + K`` holds key K's staged
        #: jobs (scored like the staged set); ``fair``, the ring, the keys with staged jobs
        #: scored by their turn (the staged set itself takes turns as a key of its own while
        #: any key has work); ``fair_turn`` counts the turns, ``fair_waiting`` the keyed jobs.
        self.kstaged_prefix = base + "kstaged:"
        self.fair = base + "fair"
        self.fair_turn = base + "fair:turn"
        self.fair_waiting = base + "fair:waiting"
        #: Per-key limits (``consume(per_key_concurrency=, per_key_rate_limit=)``; the helpers
        #: after ``stage`` in ``_lib.lua`` name these from the staged set's key too): keys held
        #: back from the ring wait in ``fair_parked`` (scored by when a rate limit lets their
        #: next job in) or ``fair_full`` (at their concurrency). ``fair_limits``: group ->
        #: "concurrency rate period_ms", the strictest of the live consumers' registrations in
        #: ``fair_limits_by`` (consumer -> "expiry group concurrency rate period_ms").
        #: ``key_active(group)``: the entries of keyed jobs in the window or running, members
        #: ``key<TAB>entry id``; ``key_moves(group, key)`` and ``key_starts(group, key)``: a
        #: key's recent moves into the window and job starts, scored by time, expiring.
        self.fair_parked = base + "fair:parked"
        self.fair_full = base + "fair:full"
        self.fair_limits = base + "fair:limits"
        self.fair_limits_by = base + "fair:limits:by"
        self.key_active_prefix = base + "kact:"
        self.key_moves_prefix = base + "kmoves:"
        self.key_starts_prefix = base + "kstarts:"
        #: Sorted set of job ids scored by the time (server ms) they may start.
        self.delayed = base + "delayed"
        #: Hash ``consumer`` -> ``prefetch:expiry_ms`` and ``total``: how many entries the ready
        #: window holds while jobs are staged (the live consumers' prefetch).
        self.window = base + "window"
        #: Hash group -> when (server ms) a live consumer of it last said so, and its manager's
        #: ``group_idle_timeout`` (ms); groups silent past that are removed (broadcast groups of
        #: gone instances).
        self.groups = base + "groups"
        #: Sorted set of recurring schedule ids scored by their next run (server ms).
        self.recurring = base + "recurring"
        #: Hash schedule id -> encoded schedule.
        self.recurring_defs = base + "recurring:defs"
        #: ``rate_log_prefix + group``: sorted set of a group's recent job starts (rate limit),
        #: ``rate_seq_prefix + group``: the counter naming them.
        self.rate_log_prefix = base + "rate:"
        self.rate_seq_prefix = base + "rate-seq:"
        #: ``slots_prefix + group``: sorted set of the entries of a group running under its
        #: global concurrency, scored by when their slot lapses (server ms).
        self.slots_prefix = base + "slots:"
        #: The queue's pub/sub channel: ``due`` when an earlier due time appears (wakes the
        #: schedulers), ``finished<TAB>job id`` when a job that ``wait_for`` waits on finishes.
        self.wake = base + "wake"
        #: Sorted set of ``group<TAB>job_id`` scored by the due time (server ms) of a retry.
        self.retry = base + "retry"
        #: Hash ``group<TAB>job_id`` -> ``attempt<TAB>payload`` for the retries waiting above.
        self.retry_payloads = base + "retry:payloads"
        #: Sorted set of dead job ids scored by the time they failed (unix seconds).
        self.dead = base + "dead"
        #: Hash: ``r:<id>`` the encoded DeadRecord, ``p:<id>`` the payload, ``g:<id>`` its groups.
        self.dead_records = base + "dead:records"
        #: List of finished job ids in finishing order: the newest ``keep_finished`` keep
        #: their records, older ones are removed.
        self.finished = base + "finished"
        #: The JSON Schema of the queue's type, as the last manager that used it with a type
        #: wrote it: what tools without the type (the command line) check data against.
        self.schema = base + "schema"
        #: The queue's lifecycle events (``Queue.events``): a stream capped at the manager's
        #: ``keep_events``, written by the scripts that make each transition.
        self.events = base + "events"
        #: Counter of jobs completed, for stats.
        self.completed = base + "completed"
        #: ``history(minute)``: a hash per minute of the queue's history (``Queue.history``,
        #: store/history.py): jobs completed, failed attempts, dead letters and start latency
        #: buckets, written by the finishing scripts, expiring after about two hours. The
        #: scripts name it from this prefix and the server's clock.
        self.history_prefix = base + "hist:"
        #: ``job_prefix + job_id``: the hash holding a job's state, result and error.
        self.job_prefix = base + "job:"
        #: ``logs_prefix + job_id``: the list of a job's log lines (``job.log``). The scripts
        #: that expire or delete a record name it from the record's key (``logs_key`` in
        #: ``_lib.lua``): the record's key with ``job:`` swapped for ``logs:``.
        self.logs_prefix = base + "logs:"
        #: Set while the queue is paused (``Queue.pause``): no consumer starts a job.
        self.paused = base + "paused"
        #: Sorted set of the entries of broadcast jobs cancelled before every group had been
        #: delivered them, scored by when (server ms): a consumer that reads one acknowledges it
        #: without running it. The newest few are kept.
        self.cancels = base + "cancels"
        #: Stream of what the queue's flow steps ended with, for their parents (wherever they
        #: live) to apply: ``pa`` the parent (queue<TAB>id), ``c`` the child, ``s`` its state,
        #: ``d`` its result or error; read through the consumer group ``relay``
        #: (worker/relay.py). Scripts name it from the stream's key (``tell_parent``).
        self.outbox = base + "outbox"
        #: Sorted set of the ids of root steps whose flow is being created, scored by when
        #: creation began (server ms): what the relays' sweep finishes or undoes.
        self.flows_creating = base + "flows:creating"

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def slots(self, group: str) -> str:
        return self.slots_prefix + group

    def kstaged(self, fairness_key: str) -> str:
        return self.kstaged_prefix + fairness_key

    def key_active(self, group: str) -> str:
        return self.key_active_prefix + group

    def key_moves(self, group: str, fairness_key: str) -> str:
        return f"{self.key_moves_prefix}{group} {fairness_key}"

    def key_starts(self, group: str, fairness_key: str) -> str:
        return f"{self.key_starts_prefix}{group} {fairness_key}"

    def history(self, minute: int) -> str:
        """The hash of the minute starting at ``minute`` (unix seconds, a multiple of 60)."""
        return f"{self.history_prefix}{minute}"

    def job_logs(self, job_id: str) -> str:
        return self.logs_prefix + job_id

    def ready(self) -> list[str]:
        """The keys a job goes through when it may run (the window or the staged set, or the
        delayed set), with the events that say so: the first keys of every script that makes
        jobs ready (``add_ready`` and ``make_ready`` in ``_lib.lua``)."""
        return [self.stream, self.staged, self.staged_seq, self.delayed, self.window, self.events]

    def fixed(self) -> tuple[str, ...]:
        """Every key of the queue but its jobs' records and its groups' rate limits."""
        return (
            self.stream,
            self.staged,
            self.staged_seq,
            self.delayed,
            self.window,
            self.groups,
            self.recurring,
            self.recurring_defs,
            self.retry,
            self.retry_payloads,
            self.dead,
            self.dead_records,
            self.finished,
            self.completed,
            self.schema,
            self.paused,
            self.cancels,
            self.events,
            self.outbox,
            self.flows_creating,
            self.fair,
            self.fair_turn,
            self.fair_waiting,
            self.fair_parked,
            self.fair_full,
            self.fair_limits,
            self.fair_limits_by,
        )

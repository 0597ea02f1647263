"""A small app to copy: welcome emails rendered by workers, enqueued by a producer.

    python -m streamq.example produce [--url URL] [--queue NAME] [--rate PER_SECOND] [--count N]
    python -m streamq worker streamq.example:handle --queue welcome-emails

Both take the Redis URL from ``$STREAMQ_REDIS_URL`` when ``--url`` is not given. This is what
``docker-compose.yml`` runs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import time
from collections.abc import Sequence

import anyio
import msgspec

import streamq
from streamq.ops.eventloop import run

__all__ = ("QUEUE", "Sent", "WelcomeEmail", "build_parser", "handle", "main", "produce")

QUEUE = "welcome-emails"
NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")

TEMPLATE = """\
From: Example <hello@example.com>
To: {name} <{email}>
Subject: Welcome aboard, {name}!

Hi {name},

thanks for signing up. Your account number is {user_id}.
"""


class WelcomeEmail(msgspec.Struct, frozen=True):
    user_id: int
    email: str
    name: str


class Sent(msgspec.Struct, frozen=True):
    message_id: str
    size: int


async def handle(job: streamq.Job[WelcomeEmail]) -> Sent:
    """Render the email and hand it to the mail server (mimicked by a short sleep)."""
    user = job.data
    body = TEMPLATE.format(name=user.name, email=user.email, user_id=user.user_id)
    # Derived from the job, not the attempt: if the job runs again (a worker died mid-send),
    # the mail server sees the same Message-ID and can drop the duplicate.
    digest = hashlib.sha256(f"{job.id}:{user.email}".encode()).hexdigest()
    await anyio.sleep(0.05)  # the SMTP round trip
    return Sent(message_id=f"<{digest[:32]}@example.com>", size=len(body.encode()))


async def produce(url: str | None, queue_name: str, rate: float, count: int | None) -> int:
    """Enqueue ``count`` emails (forever when None) at ``rate`` per second (0: no pacing),
    printing progress every second; returns how many were enqueued."""
    async with streamq.QueueManager(url) as qm:
        queue = qm.get_queue(queue_name, WelcomeEmail)
        enqueued = 0

        async def report_every_second() -> None:
            while True:
                await anyio.sleep(1)
                stats = await queue.stats()
                # `enqueued` is read after the stats: never fewer than the jobs they count
                _print_progress(queue.name, enqueued, stats)

        async with anyio.create_task_group() as tg:
            tg.start_soon(report_every_second)
            start = anyio.current_time()
            numbers = itertools.count(1) if count is None else range(1, count + 1)
            for n in numbers:
                if rate > 0:
                    await anyio.sleep_until(start + (n - 1) / rate)
                name = NAMES[n % len(NAMES)]
                await queue.enqueue(WelcomeEmail(n, f"{name.lower()}{n}@example.com", name))
                enqueued = n
            tg.cancel_scope.cancel()
        _print_progress(queue.name, enqueued, await queue.stats())
        return enqueued


def _print_progress(queue: str, enqueued: int, s: streamq.QueueStats) -> None:
    print(
        f"{time.strftime('%H:%M:%S')} {queue}: enqueued {enqueued}, completed {s.completed},"
        f" waiting {s.waiting}, active {s.active}, retrying {s.retrying}, dead {s.dead}",
        flush=True,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamq.example",
        description="The example app's producer; its worker is"
        " `python -m streamq worker streamq.example:handle --queue welcome-emails`.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("produce", help="enqueue welcome emails, print progress every second")
    p.add_argument(
        "--url", help="Redis URL [default: $STREAMQ_REDIS_URL, else redis://127.0.0.1:6379/0]"
    )
    p.add_argument("--queue", default=QUEUE, help=f"queue name [default: {QUEUE}]")
    p.add_argument(
        "--rate", type=float, default=20.0, help="jobs per second, 0 for no pacing [default: 20]"
    )
    p.add_argument("--count", type=int, help="stop after N jobs [default: never]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate < 0 or (args.count is not None and args.count < 0):
        parser.error("--rate and --count cannot be negative")
    try:
        run(produce, args.url, args.queue, args.rate, args.count)
    except streamq.StreamqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The application's jobs: a welcome email when someone signs up, and a report that is built
in steps (so a retry goes on where the last attempt stopped) and mailed to its owner.

The email and the report are stand-ins: the handlers return what they would have sent.
"""

from __future__ import annotations

import msgspec

import streamq

EMAILS = "emails"
REPORTS = "reports"
#: Numbers a report adds up per step, between two checkpoints.
STEP = 100


class Email(msgspec.Struct, frozen=True):
    to: str
    subject: str


class ReportRequest(msgspec.Struct, frozen=True):
    owner: str
    numbers: list[int]


async def send_email(job: streamq.Job[Email]) -> str:
    email = job.data
    if "@" not in email.to:
        # No retry can fix the address: straight to the dead letters, with the reason.
        raise streamq.Unrecoverable(f"not an email address: {email.to!r}")
    await job.log(f"sending {email.subject!r} to {email.to}")
    return f"sent {email.subject!r} to {email.to}"


async def build_report(job: streamq.Job[ReportRequest]) -> int:
    request = job.data
    # A retried job goes on from its last checkpoint: [next index, sum so far].
    start, total = job.resume_from or (0, 0)
    for index in range(start, len(request.numbers), STEP):
        total += sum(request.numbers[index : index + STEP])
        done = min(index + STEP, len(request.numbers))
        await job.checkpoint([done, total])
        await job.set_progress(done / len(request.numbers))
    if job.manager is not None:  # None when the handler is called alone, in a unit test
        mail = Email(to=request.owner, subject=f"your report: {total}")
        await job.manager.get_queue(EMAILS, Email).enqueue(mail)
    return total


async def start_workers(qm: streamq.QueueManager) -> None:
    """Consume both queues in this process (the app's start-up, or a test)."""
    await qm.get_queue(EMAILS, Email).consume(send_email)
    await qm.get_queue(REPORTS, ReportRequest).consume(build_report)


async def sign_up(qm: streamq.QueueManager, address: str) -> str:
    """What the sign-up endpoint calls: the welcome email goes out in the background."""
    return await qm.get_queue(EMAILS, Email).enqueue(Email(to=address, subject="Welcome!"))


async def request_report(qm: streamq.QueueManager, owner: str, numbers: list[int]) -> str:
    return await qm.get_queue(REPORTS, ReportRequest).enqueue(ReportRequest(owner, numbers))

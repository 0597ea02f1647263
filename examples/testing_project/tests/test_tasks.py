"""The application's jobs tested two ways: through a real Redis with streamq's pytest plugin
(its ``streamq_manager`` fixture, and ``queue.drain()`` to run the jobs to completion), and a
handler alone with ``streamq.testing.make_job`` (no Redis)."""

from __future__ import annotations

import pytest
from app.tasks import (
    EMAILS,
    REPORTS,
    Email,
    ReportRequest,
    build_report,
    request_report,
    send_email,
    sign_up,
    start_workers,
)

import streamq
from streamq.testing import make_job

pytestmark = pytest.mark.anyio


# -- through Redis ------------------------------------------------------------------------


async def test_signing_up_sends_a_welcome_email(streamq_manager: streamq.QueueManager) -> None:
    assert await streamq_manager.queues() == []  # a prefix of the test's own: nothing of others'
    await start_workers(streamq_manager)
    job_id = await sign_up(streamq_manager, "ada@example.com")

    emails = streamq_manager.get_queue(EMAILS, Email)
    await emails.drain(timeout=10)

    job = await emails.get_job(job_id)
    assert job is not None and job.state == "completed"
    assert job.result == "sent 'Welcome!' to ada@example.com"
    assert await emails.job_logs(job_id) == ["sending 'Welcome!' to ada@example.com"]


async def test_a_report_is_built_then_mailed(streamq_manager: streamq.QueueManager) -> None:
    await start_workers(streamq_manager)
    report_id = await request_report(streamq_manager, "bob@example.com", list(range(250)))

    # The report's handler enqueues the email: drain the reports first, then the emails.
    await streamq_manager.get_queue(REPORTS, ReportRequest).drain(timeout=10)
    emails = streamq_manager.get_queue(EMAILS, Email)
    await emails.drain(timeout=10)

    assert await streamq_manager.get_queue(REPORTS).wait_for(report_id, timeout=5) == 31125
    [sent] = await emails.jobs("completed")
    assert sent.result == "sent 'your report: 31125' to bob@example.com"


async def test_a_bad_address_goes_to_the_dead_letters(
    streamq_manager: streamq.QueueManager,
) -> None:
    await start_workers(streamq_manager)
    job_id = await sign_up(streamq_manager, "not-an-address")
    emails = streamq_manager.get_queue(EMAILS, Email)
    await emails.drain(timeout=10)

    [dead] = await emails.dead_letters()
    assert dead.job_id == job_id and dead.attempts == 1
    assert "not an email address: 'not-an-address'" in dead.error


async def test_a_reminder_for_tomorrow_does_not_hold_up_drain(
    streamq_manager: streamq.QueueManager,
) -> None:
    await start_workers(streamq_manager)
    emails = streamq_manager.get_queue(EMAILS, Email)
    await emails.enqueue(Email("ada@example.com", "Still there?"), start_delay=24 * 3600)
    await sign_up(streamq_manager, "ada@example.com")

    await emails.drain(timeout=10)  # returns once the welcome went; tomorrow's job waits

    stats = await emails.stats()
    assert (stats.completed, stats.delayed) == (1, 1)


# -- a handler alone ----------------------------------------------------------------------


async def test_send_email_alone() -> None:
    job = make_job(Email(to="ada@example.com", subject="Hi"))

    assert await send_email(job) == "sent 'Hi' to ada@example.com"
    assert job.logs == ["sending 'Hi' to ada@example.com"]


async def test_send_email_refuses_a_bad_address() -> None:
    with pytest.raises(streamq.Unrecoverable, match="not an email address"):
        await send_email(make_job(Email(to="nobody", subject="Hi")))


async def test_build_report_saves_its_place_as_it_goes() -> None:
    job = make_job(ReportRequest("bob@example.com", list(range(250))))

    assert await build_report(job) == 31125
    assert job.checkpoints == [[100, 4950], [200, 19900], [250, 31125]]
    assert job.progress_values == [0.4, 0.8, 1.0]


async def test_a_retried_report_goes_on_from_its_checkpoint() -> None:
    job = make_job(
        ReportRequest("bob@example.com", list(range(250))), attempt=2, resume_from=[200, 19900]
    )

    assert await build_report(job) == 31125
    assert job.checkpoints == [[250, 31125]]  # only the step that was left

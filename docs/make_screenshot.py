"""Makes docs/dashboard.png (the queues, their last hour's charts and a queue's dead letters): a
throwaway redis-server with a few realistic queues, the dashboard on a free port, and a
headless Chromium (Debian's /usr/bin/chromium: `make chromium`).

    .venv/bin/python docs/make_screenshot.py [MINUTES]

The charts draw what the finishing scripts counted, by the server's clock: the queues first run
MINUTES (default 20) minutes of varying traffic, in real time, so the last hour has a shape.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path
from typing import Any

import anyio

import streamq
from streamq.testing.localserver import LocalRedis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser import chromium, dashboard
from tests.helpers import wait_until

OUT = Path(__file__).with_name("dashboard.png")
MINUTES = int(sys.argv[1]) if len(sys.argv) > 1 else 20


class SMTPRecipientsRefused(Exception):
    pass


class SMTPServerDisconnected(Exception):
    pass


class SMTPDataError(Exception):
    pass


BOUNCES = {
    "bob@example.org": SMTPRecipientsRefused(
        "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual"
        " mailbox table"
    ),
    "ops@legacy.example": SMTPServerDisconnected(
        "Connection unexpectedly closed: timed out after 30 s (mx1.legacy.example:25)"
    ),
    "carol@example.net": SMTPDataError(
        "552 5.3.4 Message size exceeds fixed limit (attachment invoice-2024-118.pdf, 31.4 MB)"
    ),
}


async def traffic(qm: streamq.QueueManager, minutes: int) -> None:
    """A working day in fast motion: thumbnails in waves, a mailing that backs up at its peak,
    bounces, and a partner's webhook endpoint that is down for a few minutes."""
    emails, thumbs, hooks = (qm.get_queue(n) for n in ("emails", "thumbnails", "webhooks"))
    down = range(minutes // 3, minutes // 3 + 2)
    started = anyio.current_time()

    def minute() -> int:
        return int((anyio.current_time() - started) // 60)

    async def mail(job: streamq.Job[Any]) -> None:
        await anyio.sleep(0.04)  # an SMTP round trip: 4 at once keep up until the peak
        if job.data["to"] in BOUNCES:
            raise BOUNCES[job.data["to"]]

    async def thumbnail(job: streamq.Job[Any]) -> None:
        await anyio.sleep(0.005)

    async def deliver(job: streamq.Job[Any]) -> None:
        if minute() in down:
            raise ConnectionError("POST https://hooks.partner.example/orders: 503")

    consumers = [
        await emails.consume(mail, concurrency=4, max_retries=0),
        await thumbs.consume(thumbnail, concurrency=8),
        await hooks.consume(deliver, max_retries=20, backoff=10),
    ]
    bounced = list(BOUNCES)
    n = 0
    while (now := minute()) < minutes:
        wave = 1 + math.sin(now / 3)  # 0..2
        await thumbs.enqueue_many(
            [{"image": f"uploads/{n + i:05d}.jpg", "size": 256} for i in range(int(20 * wave))]
        )
        peak = abs(now - minutes * 3 // 4) <= 1
        mailing = [
            {"to": f"customer{n + i}@example.com", "template": "weekly-digest"}
            for i in range(120 if peak else 3)
        ]
        if n % 20 == 0:
            mailing.append({"to": bounced[n % 3], "template": "order-shipped"})
        await emails.enqueue_many(mailing)
        await hooks.enqueue({"event": "order.paid", "order": 10000 + n})
        n += 1
        await anyio.sleep(1)

    async def delivered() -> bool:  # the endpoint is back: every retry went through
        return (await hooks.stats()).retrying == 0

    await wait_until(delivered, timeout=60, what="the webhooks' retries")
    await emails.drain(timeout=120)  # the peak's backlog
    await thumbs.drain(timeout=60)
    for consumer in consumers:
        await consumer.stop(grace=5)
    await emails.purge_dead()  # the picture of the dead letters is fill()'s; the charts keep these


async def fill(qm: streamq.QueueManager, hold: anyio.Event) -> list[streamq.Consumer[Any]]:
    """Queues as a small shop's would look mid-morning."""
    emails, exports = qm.get_queue("emails"), qm.get_queue("exports")
    thumbs, hooks = qm.get_queue("thumbnails"), qm.get_queue("webhooks")

    async def quick(job: streamq.Job[Any]) -> None:
        pass

    async def bounce(job: streamq.Job[Any]) -> None:
        raise BOUNCES[job.data["to"]]

    async def busy(job: streamq.Job[Any]) -> None:
        await hold.wait()

    async def refused(job: streamq.Job[Any]) -> None:
        raise ConnectionError("POST https://hooks.partner.example/orders: 503 Service Unavailable")

    # Completed work, and the dead letters.
    completed_before = (await thumbs.stats()).completed
    done = await thumbs.consume(quick, concurrency=50)
    await thumbs.enqueue_many([{"image": f"uploads/{n:05d}.jpg", "size": 256} for n in range(480)])
    mail = await emails.consume(bounce, max_retries=0)
    for to in BOUNCES:
        await emails.enqueue({"to": to, "template": "order-shipped"}, job_id=f"ship-{to}")
        with contextlib.suppress(streamq.JobFailed):
            await emails.wait_for(f"ship-{to}", timeout=10)
    await mail.stop()

    async def thumbnails_done() -> bool:
        return (await thumbs.stats()).completed == completed_before + 480

    await wait_until(thumbnails_done, what="480 thumbnails")
    await done.stop()

    # Work in hand: busy consumers, a backlog, delays, retries.
    consumers = [
        await emails.consume(busy, concurrency=4),
        await emails.consume(busy, concurrency=4),
        await thumbs.consume(busy, concurrency=3),
        await hooks.consume(refused, max_retries=5, backoff=900),
    ]
    await emails.enqueue_many(
        [{"to": f"customer{n}@example.com", "template": "weekly-digest"} for n in range(1, 153)]
    )
    await emails.enqueue({"to": "ada@example.com", "template": "password-reset"}, priority=10)
    for n, minutes in enumerate((5, 20, 60)):
        await emails.enqueue({"to": f"trial{n}@example.com", "template": "trial-ends"},
                             start_delay=minutes * 60)  # fmt: skip
    await exports.enqueue_many(
        [{"report": "sales", "month": f"2024-{m:02d}"} for m in range(1, 13)]
    )
    await exports.enqueue({"report": "inventory", "format": "xlsx"}, start_delay=3600)
    await thumbs.enqueue_many(
        [{"image": f"uploads/{n:05d}.jpg", "size": 256} for n in range(480, 520)]
    )
    for order in (10231, 10232):
        await hooks.enqueue({"event": "order.paid", "order": order})

    async def settled() -> bool:
        return (await hooks.stats()).retrying == 2 and (await emails.stats()).active >= 8

    await wait_until(settled, what="the retries and the busy consumers")
    return consumers


async def shoot(url: str) -> None:
    hold = anyio.Event()
    async with streamq.QueueManager(url) as qm:
        await traffic(qm, MINUTES)
        consumers = await fill(qm, hold)
        async with dashboard(url, "streamq", "--allow-actions") as address, chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            job = "ship-bob@example.org"
            await page.goto(f"{address}#queue=emails&tab=dead&job={job}")
            await page.locator("#detail-id").filter(has_text=job).wait_for()
            await page.locator("#queues tbody tr").nth(3).wait_for()
            await page.locator("#charts svg").first.wait_for()
            await page.screenshot(path=str(OUT), full_page=True)
        hold.set()
        for consumer in consumers:
            await consumer.stop(grace=1)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    with LocalRedis() as redis:
        anyio.run(shoot, redis.url)

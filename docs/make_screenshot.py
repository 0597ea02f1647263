"""Makes docs/dashboard.png: a throwaway redis-server with a few realistic queues, the dashboard
on a free port, and a headless Chromium (Debian's /usr/bin/chromium: `make chromium`).

    .venv/bin/python docs/make_screenshot.py [OUT.png]
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import anyio

import streamq
from streamq.testing.localserver import LocalRedis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser import chromium, dashboard
from tests.helpers import wait_until

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("dashboard.png"))


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
    done = await thumbs.consume(quick, concurrency=50)
    await thumbs.enqueue_many([{"image": f"uploads/{n:05d}.jpg", "size": 256} for n in range(480)])
    mail = await emails.consume(bounce, max_retries=0)
    for to in BOUNCES:
        await emails.enqueue({"to": to, "template": "order-shipped"}, job_id=f"ship-{to}")
        with contextlib.suppress(streamq.JobFailed):
            await emails.wait_for(f"ship-{to}", timeout=10)
    await mail.stop()

    async def thumbnails_done() -> bool:
        return (await thumbs.stats()).completed == 480

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
        consumers = await fill(qm, hold)
        async with dashboard(url, "streamq", "--allow-actions") as address, chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            job = "ship-bob@example.org"
            await page.goto(f"{address}#queue=emails&tab=dead&job={job}")
            await page.locator("#detail-id").filter(has_text=job).wait_for()
            await page.locator("#queues tbody tr").nth(3).wait_for()
            await page.screenshot(path=str(OUT), full_page=True)
        hold.set()
        for consumer in consumers:
            await consumer.stop(grace=1)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    with LocalRedis() as redis:
        anyio.run(shoot, redis.url)

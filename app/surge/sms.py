"""SMS pages, posted to the provider's webhook from the outbox with retries.

A page's SMS is written to ``sms_outbox`` in the page's transaction; each process
(when ``PLEDGELINE_SMS_WEBHOOK_URL`` is set) leases due messages in a short
transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, next attempt pushed past the
lease), posts each outside any transaction, then records the outcome: delivered
on a 2xx, else tried again after a back-off (1 s doubling to 5 min), and failed
after ``PLEDGELINE_SMS_WEBHOOK_RETRIES`` attempts (shown on the supervisor's page).
Nothing waits for it on a caller's path.

Delivery is at least once: a process that dies mid-post leaves the lease to
expire and the message is posted again, with the same ``idempotency_key`` in the
body, so the provider drops the second one. Requests are signed like every
webhook of the app (``app/signing.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, or_, select, update

from app.background import BackgroundTask, FailedPasses
from app.db import Database, utcnow
from app.signing import signed_headers
from app.surge.models import Page, SmsMessage

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=30)
BATCH = 50
TIMEOUT_SECONDS = 10.0


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(300.0, 2.0 ** (attempts - 1)))


def _due(now: dt.datetime) -> Any:
    return and_(
        SmsMessage.delivery == "pending",
        or_(SmsMessage.next_attempt_at.is_(None), SmsMessage.next_attempt_at <= now),
    )


def payload(message: SmsMessage) -> dict[str, Any]:
    """The webhook's body (docs/surge.md)."""
    return {
        "idempotency_key": message.idempotency_key,
        "to": message.to_number,
        "text": message.body,
        "page_id": message.page_id,
    }


async def _lease(db: Database) -> list[dict[str, Any]]:
    now = utcnow()
    async with db.read() as session:
        probe = select(SmsMessage.id).where(_due(now)).limit(1)
        if (await session.execute(probe)).first() is None:
            return []  # nothing to send: no writing transaction
    async with db.unit_of_work() as uow:
        stmt = (
            select(SmsMessage)
            .where(_due(now))
            .order_by(SmsMessage.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        rows = list((await uow.session.execute(stmt)).scalars())
        for row in rows:
            row.next_attempt_at = now + LEASE
        return [{"id": row.id, "body": payload(row)} for row in rows]


async def _settle(db: Database, outcomes: dict[int, str | None], max_attempts: int) -> None:
    async with db.unit_of_work() as uow:
        stmt = select(SmsMessage).where(SmsMessage.id.in_(outcomes)).with_for_update()
        for row in (await uow.session.execute(stmt)).scalars():
            error = outcomes[row.id]
            row.attempts += 1
            page_state = None
            if error is None:
                row.delivery = page_state = "delivered"
                row.last_error = None
            else:
                row.last_error = error[:300]
                if row.attempts >= max_attempts:
                    row.delivery = page_state = "failed"
                    log.error("SMS page %s failed for good: %s", row.page_id, error)
                else:
                    row.next_attempt_at = utcnow() + backoff(row.attempts)
            if page_state is not None:
                await uow.session.execute(
                    update(Page).where(Page.id == row.page_id).values(sms=page_state)
                )


async def _post(client: httpx.AsyncClient, url: str, secret: str, body: dict[str, Any]) -> None:
    content = orjson.dumps(body)
    headers = {"Content-Type": "application/json", **signed_headers(secret, content)}
    response = await client.post(url, content=content, headers=headers)
    if response.status_code >= 300:
        raise RuntimeError(f"HTTP {response.status_code}")


async def deliver_pending(
    db: Database, client: httpx.AsyncClient, url: str, secret: str, max_attempts: int
) -> int:
    """Post every due SMS once; the number delivered."""
    sent = 0
    while batch := await _lease(db):
        outcomes: dict[int, str | None] = {}
        for item in batch:
            try:
                await _post(client, url, secret, item["body"])
                outcomes[item["id"]] = None
                sent += 1
            except (httpx.HTTPError, RuntimeError) as exc:
                outcomes[item["id"]] = f"{type(exc).__name__}: {exc}"
        await _settle(db, outcomes, max_attempts)
        if len(batch) < BATCH:
            break
    return sent


class SmsDelivery(BackgroundTask):
    def start(
        self, db: Database, url: str, secret: str, max_attempts: int, poll_seconds: float
    ) -> None:
        self._launch(
            lambda: self._run(db, url, secret, max_attempts, poll_seconds), name="sms-delivery"
        )

    async def _run(
        self, db: Database, url: str, secret: str, max_attempts: int, poll_seconds: float
    ) -> None:
        failures = FailedPasses("SMS delivery pass")
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            while True:
                delay = poll_seconds
                try:
                    await deliver_pending(db, client, url, secret, max_attempts)
                    failures.succeeded()
                except Exception:
                    delay = max(poll_seconds, failures.failed())
                await asyncio.sleep(delay)

"""Pushing outboxed commands to the platform, with retries and back-off.

A command is leased in a short transaction (its next attempt pushed into the
future), sent outside any transaction, then marked delivered; a process that dies
mid-send leaves the lease to expire and another process sends it again. Platforms
must therefore accept a command id twice (docs/telephony.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, or_, select

from app.background import BackgroundTask, FailedPasses
from app.db import Database, utcnow
from app.telephony import commands
from app.telephony.models import Command
from app.telephony.port import DeliveryFailed, TelephonyPlatform

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=30)
BATCH = 100


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(60.0, 0.5 * 2 ** (attempts - 1)))


def _due(now: dt.datetime) -> Any:
    return and_(
        Command.delivery == "pending",
        or_(Command.next_attempt_at.is_(None), Command.next_attempt_at <= now),
    )


async def _lease(db: Database) -> list[dict[str, object]]:
    now = utcnow()
    async with db.read() as session:
        if (await session.execute(select(Command.id).where(_due(now)).limit(1))).first() is None:
            return []  # nothing to send: no writing transaction
    async with db.unit_of_work() as uow:
        stmt = (
            select(Command)
            .where(_due(now))
            .order_by(Command.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        rows = list((await uow.session.execute(stmt)).scalars())
        for row in rows:
            row.next_attempt_at = now + LEASE
        return [commands.as_message(row) for row in rows]


async def _settle(db: Database, outcomes: dict[int, str | None], max_attempts: int) -> None:
    """Record a batch's outcomes (command id -> error or None) in one transaction."""
    async with db.unit_of_work() as uow:
        stmt = select(Command).where(Command.id.in_(outcomes)).with_for_update()
        for row in (await uow.session.execute(stmt)).scalars():
            error = outcomes[row.id]
            row.attempts += 1
            if error is None:
                row.delivery = "delivered"
            elif row.attempts >= max_attempts:
                row.delivery = "failed"
                log.error("command %s (%s) failed for good: %s", row.id, row.command, error)
            else:
                row.next_attempt_at = utcnow() + backoff(row.attempts)


async def _send_in_order(
    platform: TelephonyPlatform,
    messages: list[dict[str, object]],
    outcomes: dict[int, str | None],
) -> None:
    """One call's commands, one after another; each one's outcome into ``outcomes``."""
    for message in messages:
        try:
            await platform.send(message)
            outcomes[int(str(message["id"]))] = None
        except DeliveryFailed as exc:
            outcomes[int(str(message["id"]))] = str(exc)


async def deliver_pending(db: Database, platform: TelephonyPlatform, max_attempts: int) -> int:
    sent = 0
    if not platform.accepts_commands():
        return 0  # another process holds the platform: it delivers them
    while batch := await _lease(db):
        outcomes: dict[int, str | None] = {}
        # A call's commands in their order; different calls' side by side, so one
        # slow request to the platform (a PBX busy with many calls) holds up only its call.
        by_call: dict[str, list[dict[str, object]]] = {}
        for message in batch:
            by_call.setdefault(str(message.get("call_id")), []).append(message)

        await asyncio.gather(*(_send_in_order(platform, m, outcomes) for m in by_call.values()))
        sent += sum(1 for error in outcomes.values() if error is None)
        await _settle(db, outcomes, max_attempts)
        if len(batch) < BATCH:
            break
    return sent


class CommandDelivery(BackgroundTask):
    def __init__(self, platform: TelephonyPlatform, max_attempts: int) -> None:
        super().__init__()
        self.platform = platform
        self.max_attempts = max_attempts
        self._written = asyncio.Event()
        self._wakers: list[Callable[[], None]] = []

    def start(self, db: Database, poll_seconds: float = 0.1) -> None:
        # A command this process commits is sent at once; the poll finds the others
        # (another process's, a retry's back-off come due).
        self._wakers = db.on_rows_written.setdefault(Command.__tablename__, [])
        self._wakers.append(self._written.set)
        self._launch(lambda: self._run(db, poll_seconds), name="command-delivery")

    async def stop(self) -> None:
        if self._written.set in self._wakers:
            self._wakers.remove(self._written.set)
        await super().stop()

    async def _run(self, db: Database, poll_seconds: float) -> None:
        failures = FailedPasses("command delivery pass")
        while True:
            delay = poll_seconds
            self._written.clear()
            try:
                await deliver_pending(db, self.platform, self.max_attempts)
                failures.succeeded()
            except Exception:
                delay = max(poll_seconds, failures.failed())
                await asyncio.sleep(delay)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._written.wait(), delay)

"""``totals.updated``: the running totals pushed to screens, at most once a second.

Every committed pledge event marks its campaign. A loop then emits one
``totals.updated`` event per marked campaign, no sooner than a second after the
previous one for that campaign, with the overall figures (no personal data).
A burst of a hundred pledges in a second therefore causes one event, and the
last pledge of a burst is always followed by an event carrying it.

The one-second spacing holds across processes too: the emitting transaction
takes a PostgreSQL advisory lock for the campaign and looks at the time of the
campaign's last ``totals.updated`` event before writing its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

from sqlalchemy import func, select, text

from app.acd.models import Campaign
from app.background import BackgroundTask, FailedPasses
from app.db import Database, utcnow
from app.pledges import totals
from app.realtime.models import Event
from app.realtime.outbox import emit

log = logging.getLogger(__name__)

EVENT = "totals.updated"
INTERVAL = dt.timedelta(seconds=1)
# Arbitrary namespace for the advisory lock (high 32 bits), the campaign id below it.
_LOCK_SPACE = 0x504C4754
# How far back (in events) to look for the previous totals.updated of a campaign.
_RECENT_EVENTS = 5000


class TotalsPublisher(BackgroundTask):
    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()
        # Set to cut short the wait for a campaign not yet due (``nudge``).
        self._nudged = asyncio.Event()
        # The least time between two totals.updated of a campaign; a test may widen it
        # to hold a burst back and then ``nudge``, counting messages without a clock.
        self.interval = INTERVAL
        self.emitted = 0

    def start(self) -> None:
        self.db.on_events.append(self.on_events)
        self._launch(self._run, name="totals-publisher")

    async def stop(self) -> None:
        if self.on_events in self.db.on_events:
            self.db.on_events.remove(self.on_events)
        await super().stop()

    def nudge(self) -> None:
        """Look again now at the campaigns waiting for their second to pass."""
        self._nudged.set()
        self._wake.set()

    async def on_events(self, events: list[Any]) -> None:
        for event in events:
            if event.type.startswith("pledge.") and event.campaign_id is not None:
                self._dirty.add(event.campaign_id)
                self._wake.set()

    async def _run(self) -> None:
        failures = FailedPasses("totals publication")
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._nudged.clear()  # a nudge from now on cuts the wait below short
            try:
                wait = await self.flush()
                failures.succeeded()
            except Exception:
                wait = max(self.interval.total_seconds(), failures.failed())
            if wait is not None:
                # Some campaign is not due yet: come back when it is (or when nudged).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudged.wait(), wait)
                self._wake.set()

    async def flush(self) -> float | None:
        """Publish for each marked campaign that is due; seconds until the next is due."""
        next_due: float | None = None
        for campaign_id in sorted(self._dirty):
            self._dirty.discard(campaign_id)
            wait = await self.publish(campaign_id)
            if wait is not None:
                self._dirty.add(campaign_id)
                next_due = wait if next_due is None else min(next_due, wait)
        return next_due

    async def publish(self, campaign_id: int) -> float | None:
        """Emit the campaign's totals, or the seconds to wait if one was emitted <1 s ago."""
        async with self.db.unit_of_work() as uow:
            if self.db.is_postgres:
                await uow.session.execute(
                    text("SELECT pg_advisory_xact_lock(:space, :id)"),
                    {"space": _LOCK_SPACE, "id": campaign_id % 2**31},
                )
            # Only the newest events are looked at: an index range, not the history.
            newest = await uow.session.scalar(select(func.max(Event.seq))) or 0
            last = await uow.session.scalar(
                select(Event.at)
                .where(
                    Event.campaign_id == campaign_id,
                    Event.type == EVENT,
                    Event.seq > newest - _RECENT_EVENTS,
                )
                .order_by(Event.seq.desc())
                .limit(1)
            )
            now = utcnow()
            if last is not None and now - last < self.interval:
                return max(0.01, (last + self.interval - now).total_seconds())
            campaign = await uow.session.get(Campaign, campaign_id)
            if campaign is None:
                return None
            figures = await totals.overall(uow.session, campaign_id)
            currency = campaign.currency
            emit(uow, EVENT, campaign_id=campaign_id, data={"currency": currency, **figures})
        self.emitted += 1
        return None

"""The surge monitor: each process checks every queue with surge thresholds every
``PLEDGELINE_SURGE_CHECK_SECONDS`` and switches it into or out of surge.

A pass is one read transaction for all queues (their thresholds and state, their
load by ``app/acd/expected_wait.py``, their answered calls of the last five minutes)
and writes only when something changes. A switch is one transaction: a conditional
``UPDATE queue_surges ... WHERE surge = false`` (or ``= true``) with its event
(``queue.surge_started`` / ``queue.surge_ended``) and whatever the rules do on it
(``app/surge/hooks.py``). Two processes that decide the same switch at once both
send the UPDATE; one gets the row, the other none and does nothing (PostgreSQL's
row lock makes the second re-check ``surge``; SQLite's single writer serialises).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from app.acd.expected_wait import queue_loads
from app.acd.models import Call, Queue
from app.background import BackgroundTask, FailedPasses
from app.db import Database, utcnow
from app.outbox import emit
from app.surge import hooks
from app.surge.hooks import SurgeSwitch
from app.surge.models import QueueSurge
from app.surge.thresholds import (
    SERVICE_LEVEL_WINDOW,
    Decision,
    Measures,
    Move,
    Thresholds,
    decide,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observed:
    queue_id: int
    campaign_id: int
    queue_name: str
    thresholds: Thresholds
    measures: Measures
    surge: bool
    calm_since: dt.datetime | None


async def observe(
    db: Database, now: dt.datetime, queue_ids: list[int] | None = None
) -> list[Observed]:
    """Every enabled queue's thresholds, state and measures: one read transaction."""
    async with db.read() as session:
        stmt = (
            select(QueueSurge, Queue.name, Queue.sl_threshold_seconds)
            .join(Queue, Queue.id == QueueSurge.queue_id)
            .where(QueueSurge.enabled.is_(True))
        )
        if queue_ids is not None:
            stmt = stmt.where(QueueSurge.queue_id.in_(queue_ids))
        rows = (await session.execute(stmt)).all()
        if not rows:
            return []
        ids = [row[0].queue_id for row in rows]
        loads = await queue_loads(session, ids, now)
        answered = await session.execute(
            select(Call.queue_id, Call.wait_seconds).where(
                Call.queue_id.in_(ids),
                Call.answered_at >= now - SERVICE_LEVEL_WINDOW,
            )
        )
        waits: dict[int, list[float]] = {}
        for queue_id, wait in answered.all():
            waits.setdefault(int(queue_id or 0), []).append(wait or 0.0)
    observed = []
    for surge, name, sl_threshold in rows:
        load = loads.get(surge.queue_id)
        queue_waits = waits.get(surge.queue_id, [])
        within = sum(1 for w in queue_waits if w <= sl_threshold)
        observed.append(
            Observed(
                queue_id=surge.queue_id,
                campaign_id=surge.campaign_id,
                queue_name=name,
                thresholds=Thresholds.of(surge),
                measures=Measures(
                    waiting=load.waiting if load else 0,
                    expected_wait_seconds=load.expected_wait_seconds if load else None,
                    service_level=within / len(queue_waits) if queue_waits else None,
                ),
                surge=surge.surge,
                calm_since=surge.calm_since,
            )
        )
    return observed


async def evaluate(
    db: Database, now: dt.datetime | None = None, queue_ids: list[int] | None = None
) -> list[SurgeSwitch]:
    """One pass: the switches this process made (another process may have made some)."""
    now = now or utcnow()
    switches = []
    for seen in await observe(db, now, queue_ids):
        decision = decide(
            seen.thresholds, seen.measures, in_surge=seen.surge, calm_since=seen.calm_since, now=now
        )
        if decision is None:
            continue
        switch = await apply(db, seen, decision, now)
        if switch is not None:
            switches.append(switch)
    return switches


async def apply(
    db: Database, seen: Observed, decision: Decision, now: dt.datetime
) -> SurgeSwitch | None:
    """Write one decision, if the row is still as it was read (see the module)."""
    table = QueueSurge
    where: list[Any] = [table.queue_id == seen.queue_id]
    values: dict[str, Any] = {"updated_at": now}
    measures = seen.measures.as_dict()
    if decision.move == Move.START:
        where.append(table.surge.is_(False))
        reason = decision.reason.value if decision.reason else None
        values |= {"surge": True, "since": now, "reason": reason, "measures": measures}
        values["calm_since"] = None
    elif decision.move == Move.END:
        where += [table.surge.is_(True)]
        values |= {"surge": False, "since": now, "reason": None, "measures": measures}
        values["calm_since"] = None
    elif decision.move == Move.CALM:
        where += [table.surge.is_(True), table.calm_since.is_(None)]
        values["calm_since"] = now
    else:
        where += [table.surge.is_(True), table.calm_since.is_not(None)]
        values["calm_since"] = None
    async with db.unit_of_work() as uow:
        stmt = update(table).where(*where).values(**values).returning(table.queue_id)
        if (await uow.session.execute(stmt)).first() is None:
            return None  # another process got there first
        if decision.move not in (Move.START, Move.END):
            return None
        switch = SurgeSwitch(
            campaign_id=seen.campaign_id,
            queue_id=seen.queue_id,
            queue_name=seen.queue_name,
            started=decision.move == Move.START,
            reason=values["reason"],
            at=now,
        )
        emit(
            uow,
            switch.event,
            campaign_id=seen.campaign_id,
            queue_id=seen.queue_id,
            data={"queue": seen.queue_name, "reason": switch.reason, "measures": measures},
        )
        for hook in hooks.of(db).switched:
            await hook(uow, switch)
    log.info(
        "queue %s %s surge (%s)",
        seen.queue_id,
        "entered" if switch.started else "left",
        switch.reason or "calm",
    )
    return switch


class SurgeMonitor(BackgroundTask):
    def start(self, db: Database, every_seconds: float) -> None:
        self._launch(lambda: self._run(db, every_seconds), name="surge-monitor")

    async def _run(self, db: Database, every_seconds: float) -> None:
        failures = FailedPasses("surge check")
        while True:
            delay = every_seconds
            try:
                await evaluate(db)
                failures.succeeded()
            except Exception:
                delay = max(every_seconds, failures.failed())
            await asyncio.sleep(delay)

"""What the surge endpoints do: thresholds, state, standby sign-ups, pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select

from app.acd.models import Agent, Campaign, Queue
from app.db import Database, utcnow
from app.errors import Invalid, NotFound
from app.outbox import emit
from app.phone_numbers import normalise
from app.surge import monitor, paging
from app.surge.models import STANDBY, Page, QueueSurge, Standby
from app.surge.schemas import PageOut, StandbyIn, StandbyOut, SurgeOut, SurgeSettingsIn

THRESHOLD_FIELDS = (
    "enabled",
    "enter_waiting",
    "leave_waiting",
    "enter_wait_seconds",
    "leave_wait_seconds",
    "enter_service_level",
    "leave_service_level",
    "leave_after_seconds",
)


async def surge_of(db: Database, queue: Queue) -> SurgeOut:
    """The queue's thresholds and state, its measures now and its standby volunteers."""
    now = utcnow()
    async with db.read() as session:
        row = await session.get(QueueSurge, queue.id)
        standby = await paging.candidates(session, queue)
    out = SurgeOut(
        queue_id=queue.id, queue=queue.name, campaign_id=queue.campaign_id, configured=False
    )
    if row is not None:
        out = SurgeOut(
            queue_id=queue.id,
            queue=queue.name,
            campaign_id=queue.campaign_id,
            configured=True,
            **{name: getattr(row, name) for name in THRESHOLD_FIELDS},
            surge=row.surge,
            since=row.since,
            reason=row.reason,
            measures_at_switch=row.measures or {},
            calm_since=row.calm_since,
        )
        seen = await monitor.observe(db, now, [queue.id])
        if seen:
            out.measures_now = seen[0].measures.as_dict()
    out.standby = [
        {"agent_id": c.agent_id, "name": c.display_name, "standby_as": c.standby_as}
        for c in standby
    ]
    return out


async def configure(db: Database, queue: Queue, body: SurgeSettingsIn, by: str) -> None:
    """Set a queue's thresholds (its state is kept), with the event saying so."""
    values: dict[str, Any] = {name: getattr(body, name) for name in THRESHOLD_FIELDS}
    now = utcnow()
    async with db.unit_of_work() as uow:
        existing = await uow.session.get(QueueSurge, queue.id, with_for_update=True)
        if existing is None:
            await uow.session.execute(
                insert(QueueSurge).values(
                    queue_id=queue.id,
                    campaign_id=queue.campaign_id,
                    surge=False,
                    measures={},
                    updated_at=now,
                    **values,
                )
            )
        else:
            for name, value in values.items():
                setattr(existing, name, value)
            existing.updated_at = now
            if not body.enabled and existing.surge:
                existing.surge, existing.since, existing.reason = False, now, None
                existing.calm_since = None
                emit(
                    uow,
                    "queue.surge_ended",
                    campaign_id=queue.campaign_id,
                    queue_id=queue.id,
                    data={"queue": queue.name, "reason": "disabled", "measures": {}},
                )
        emit(
            uow,
            "queue.surge_configured",
            campaign_id=queue.campaign_id,
            queue_id=queue.id,
            data={"by": by, **values},
        )


async def set_standby(db: Database, agent: Agent, body: StandbyIn, by: str) -> StandbyOut:
    phone = None
    if body.phone is not None and body.phone.strip():
        async with db.read() as session:
            campaign = await session.get(Campaign, agent.campaign_id)
        region = campaign.default_region if campaign is not None else "FR"
        number = normalise(body.phone, region)
        if number.e164 is None:
            raise Invalid("not a phone number (E.164 or national)", field="phone")
        phone = number.e164
    now = utcnow()
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            uow.db.insert_or_ignore(STANDBY).values(
                agent_id=agent.id, campaign_id=agent.campaign_id, standby=False, updated_at=now
            )
        )
        row = await uow.session.get(Standby, agent.id, with_for_update=True)
        assert row is not None
        row.standby, row.phone, row.updated_at = body.standby, phone, now
        emit(
            uow,
            "agent.standby_changed",
            campaign_id=agent.campaign_id,
            # No agent_id: a supervisor's change, for supervisors' screens.
            data={"about_agent_id": agent.id, "standby": body.standby, "by": by},
        )
    return StandbyOut(
        agent_id=agent.id, campaign_id=agent.campaign_id, standby=body.standby, phone=phone
    )


async def pages(
    db: Database, campaign_id: int | None, since: dt.datetime, limit: int
) -> list[PageOut]:
    async with db.read() as session:
        stmt = (
            select(Page, Agent.display_name)
            .join(Agent, Agent.id == Page.agent_id)
            .where(Page.paged_at >= since)
            .order_by(Page.id.desc())
            .limit(limit)
        )
        if campaign_id is not None:
            stmt = stmt.where(Page.campaign_id == campaign_id)
        rows = (await session.execute(stmt)).all()
    return [
        PageOut(
            id=page.id,
            campaign_id=page.campaign_id,
            queue_id=page.queue_id,
            agent_id=page.agent_id,
            agent_name=name,
            paged_by=page.paged_by,
            paged_at=page.paged_at,
            standby_as=page.standby_as,
            message=page.message,
            answered_at=page.answered_at,
            sms=page.sms,
        )
        for page, name in rows
    ]


async def page_by_hand(
    db: Database, queue_id: int, only: set[int] | None, by: str
) -> paging.PageOutcome:
    async with db.unit_of_work() as uow:
        queue = await uow.session.get(Queue, queue_id)
        if queue is None:
            raise NotFound("queue {queue_id} not found", field="queue_id", queue_id=queue_id)
        return await paging.page_standby(uow, queue, by=by, only=only)

"""Surge HTTP API: a queue's thresholds and state, paging by hand, standby sign-ups,
the pages. Supervisors (their own campaign) and admins."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.acd import repository
from app.acd.models import Queue
from app.auth.deps import check_campaign, check_site, require
from app.auth.service import Principal, Role
from app.db import Database, utcnow
from app.deps import get_db
from app.surge import service
from app.surge.schemas import (
    PageIn,
    PageOut,
    PageRunOut,
    StandbyIn,
    StandbyOut,
    SurgeOut,
    SurgeSettingsIn,
)

router = APIRouter(tags=["surge"])
DB = Annotated[Database, Depends(get_db)]
Supervising = Annotated[Principal, Depends(require(Role.SUPERVISOR))]


async def _queue(db: Database, principal: Principal, queue_id: int) -> Queue:
    async with db.read() as session:
        queue = await repository.get_queue(session, queue_id)
    check_campaign(principal, queue.campaign_id)
    return queue


@router.get("/queues/{queue_id}/surge", response_model=SurgeOut)
async def get_surge(queue_id: int, db: DB, principal: Supervising) -> SurgeOut:
    """The queue's surge thresholds and state (since when, which threshold), its
    measures now and its standby volunteers."""
    return await service.surge_of(db, await _queue(db, principal, queue_id))


@router.put("/queues/{queue_id}/surge", response_model=SurgeOut)
async def put_surge(
    queue_id: int, body: SurgeSettingsIn, db: DB, principal: Supervising
) -> SurgeOut:
    """Set the queue's surge thresholds (enter and leave pairs, see docs/surge.md)."""
    queue = await _queue(db, principal, queue_id)
    await service.configure(db, queue, body, principal.username)
    return await service.surge_of(db, queue)


@router.post("/queues/{queue_id}/surge/page", response_model=PageRunOut)
async def page_standby(queue_id: int, body: PageIn, db: DB, principal: Supervising) -> PageRunOut:
    """Page the queue's standby volunteers now (or only those named), quiet period kept."""
    await _queue(db, principal, queue_id)
    only = set(body.agent_ids) if body.agent_ids is not None else None
    outcome = await service.page_by_hand(db, queue_id, only, principal.username)
    return PageRunOut(
        page_ids=outcome.paged,
        paged_agent_ids=outcome.paged_agents,
        quiet_agent_ids=outcome.quiet,
    )


@router.put("/agents/{agent_id}/standby", response_model=StandbyOut)
async def put_standby(agent_id: int, body: StandbyIn, db: DB, principal: Supervising) -> StandbyOut:
    """Sign a volunteer up as standby (or not), with the phone number SMS pages go to."""
    async with db.read() as session:
        agent = await repository.get_agent(session, agent_id)
    check_campaign(principal, agent.campaign_id)
    check_site(principal, agent.site_id)
    return await service.set_standby(db, agent, body, principal.username)


@router.get("/pages", response_model=list[PageOut])
async def list_pages(
    db: DB,
    principal: Supervising,
    campaign_id: Annotated[int | None, Query()] = None,
    hours: Annotated[int, Query(ge=1, le=168)] = 12,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[PageOut]:
    """Pages of the last ``hours``, newest first: who was paged, who answered, when."""
    if principal.role == Role.SUPERVISOR:
        if campaign_id is not None:
            check_campaign(principal, campaign_id)
        campaign_id = principal.campaign_id
    since = utcnow() - dt.timedelta(hours=hours)
    return await service.pages(db, campaign_id, since, limit)

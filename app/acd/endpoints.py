"""ACD HTTP API: thin handlers over ``config``, ``lifecycle`` and ``stats``.

Each writing handler is one unit of work: it commits once, at the end of the
``async with`` block, together with the events the step wrote.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from app.acd import config, lifecycle, repository, stats
from app.acd.models import Agent, Call, Campaign, Queue, Seat
from app.acd.schemas import (
    AgentIn,
    AgentOut,
    AgentPatch,
    CallOut,
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    LoginIn,
    PauseIn,
    QueueIn,
    QueueOut,
    QueuePatch,
    SeatIn,
    SeatOut,
    SeatPatch,
    StatsOut,
    TransferIn,
    WrapUpEndIn,
    WrapUpExtendIn,
    agent_out,
)
from app.acd.states import AgentState
from app.db import Database, utcnow
from app.deps import get_app_settings, get_db
from app.errors import Conflict, Invalid, NotFound
from app.settings import Settings

router = APIRouter()
DB = Annotated[Database, Depends(get_db)]


# --- campaigns -------------------------------------------------------------------


@router.post("/campaigns", status_code=201, response_model=CampaignOut, tags=["config"])
async def create_campaign(body: CampaignIn, db: DB) -> Campaign:
    async with db.unit_of_work() as uow:
        return await config.create_campaign(uow, body)


@router.get("/campaigns", response_model=list[CampaignOut], tags=["config"])
async def list_campaigns(db: DB) -> list[Campaign]:
    async with db.read() as session:
        return await config.list_rows(session, Campaign)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["config"])
async def get_campaign(campaign_id: int, db: DB) -> Campaign:
    async with db.read() as session:
        return await repository.get_campaign(session, campaign_id)


@router.patch("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["config"])
async def update_campaign(campaign_id: int, body: CampaignPatch, db: DB) -> Campaign:
    async with db.unit_of_work() as uow:
        return await config.update_campaign(uow, campaign_id, body)


# --- queues ----------------------------------------------------------------------


@router.post("/queues", status_code=201, response_model=QueueOut, tags=["config"])
async def create_queue(body: QueueIn, db: DB) -> Queue:
    async with db.unit_of_work() as uow:
        return await config.create_queue(uow, body)


@router.get("/queues", response_model=list[QueueOut], tags=["config"])
async def list_queues(db: DB, campaign_id: int | None = None) -> list[Queue]:
    async with db.read() as session:
        return await config.list_rows(session, Queue, campaign_id)


@router.get("/queues/{queue_id}", response_model=QueueOut, tags=["config"])
async def get_queue(queue_id: int, db: DB) -> Queue:
    async with db.read() as session:
        return await repository.get_queue(session, queue_id)


@router.patch("/queues/{queue_id}", response_model=QueueOut, tags=["config"])
async def update_queue(queue_id: int, body: QueuePatch, db: DB) -> Queue:
    async with db.unit_of_work() as uow:
        return await config.update_queue(uow, queue_id, body)


@router.get("/queues/{queue_id}/stats", response_model=StatsOut, tags=["acd"])
async def queue_stats(
    queue_id: int,
    db: DB,
    settings: Annotated[Settings, Depends(get_app_settings)],
    window_seconds: Annotated[int | None, Query(ge=60, le=7 * 86400)] = None,
) -> dict[str, object]:
    async with db.read() as session:
        queue = await repository.get_queue(session, queue_id)
        return await stats.queue_stats(
            session,
            queue,
            utcnow(),
            window_seconds=window_seconds or settings.stats_window_seconds,
            short_abandon_seconds=settings.short_abandon_seconds,
        )


# --- agents ----------------------------------------------------------------------


async def _agent_out(db: Database, agent_id: int) -> AgentOut:
    async with db.read() as session:
        agent = await repository.get_agent(session, agent_id)
        return agent_out(agent, await repository.agent_skills(session, agent_id))


@router.post("/agents", status_code=201, response_model=AgentOut, tags=["config"])
async def create_agent(body: AgentIn, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        agent = await config.create_agent(uow, body)
    return await _agent_out(db, agent.id)


@router.get("/agents", response_model=list[AgentOut], tags=["config"])
async def list_agents(
    db: DB, campaign_id: int | None = None, state: AgentState | None = None
) -> list[AgentOut]:
    async with db.read() as session:
        agents = await config.list_rows(session, Agent, campaign_id)
        if state is not None:
            agents = [a for a in agents if a.state == state]
        skills = await config.skills_by_agent(session, [a.id for a in agents])
    return [agent_out(a, skills[a.id]) for a in agents]


@router.get("/agents/{agent_id}", response_model=AgentOut, tags=["config"])
async def get_agent(agent_id: int, db: DB) -> AgentOut:
    return await _agent_out(db, agent_id)


@router.patch("/agents/{agent_id}", response_model=AgentOut, tags=["config"])
async def update_agent(agent_id: int, body: AgentPatch, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        await config.update_agent(uow, agent_id, body)
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/login", response_model=AgentOut, tags=["agent"])
async def agent_login(agent_id: int, body: LoginIn, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        if body.seat_id is not None:
            seat = await config.get_seat(uow.session, body.seat_id)
            if seat.campaign_id != agent.campaign_id:
                raise Invalid("seat belongs to another campaign", field="seat_id")
            taken = await uow.session.execute(
                select(Agent.id).where(
                    Agent.seat_id == seat.id,
                    Agent.id != agent.id,
                    Agent.state != AgentState.LOGGED_OUT,
                )
            )
            if taken.first() is not None:
                raise Conflict(
                    "seat is in use by another agent", code="seat_in_use", field="seat_id"
                )
        await lifecycle.login(uow, agent, body.seat_id, utcnow())
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/ready", response_model=AgentOut, tags=["agent"])
async def agent_ready(agent_id: int, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.ready(uow, agent, utcnow())
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/pause", response_model=AgentOut, tags=["agent"])
async def agent_pause(agent_id: int, body: PauseIn, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.pause(uow, agent, body.reason, utcnow())
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/logout", response_model=AgentOut, tags=["agent"])
async def agent_logout(agent_id: int, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.logout(uow, agent, utcnow())
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/answer", response_model=AgentOut, tags=["agent"])
async def agent_answer(agent_id: int, db: DB) -> AgentOut:
    """The agent's screen takes the offered call (what auto-answer does without a click)."""
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        await lifecycle.connect(uow, call, agent, utcnow())
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/hangup", response_model=AgentOut, tags=["agent"])
async def agent_hangup(agent_id: int, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        await lifecycle.start_wrap_up(uow, call, agent, utcnow(), by="agent")
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/transfer", response_model=AgentOut, tags=["agent"])
async def agent_transfer(agent_id: int, body: TransferIn, db: DB) -> AgentOut:
    if (body.queue_id is None) == (body.number is None):
        raise Invalid("give exactly one of queue_id or number", field="queue_id")
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        if body.queue_id is not None:
            target = await repository.get_queue(uow.session, body.queue_id)
            await lifecycle.transfer_to_queue(uow, call, agent, target, utcnow())
        else:
            assert body.number is not None
            await lifecycle.transfer_out(uow, call, agent, body.number, utcnow())
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/wrap-up/end", response_model=AgentOut, tags=["agent"])
async def agent_end_wrap_up(agent_id: int, body: WrapUpEndIn, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        await lifecycle.end_wrap_up(uow, call, agent, utcnow(), body.disposition)
    return await _agent_out(db, agent_id)


@router.post("/agents/{agent_id}/wrap-up/extend", response_model=AgentOut, tags=["agent"])
async def agent_extend_wrap_up(agent_id: int, body: WrapUpExtendIn, db: DB) -> AgentOut:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.extend_wrap_up(uow, agent, body.seconds, utcnow())
    return await _agent_out(db, agent_id)


# --- seats and calls ---------------------------------------------------------------


@router.post("/seats", status_code=201, response_model=SeatOut, tags=["config"])
async def create_seat(body: SeatIn, db: DB) -> Seat:
    async with db.unit_of_work() as uow:
        return await config.create_seat(uow, body)


@router.get("/seats", response_model=list[SeatOut], tags=["config"])
async def list_seats(db: DB, campaign_id: int | None = None) -> list[Seat]:
    async with db.read() as session:
        return await config.list_rows(session, Seat, campaign_id)


@router.get("/seats/{seat_id}", response_model=SeatOut, tags=["config"])
async def get_seat(seat_id: int, db: DB) -> Seat:
    async with db.read() as session:
        return await config.get_seat(session, seat_id)


@router.patch("/seats/{seat_id}", response_model=SeatOut, tags=["config"])
async def update_seat(seat_id: int, body: SeatPatch, db: DB) -> Seat:
    async with db.unit_of_work() as uow:
        return await config.update_seat(uow, seat_id, body)


@router.get("/calls/{call_id}", response_model=CallOut, tags=["acd"])
async def get_call(call_id: int, db: DB) -> Call:
    async with db.read() as session:
        call = await session.get(Call, call_id)
        if call is None:
            raise NotFound(f"call {call_id} not found", field="call_id")
        return call


@router.get("/calls", response_model=list[CallOut], tags=["acd"])
async def list_calls(
    db: DB,
    campaign_id: int | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Call]:
    async with db.read() as session:
        stmt = select(Call).order_by(Call.id.desc()).limit(limit)
        if campaign_id is not None:
            stmt = stmt.where(Call.campaign_id == campaign_id)
        if state is not None:
            stmt = stmt.where(Call.state == state)
        return list((await session.execute(stmt)).scalars())

"""ACD HTTP API: thin handlers over ``config``, ``lifecycle`` and ``stats``.

Each writing handler is one unit of work: it commits once, at the end of the
``async with`` block, together with the events the step wrote.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from app.acd import actions, config, config_cache, lifecycle, repository, stats
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
from app.auth.deps import (
    check_agent,
    check_campaign,
    check_site,
    current_principal,
    require,
    site_scope,
)
from app.auth.service import Principal, Role
from app.db import Database, utcnow
from app.deps import get_app_settings, get_db
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.settings import Settings

router = APIRouter()
DB = Annotated[Database, Depends(get_db)]
# Who may: admins configure; supervisors watch and steer their own campaign;
# organisers read; volunteers act on their own session only.
Admin = Annotated[Principal, Depends(require())]
Staff = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ORGANISER))]
Steering = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.AGENT))]
Anyone = Annotated[Principal, Depends(current_principal)]


def _scope(principal: Principal, campaign_id: int | None) -> int | None:
    """The campaign a listing is limited to: a supervisor sees their own only."""
    if principal.role in (Role.SUPERVISOR, Role.AGENT):
        if campaign_id is not None:
            check_campaign(principal, campaign_id)
        return principal.campaign_id
    return campaign_id


# --- campaigns -------------------------------------------------------------------


@router.post("/campaigns", status_code=201, response_model=CampaignOut, tags=["config"])
async def create_campaign(body: CampaignIn, db: DB, _: Admin) -> Campaign:
    async with db.unit_of_work() as uow:
        return await config.create_campaign(uow, body)


@router.get("/campaigns", response_model=list[CampaignOut], tags=["config"])
async def list_campaigns(db: DB, principal: Staff) -> list[Campaign]:
    async with db.read() as session:
        campaigns = await config.list_rows(session, Campaign)
    scope = _scope(principal, None)
    return [c for c in campaigns if scope is None or c.id == scope]


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["config"])
async def get_campaign(campaign_id: int, db: DB, principal: Staff) -> Campaign:
    check_campaign(principal, campaign_id)
    async with db.read() as session:
        return await repository.get_campaign(session, campaign_id)


@router.patch("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["config"])
async def update_campaign(campaign_id: int, body: CampaignPatch, db: DB, _: Admin) -> Campaign:
    async with db.unit_of_work() as uow:
        return await config.update_campaign(uow, campaign_id, body)


# --- queues ----------------------------------------------------------------------


@router.post("/queues", status_code=201, response_model=QueueOut, tags=["config"])
async def create_queue(body: QueueIn, db: DB, _: Admin) -> Queue:
    async with db.unit_of_work() as uow:
        return await config.create_queue(uow, body)


@router.get("/queues", response_model=list[QueueOut], tags=["config"])
async def list_queues(db: DB, principal: Staff, campaign_id: int | None = None) -> list[Queue]:
    async with db.read() as session:
        return await config.list_rows(session, Queue, _scope(principal, campaign_id))


@router.get("/queues/{queue_id}", response_model=QueueOut, tags=["config"])
async def get_queue(queue_id: int, db: DB, principal: Staff) -> Queue:
    async with db.read() as session:
        queue = await repository.get_queue(session, queue_id)
    check_campaign(principal, queue.campaign_id)
    return queue


@router.patch("/queues/{queue_id}", response_model=QueueOut, tags=["config"])
async def update_queue(queue_id: int, body: QueuePatch, db: DB, _: Admin) -> Queue:
    async with db.unit_of_work() as uow:
        return await config.update_queue(uow, queue_id, body)


@router.get("/queues/{queue_id}/stats", response_model=StatsOut, tags=["acd"])
async def queue_stats(
    queue_id: int,
    db: DB,
    principal: Staff,
    settings: Annotated[Settings, Depends(get_app_settings)],
    window_seconds: Annotated[int | None, Query(ge=60, le=7 * 86400)] = None,
) -> dict[str, object]:
    async with db.read() as session:
        queue = await repository.get_queue(session, queue_id)
        check_campaign(principal, queue.campaign_id)
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
async def create_agent(body: AgentIn, db: DB, _: Admin) -> AgentOut:
    async with db.unit_of_work() as uow:
        agent = await config.create_agent(uow, body)
    return await _agent_out(db, agent.id)


@router.get("/agents", response_model=list[AgentOut], tags=["config"])
async def list_agents(
    db: DB, principal: Staff, campaign_id: int | None = None, state: AgentState | None = None
) -> list[AgentOut]:
    async with db.read() as session:
        agents = await config.list_rows(session, Agent, _scope(principal, campaign_id))
        if state is not None:
            agents = [a for a in agents if a.state == state]
        if (site := site_scope(principal)) is not None:
            agents = [a for a in agents if a.site_id == site]
        skills = await config.skills_by_agent(session, [a.id for a in agents])
    return [agent_out(a, skills[a.id]) for a in agents]


@router.get("/agents/{agent_id}", response_model=AgentOut, tags=["config"])
async def get_agent(agent_id: int, db: DB, principal: Anyone) -> AgentOut:
    out = await _agent_out(db, agent_id)
    if principal.role != Role.ORGANISER:
        check_agent(principal, agent_id, out.campaign_id)
        check_site(principal, out.site_id)
    return out


@router.patch("/agents/{agent_id}", response_model=AgentOut, tags=["config"])
async def update_agent(agent_id: int, body: AgentPatch, db: DB, _: Admin) -> AgentOut:
    async with db.unit_of_work() as uow:
        await config.update_agent(uow, agent_id, body)
    return await _agent_out(db, agent_id)


def _may_act(principal: Principal) -> actions.Authorize:
    """The permission check, run on the agent row inside the action's transaction."""

    def check(agent: Agent) -> None:
        check_agent(principal, agent.id, agent.campaign_id)
        check_site(principal, agent.site_id)

    return check


def _refuse_other_agents(principal: Principal, agent_id: int) -> None:
    """A volunteer acting on someone else's session is refused before any read."""
    if principal.role == Role.AGENT and principal.agent_id != agent_id:
        raise Forbidden("volunteers act on their own session only")


async def _answer(db: Database, agent: Agent) -> AgentOut:
    """The agent as the action left it, with its skills from the process's cache."""
    return agent_out(agent, await config_cache.skills_of(db, agent.id))


@router.post("/agents/{agent_id}/login", response_model=AgentOut, tags=["agent"])
async def agent_login(agent_id: int, body: LoginIn, db: DB, principal: Steering) -> AgentOut:
    _refuse_other_agents(principal, agent_id)
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        _may_act(principal)(agent)
        if body.seat_id is not None:
            seat = await config.get_seat(uow.session, body.seat_id)
            if seat.campaign_id != agent.campaign_id:
                raise Invalid("seat belongs to another campaign", field="seat_id")
            check_site(principal, seat.site_id)
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
    return await _answer(db, agent)


@router.post("/agents/{agent_id}/ready", response_model=AgentOut, tags=["agent"])
async def agent_ready(agent_id: int, db: DB, principal: Steering) -> AgentOut:
    _refuse_other_agents(principal, agent_id)
    return await _answer(db, await actions.ready(db, agent_id, _may_act(principal)))


@router.post("/agents/{agent_id}/pause", response_model=AgentOut, tags=["agent"])
async def agent_pause(agent_id: int, body: PauseIn, db: DB, principal: Steering) -> AgentOut:
    _refuse_other_agents(principal, agent_id)
    agent = await actions.pause(db, agent_id, body.reason, _may_act(principal))
    return await _answer(db, agent)


@router.post("/agents/{agent_id}/logout", response_model=AgentOut, tags=["agent"])
async def agent_logout(agent_id: int, db: DB, principal: Steering) -> AgentOut:
    _refuse_other_agents(principal, agent_id)
    return await _answer(db, await actions.logout(db, agent_id, _may_act(principal)))


@router.post("/agents/{agent_id}/answer", response_model=AgentOut, tags=["agent"])
async def agent_answer(agent_id: int, db: DB, principal: Steering) -> AgentOut:
    """The agent's screen takes the offered call (what auto-answer does without a click)."""
    _refuse_other_agents(principal, agent_id)
    return await _answer(db, await actions.answer(db, agent_id, _may_act(principal)))


@router.post("/agents/{agent_id}/hangup", response_model=AgentOut, tags=["agent"])
async def agent_hangup(agent_id: int, db: DB, principal: Steering) -> AgentOut:
    _refuse_other_agents(principal, agent_id)
    return await _answer(db, await actions.hangup(db, agent_id, _may_act(principal)))


@router.post("/agents/{agent_id}/transfer", response_model=AgentOut, tags=["agent"])
async def agent_transfer(agent_id: int, body: TransferIn, db: DB, principal: Steering) -> AgentOut:
    _refuse_other_agents(principal, agent_id)
    agent = await actions.transfer(db, agent_id, body.queue_id, body.number, _may_act(principal))
    return await _answer(db, agent)


@router.post("/agents/{agent_id}/wrap-up/end", response_model=AgentOut, tags=["agent"])
async def agent_end_wrap_up(
    agent_id: int, body: WrapUpEndIn, db: DB, principal: Steering
) -> AgentOut:
    _refuse_other_agents(principal, agent_id)
    agent = await actions.end_wrap_up(db, agent_id, body.disposition, _may_act(principal))
    return await _answer(db, agent)


@router.post("/agents/{agent_id}/wrap-up/extend", response_model=AgentOut, tags=["agent"])
async def agent_extend_wrap_up(
    agent_id: int, body: WrapUpExtendIn, db: DB, principal: Steering
) -> AgentOut:
    _refuse_other_agents(principal, agent_id)
    agent = await actions.extend_wrap_up(db, agent_id, body.seconds, _may_act(principal))
    return await _answer(db, agent)


# --- seats and calls ---------------------------------------------------------------


@router.post("/seats", status_code=201, response_model=SeatOut, tags=["config"])
async def create_seat(body: SeatIn, db: DB, _: Admin) -> Seat:
    async with db.unit_of_work() as uow:
        return await config.create_seat(uow, body)


@router.get("/seats", response_model=list[SeatOut], tags=["config"])
async def list_seats(db: DB, principal: Staff, campaign_id: int | None = None) -> list[Seat]:
    async with db.read() as session:
        seats = await config.list_rows(session, Seat, _scope(principal, campaign_id))
    site = site_scope(principal)
    return [s for s in seats if site is None or s.site_id == site]


@router.get("/seats/{seat_id}", response_model=SeatOut, tags=["config"])
async def get_seat(seat_id: int, db: DB, principal: Staff) -> Seat:
    async with db.read() as session:
        seat = await config.get_seat(session, seat_id)
    check_campaign(principal, seat.campaign_id)
    check_site(principal, seat.site_id)
    return seat


@router.patch("/seats/{seat_id}", response_model=SeatOut, tags=["config"])
async def update_seat(seat_id: int, body: SeatPatch, db: DB, _: Admin) -> Seat:
    async with db.unit_of_work() as uow:
        return await config.update_seat(uow, seat_id, body)


@router.get("/calls/{call_id}", response_model=CallOut, tags=["acd"])
async def get_call(call_id: int, db: DB, principal: Anyone) -> Call:
    async with db.read() as session:
        call = await session.get(Call, call_id)
    if call is None:
        raise NotFound("call {call_id} not found", field="call_id", call_id=call_id)
    if principal.role == Role.AGENT:
        if call.agent_id != principal.agent_id:
            raise NotFound("call {call_id} not found", field="call_id", call_id=call_id)
    else:
        check_campaign(principal, call.campaign_id)
    return call


@router.get("/calls", response_model=list[CallOut], tags=["acd"])
async def list_calls(
    db: DB,
    principal: Staff,
    campaign_id: int | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Call]:
    async with db.read() as session:
        stmt = select(Call).order_by(Call.id.desc()).limit(limit)
        campaign_id = _scope(principal, campaign_id)
        if campaign_id is not None:
            stmt = stmt.where(Call.campaign_id == campaign_id)
        if state is not None:
            stmt = stmt.where(Call.state == state)
        return list((await session.execute(stmt)).scalars())

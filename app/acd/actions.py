"""Agent actions as whole units of work, shared by the REST API and the sockets.

Each function opens one transaction, applies one step and commits, and gives back
the agent row as the step left it (for the answer: no second read). ``authorize``,
when given, is called with the agent row inside the transaction, before anything
is committed: the permission check and the action share the write transaction,
and a refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from app.acd import callbacks, lifecycle, repository, transfer_numbers
from app.acd.models import CALL_KIND_CALLBACK, Agent, Call
from app.acd.states import AgentState
from app.db import Database, UnitOfWork, utcnow
from app.errors import Invalid

Authorize = Callable[[Agent], None]


async def _locked_agent(uow: UnitOfWork, agent_id: int, authorize: Authorize | None) -> Agent:
    agent = await repository.get_agent(uow.session, agent_id, lock=True)
    if authorize is not None:
        authorize(agent)
    return agent


async def login(
    db: Database, agent_id: int, seat_id: int | None = None, authorize: Authorize | None = None
) -> Agent:
    async with db.unit_of_work() as uow:
        agent = await _locked_agent(uow, agent_id, authorize)
        await lifecycle.login(uow, agent, seat_id, utcnow())
    return agent


async def login_and_ready(db: Database, agent_id: int, authorize: Authorize | None = None) -> Agent:
    """The softphone's Ready: starts the ACD session first if there is none."""
    async with db.unit_of_work() as uow:
        agent = await _locked_agent(uow, agent_id, authorize)
        if agent.state == AgentState.LOGGED_OUT:
            await lifecycle.login(uow, agent, None, utcnow())
        await lifecycle.ready(uow, agent, utcnow())
    return agent


async def ready(db: Database, agent_id: int, authorize: Authorize | None = None) -> Agent:
    async with db.unit_of_work() as uow:
        agent = await _locked_agent(uow, agent_id, authorize)
        await lifecycle.ready(uow, agent, utcnow())
    return agent


async def pause(
    db: Database, agent_id: int, reason: str, authorize: Authorize | None = None
) -> Agent:
    async with db.unit_of_work() as uow:
        agent = await _locked_agent(uow, agent_id, authorize)
        await lifecycle.pause(uow, agent, reason, utcnow())
    return agent


async def logout(db: Database, agent_id: int, authorize: Authorize | None = None) -> Agent:
    async with db.unit_of_work() as uow:
        agent = await _locked_agent(uow, agent_id, authorize)
        await lifecycle.logout(uow, agent, utcnow())
    return agent


async def _agent_call(
    uow: UnitOfWork, agent_id: int, authorize: Authorize | None
) -> tuple[Call, Agent]:
    return await lifecycle.agent_call(uow, agent_id, authorize)


async def answer(db: Database, agent_id: int, authorize: Authorize | None = None) -> Agent:
    """Take the offered call; for a callback, accept it: the platform dials the caller."""
    async with db.unit_of_work() as uow:
        call, agent = await _agent_call(uow, agent_id, authorize)
        if call.kind == CALL_KIND_CALLBACK:
            await callbacks.accept(uow, call, agent, utcnow())
        else:
            await lifecycle.connect(uow, call, agent, utcnow())
    return agent


async def hangup(db: Database, agent_id: int, authorize: Authorize | None = None) -> Agent:
    async with db.unit_of_work() as uow:
        call, agent = await _agent_call(uow, agent_id, authorize)
        await lifecycle.start_wrap_up(uow, call, agent, utcnow(), by="agent")
    return agent


async def end_wrap_up(
    db: Database, agent_id: int, disposition: str | None, authorize: Authorize | None = None
) -> Agent:
    async with db.unit_of_work() as uow:
        agent = await lifecycle.finish_wrap_up(uow, agent_id, utcnow(), disposition, authorize)
    return agent


async def extend_wrap_up(
    db: Database, agent_id: int, seconds: int, authorize: Authorize | None = None
) -> Agent:
    async with db.unit_of_work() as uow:
        agent = await _locked_agent(uow, agent_id, authorize)
        await lifecycle.extend_wrap_up(uow, agent, seconds, utcnow())
    return agent


async def transfer(
    db: Database,
    agent_id: int,
    queue_id: int | None,
    number: str | None,
    authorize: Authorize | None = None,
) -> Agent:
    if (queue_id is None) == (number is None):
        raise Invalid("give exactly one of queue_id or number", field="queue_id")
    async with db.unit_of_work() as uow:
        call, agent = await _agent_call(uow, agent_id, authorize)
        if queue_id is not None:
            target = await repository.get_queue(uow.session, queue_id)
            await lifecycle.transfer_to_queue(uow, call, agent, target, utcnow())
        elif number is not None:
            # Only to a number the campaign allows (toll fraud): refused before any change.
            campaign = await repository.get_campaign(uow.session, call.campaign_id)
            allowed = transfer_numbers.check(
                number, campaign.transfer_numbers or [], campaign.default_region
            )
            await lifecycle.transfer_out(uow, call, agent, allowed, utcnow())
    return agent

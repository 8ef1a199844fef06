"""Agent actions as whole units of work, shared by the REST API and the sockets.

Each function opens one transaction, applies one step and commits; callers check
permissions first (``app.auth.deps``).
"""

from __future__ import annotations

from app.acd import lifecycle, repository
from app.acd.states import AgentState
from app.db import Database, utcnow
from app.errors import Invalid


async def login(db: Database, agent_id: int, seat_id: int | None = None) -> None:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.login(uow, agent, seat_id, utcnow())


async def login_and_ready(db: Database, agent_id: int) -> None:
    """The softphone's Ready: starts the ACD session first if there is none."""
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        if agent.state == AgentState.LOGGED_OUT:
            await lifecycle.login(uow, agent, None, utcnow())
        await lifecycle.ready(uow, agent, utcnow())


async def ready(db: Database, agent_id: int) -> None:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.ready(uow, agent, utcnow())


async def pause(db: Database, agent_id: int, reason: str) -> None:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.pause(uow, agent, reason, utcnow())


async def logout(db: Database, agent_id: int) -> None:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.logout(uow, agent, utcnow())


async def answer(db: Database, agent_id: int) -> None:
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        await lifecycle.connect(uow, call, agent, utcnow())


async def hangup(db: Database, agent_id: int) -> None:
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        await lifecycle.start_wrap_up(uow, call, agent, utcnow(), by="agent")


async def end_wrap_up(db: Database, agent_id: int, disposition: str | None) -> None:
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        await lifecycle.end_wrap_up(uow, call, agent, utcnow(), disposition)


async def extend_wrap_up(db: Database, agent_id: int, seconds: int) -> None:
    async with db.unit_of_work() as uow:
        agent = await repository.get_agent(uow.session, agent_id, lock=True)
        await lifecycle.extend_wrap_up(uow, agent, seconds, utcnow())


async def transfer(db: Database, agent_id: int, queue_id: int | None, number: str | None) -> None:
    if (queue_id is None) == (number is None):
        raise Invalid("give exactly one of queue_id or number", field="queue_id")
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        if queue_id is not None:
            target = await repository.get_queue(uow.session, queue_id)
            await lifecycle.transfer_to_queue(uow, call, agent, target, utcnow())
        elif number is not None:
            await lifecycle.transfer_out(uow, call, agent, number, utcnow())

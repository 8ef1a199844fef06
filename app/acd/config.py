"""Configuring the hotline: campaigns, queues, agents and seats (create, update, list)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd import config_cache, repository, transfer_numbers
from app.acd.models import Agent, AgentSkill, Campaign, Queue, Seat, Site
from app.acd.schemas import (
    AgentIn,
    AgentPatch,
    CampaignIn,
    CampaignPatch,
    QueueIn,
    QueuePatch,
    SeatIn,
    SeatPatch,
)
from app.db import Base, UnitOfWork
from app.errors import Conflict, Invalid, NotFound
from app.outbox import emit
from app.phone_numbers import normalise as normalise_phone

Row = TypeVar("Row", bound=Base)


async def _insert(uow: UnitOfWork, row: Row, what: str, field: str = "name") -> Row:
    uow.session.add(row)
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "{what} already exists", code="already_exists", field=field, what=what
        ) from exc
    return row


def _changes(model: type[Base], data: BaseModel) -> dict[str, Any]:
    """The fields a PATCH sets; an explicit null is refused where the column needs a value."""
    changes = data.model_dump(exclude_unset=True)
    columns = sa_inspect(model).columns
    for key, value in changes.items():
        if value is None and (key not in columns or not columns[key].nullable):
            raise Invalid("{key} cannot be null", field=key, key=key)
    return changes


async def _campaign_numbers_free(
    session: AsyncSession, numbers: Sequence[str], campaign_id: int | None
) -> None:
    for other in (await session.execute(select(Campaign))).scalars():
        if other.id != campaign_id and set(numbers) & set(other.dialled_numbers or []):
            raise Conflict("a dialled number belongs to another campaign", field="dialled_numbers")


async def create_campaign(uow: UnitOfWork, data: CampaignIn) -> Campaign:
    config_cache.invalidate_after_commit(uow)
    await _campaign_numbers_free(uow.session, data.dialled_numbers, None)
    values = data.model_dump()
    values["transfer_numbers"] = transfer_numbers.parse_entries(
        data.transfer_numbers, data.default_region
    )
    campaign = await _insert(uow, Campaign(**values), f"campaign {data.name}")
    emit(uow, "campaign.created", campaign_id=campaign.id, data={"name": campaign.name})
    return campaign


async def update_campaign(uow: UnitOfWork, campaign_id: int, data: CampaignPatch) -> Campaign:
    config_cache.invalidate_after_commit(uow)
    campaign = await repository.get_campaign(uow.session, campaign_id)
    changes = _changes(Campaign, data)
    if "dialled_numbers" in changes:
        await _campaign_numbers_free(uow.session, changes["dialled_numbers"], campaign_id)
    if "transfer_numbers" in changes:
        changes["transfer_numbers"] = transfer_numbers.parse_entries(
            changes["transfer_numbers"], campaign.default_region
        )
    _apply(campaign, changes)
    if "name" in changes:
        try:
            async with uow.session.begin_nested():
                await uow.session.flush()
        except IntegrityError as exc:
            raise Conflict(
                "campaign {name} already exists",
                code="already_exists",
                field="name",
                name=changes["name"],
            ) from exc
    emit(uow, "campaign.updated", campaign_id=campaign.id, data={"fields": sorted(changes)})
    return campaign


def _apply(row: Base, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        setattr(row, key, [list(v) for v in value] if key == "tiers" else value)


async def _check_overflow(session: AsyncSession, campaign_id: int, queue_id: int | None) -> None:
    if queue_id is None:
        return
    target = await session.get(Queue, queue_id)
    if target is None or target.campaign_id != campaign_id:
        raise Invalid(
            "overflow queue must be a queue of the same campaign", field="overflow_queue_id"
        )


def _check_service_level(target: int, amber: int) -> None:
    if amber > target:
        raise Invalid(
            "the amber level ({amber} %) must not be above the target ({target} %)",
            field="sl_amber_percent",
            amber=amber,
            target=target,
        )


async def create_queue(uow: UnitOfWork, data: QueueIn) -> Queue:
    config_cache.invalidate_after_commit(uow)
    await repository.get_campaign(uow.session, data.campaign_id)
    await _check_overflow(uow.session, data.campaign_id, data.overflow_queue_id)
    await check_site(uow.session, data.campaign_id, data.site_id)
    _check_service_level(data.sl_target_percent, data.sl_amber_percent)
    values = data.model_dump()
    values["tiers"] = [list(t) for t in data.tiers]
    queue = await _insert(uow, Queue(**values), f"queue {data.name}")
    emit(
        uow,
        "queue.created",
        campaign_id=queue.campaign_id,
        queue_id=queue.id,
        data={"name": queue.name},
    )
    return queue


async def update_queue(uow: UnitOfWork, queue_id: int, data: QueuePatch) -> Queue:
    config_cache.invalidate_after_commit(uow)
    queue = await repository.get_queue(uow.session, queue_id)
    changes = _changes(Queue, data)
    if "overflow_queue_id" in changes:
        if changes["overflow_queue_id"] == queue_id:
            raise Invalid("a queue cannot overflow to itself", field="overflow_queue_id")
        await _check_overflow(uow.session, queue.campaign_id, changes["overflow_queue_id"])
    if "site_id" in changes:
        await check_site(uow.session, queue.campaign_id, changes["site_id"])
    _check_service_level(
        changes.get("sl_target_percent", queue.sl_target_percent),
        changes.get("sl_amber_percent", queue.sl_amber_percent),
    )
    _apply(queue, changes)
    emit(
        uow,
        "queue.updated",
        campaign_id=queue.campaign_id,
        queue_id=queue.id,
        data={"fields": sorted(changes)},
    )
    return queue


async def _set_skills(uow: UnitOfWork, agent_id: int, skills: dict[str, int]) -> None:
    await uow.session.execute(delete(AgentSkill).where(AgentSkill.agent_id == agent_id))
    for skill, level in skills.items():
        uow.session.add(AgentSkill(agent_id=agent_id, skill=skill, level=level))


async def check_site(session: AsyncSession, campaign_id: int, site_id: int | None) -> None:
    """A volunteer, seat or login names a site of its own campaign (or none)."""
    if site_id is None:
        return
    site = await session.get(Site, site_id)
    if site is None or site.campaign_id != campaign_id:
        raise Invalid("site must be a site of the same campaign", field="site_id")


def phone_e164(raw: str | None, region: str) -> str | None:
    """A volunteer's phone as typed, in E.164; a number that is not one is refused."""
    if raw is None:
        return None
    number = normalise_phone(raw, region)
    if number.e164 is None:
        raise Invalid("not a phone number: {number}", code="bad_phone", field="phone", number=raw)
    return number.e164


async def create_agent(uow: UnitOfWork, data: AgentIn) -> Agent:
    config_cache.invalidate_after_commit(uow)
    campaign = await repository.get_campaign(uow.session, data.campaign_id)
    await check_site(uow.session, data.campaign_id, data.site_id)
    values = data.model_dump(exclude={"skills"})
    values["phone"] = phone_e164(data.phone, campaign.default_region)
    agent = await _insert(uow, Agent(**values), f"agent {data.login}", field="login")
    await _set_skills(uow, agent.id, data.skills)
    emit(
        uow,
        "agent.created",
        campaign_id=agent.campaign_id,
        agent_id=agent.id,
        data={"login": agent.login},
    )
    return agent


async def update_agent(uow: UnitOfWork, agent_id: int, data: AgentPatch) -> Agent:
    config_cache.invalidate_after_commit(uow)
    agent = await repository.get_agent(uow.session, agent_id, lock=True)
    changes = _changes(Agent, data)
    skills = changes.pop("skills", None)
    if "site_id" in changes:
        await check_site(uow.session, agent.campaign_id, changes["site_id"])
    if changes.get("phone") is not None:
        campaign = await repository.get_campaign(uow.session, agent.campaign_id)
        changes["phone"] = phone_e164(changes["phone"], campaign.default_region)
    _apply(agent, changes)
    if skills is not None:
        await _set_skills(uow, agent.id, skills)
    emit(
        uow,
        "agent.updated",
        campaign_id=agent.campaign_id,
        agent_id=agent.id,
        data={"fields": sorted([*changes, *(["skills"] if skills is not None else [])])},
    )
    return agent


async def create_seat(uow: UnitOfWork, data: SeatIn) -> Seat:
    config_cache.invalidate_after_commit(uow)
    await repository.get_campaign(uow.session, data.campaign_id)
    await check_site(uow.session, data.campaign_id, data.site_id)
    seat = await _insert(uow, Seat(**data.model_dump()), f"seat {data.name}")
    emit(uow, "seat.created", campaign_id=seat.campaign_id, data={"seat_id": seat.id})
    return seat


async def update_seat(uow: UnitOfWork, seat_id: int, data: SeatPatch) -> Seat:
    config_cache.invalidate_after_commit(uow)
    seat = await get_seat(uow.session, seat_id)
    changes = _changes(Seat, data)
    if "site_id" in changes:
        await check_site(uow.session, seat.campaign_id, changes["site_id"])
    _apply(seat, changes)
    emit(uow, "seat.updated", campaign_id=seat.campaign_id, data={"seat_id": seat.id})
    return seat


async def get_seat(session: AsyncSession, seat_id: int) -> Seat:
    seat = await session.get(Seat, seat_id)
    if seat is None:
        raise NotFound("seat {seat_id} not found", field="seat_id", seat_id=seat_id)
    return seat


async def list_rows(
    session: AsyncSession, model: type[Row], campaign_id: int | None = None
) -> list[Row]:
    stmt = select(model)
    if campaign_id is not None:
        stmt = stmt.where(model.campaign_id == campaign_id)  # type: ignore[attr-defined]
    stmt = stmt.order_by(model.id)  # type: ignore[attr-defined]
    return list((await session.execute(stmt)).scalars())


async def skills_by_agent(session: AsyncSession, agent_ids: list[int]) -> dict[int, dict[str, int]]:
    result: dict[int, dict[str, int]] = {agent_id: {} for agent_id in agent_ids}
    if not agent_ids:
        return result
    stmt = select(AgentSkill).where(AgentSkill.agent_id.in_(agent_ids))
    for row in (await session.execute(stmt)).scalars():
        result[row.agent_id][row.skill] = row.level
    return result

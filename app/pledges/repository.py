"""Reads of pledges: by reference, by caller number, listings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.pledges.models import Pledge, PledgeStatus


def _from_number(campaign_id: Any, number: Any) -> list[ColumnElement[bool]]:
    # The number that called, or the phone the donor gave: either identifies them.
    return [
        Pledge.campaign_id == campaign_id,
        or_(Pledge.caller_number == number, Pledge.phone_e164 == number),
        Pledge.status != PledgeStatus.CANCELLED,
    ]


def pledged_total_subquery(campaign_id: Any, number: Any) -> ScalarSelect[Any]:
    """The same total as :func:`pledged_total_for_number`, to read inside another query."""
    return (
        select(func.coalesce(func.sum(Pledge.amount_minor), 0))
        .where(*_from_number(campaign_id, number))
        .scalar_subquery()
    )


async def pledged_total_for_number(session: AsyncSession, campaign_id: int, number: str) -> int:
    """Minor units promised by non-cancelled pledges from this E.164 number in the campaign."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Pledge.amount_minor), 0)).where(
            *_from_number(campaign_id, number)
        )
    )
    return int(total or 0)


# The two reads of a caller's screen pop, built once and bound per call (a statement
# costs more to build, and to key for SQLAlchemy's cache, than to run).
_LATEST_FROM_NUMBER = (
    select(Pledge)
    .where(*_from_number(bindparam("p_campaign"), bindparam("p_number")))
    .order_by(Pledge.created_at.desc(), Pledge.id.desc())
    .limit(1)
)
_COUNT_AND_TOTAL_FROM_NUMBER = select(
    func.count(Pledge.id), func.coalesce(func.sum(Pledge.amount_minor), 0)
).where(*_from_number(bindparam("p_campaign"), bindparam("p_number")))


async def pledge_count_and_total_for_number(
    session: AsyncSession, campaign_id: int, number: str
) -> tuple[int, int]:
    params = {"p_campaign": campaign_id, "p_number": number}
    row = (await session.execute(_COUNT_AND_TOTAL_FROM_NUMBER, params)).one()
    return int(row[0]), int(row[1])


async def latest_pledge_for_number(
    session: AsyncSession, campaign_id: int, number: str
) -> Pledge | None:
    """The newest non-cancelled pledge from this number in the campaign (returning donor)."""
    return await session.scalar(
        _LATEST_FROM_NUMBER, {"p_campaign": campaign_id, "p_number": number}
    )


async def get_by_reference(session: AsyncSession, reference: str, *, lock: bool = False) -> Pledge:
    query = select(Pledge).where(Pledge.reference == reference.upper())
    if lock:
        query = query.with_for_update()
    pledge = await session.scalar(query)
    if pledge is None:
        raise NotFound("no pledge with this reference", field="reference")
    return pledge

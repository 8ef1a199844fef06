"""Reads for reconciliation: sources, known lines, and the pledges a line may pay.

The pledges' tables are read here, never written: payments go through
``app.pledges.service.record_payment``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.pledges.models import Frequency, Pledge, PledgePayment, PledgeStatus
from app.reconciliation.matching import Candidate
from app.reconciliation.models import PaymentLine, PaymentSource

CHUNK = 500  # values per IN list
T = TypeVar("T")


def _chunks(values: Iterable[T]) -> Iterator[list[T]]:
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


async def source_by_name(session: AsyncSession, name: str) -> PaymentSource:
    source = await session.scalar(select(PaymentSource).where(PaymentSource.name == name))
    if source is None:
        # The name is not echoed: whatever was typed there stays out of the answer.
        raise NotFound("no payment source with this name", field="source")
    return source


async def known_keys(session: AsyncSession, source_id: int, keys: Sequence[str]) -> set[str]:
    """The line keys of this source already imported."""
    found: set[str] = set()
    for batch in _chunks(keys):
        found.update(
            await session.scalars(
                select(PaymentLine.line_key).where(
                    PaymentLine.source_id == source_id, PaymentLine.line_key.in_(batch)
                )
            )
        )
    return found


async def recorded_payments(
    session: AsyncSession, payment_ids: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """Provider payment ids already recorded (by the webhook): id -> (pledge id, amount)."""
    found: dict[str, tuple[int, int]] = {}
    for batch in _chunks(dict.fromkeys(payment_ids)):
        rows = await session.execute(
            select(
                PledgePayment.provider_payment_id,
                PledgePayment.pledge_id,
                PledgePayment.amount_minor,
            ).where(PledgePayment.provider_payment_id.in_(batch))
        )
        for payment_id, pledge_id, amount in rows:
            if payment_id is not None:
                found[payment_id] = (pledge_id, amount)
    return found


@dataclass(frozen=True)
class PledgeRef:
    """What a match needs to know of a pledge before its payment is recorded.

    Read as plain columns, never as ``Pledge`` objects: the payment's own locked
    read (``record_payment``) must be the first to load the pledge into the unit of
    work's session, or it would be handed the older, unlocked copy.
    """

    pledge_id: int
    reference: str
    campaign_id: int
    status: str


_REF_COLUMNS = (Pledge.id, Pledge.reference, Pledge.campaign_id, Pledge.status)
_CANDIDATE_COLUMNS = (
    Pledge.id,
    Pledge.reference,
    Pledge.first_name,
    Pledge.last_name,
    Pledge.amount_minor,
    Pledge.paid_minor,
    Pledge.currency,
    Pledge.frequency,
)


async def pledges_by_reference(
    session: AsyncSession, campaign_id: int, references: Iterable[str]
) -> dict[str, PledgeRef]:
    found: dict[str, PledgeRef] = {}
    for batch in _chunks(dict.fromkeys(references)):
        rows = await session.execute(
            select(*_REF_COLUMNS).where(
                Pledge.campaign_id == campaign_id, Pledge.reference.in_(batch)
            )
        )
        for row in rows:
            found[row.reference] = PledgeRef(*row)
    return found


async def pledge_by_reference(session: AsyncSession, reference: str) -> PledgeRef | None:
    row = (
        await session.execute(select(*_REF_COLUMNS).where(Pledge.reference == reference))
    ).first()
    return PledgeRef(*row) if row is not None else None


async def open_candidates(
    session: AsyncSession, campaign_id: int, amounts: Iterable[int]
) -> list[Candidate]:
    """The campaign's pledges a payment of one of these amounts may pay: one-off
    pledges owing exactly that, monthly pledges of that instalment."""
    found: dict[int, Candidate] = {}
    owing = Pledge.status.in_(
        (PledgeStatus.PROMISED, PledgeStatus.LINK_SENT, PledgeStatus.PARTIALLY_PAID)
    )
    for batch in _chunks(sorted(set(amounts))):
        rows = await session.execute(
            select(*_CANDIDATE_COLUMNS).where(
                Pledge.campaign_id == campaign_id,
                or_(
                    and_(owing, (Pledge.amount_minor - Pledge.paid_minor).in_(batch)),
                    and_(
                        Pledge.frequency == Frequency.MONTHLY,
                        Pledge.status != PledgeStatus.CANCELLED,
                        Pledge.amount_minor.in_(batch),
                    ),
                ),
            )
        )
        for row in rows:
            found[row.id] = Candidate(*row)
    return list(found.values())


async def pledges_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Pledge]:
    found: dict[int, Pledge] = {}
    for batch in _chunks(dict.fromkeys(ids)):
        for pledge in await session.scalars(select(Pledge).where(Pledge.id.in_(batch))):
            found[pledge.id] = pledge
    return found


async def get_line(session: AsyncSession, line_id: int, *, lock: bool = False) -> PaymentLine:
    query = select(PaymentLine).where(PaymentLine.id == line_id)
    if lock:
        query = query.with_for_update()
    line = await session.scalar(query)
    if line is None:
        raise NotFound("no such payment line", field="line_id")
    return line


def line_filters(view: str) -> list[Any]:
    """The lines an organiser's list shows: ``unmatched`` (waiting for a pledge),
    ``differences`` (over/under-payments not yet checked), or one status."""
    if view == "unmatched":
        return [PaymentLine.status == "unmatched"]
    if view == "differences":
        return [
            PaymentLine.status == "recorded",
            PaymentLine.difference_minor != 0,
            PaymentLine.reviewed_at.is_(None),
        ]
    return [PaymentLine.status == view]

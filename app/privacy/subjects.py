"""A donor as a data subject: found by phone, e-mail or pledge reference, and
everything held about them (the access request's export).

The look-up starts from what the admin gives, then follows the links once: the
pledges with that number, e-mail or reference; the numbers and e-mails on those
pledges; the calls from those numbers and the calls the pledges were taken on.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Call
from app.cti.models import ScreenPop
from app.errors import Invalid, NotFound
from app.outbox import Event
from app.phone_numbers import normalise
from app.pledges.models import Pledge, PledgeAudit, PledgePayment
from app.privacy.scrub import pseudonym
from app.rules.models import NumberBlock

# A number given without its country code is read as French (the campaigns' own).
DEFAULT_REGION = "FR"


class LookedUpBy(enum.StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    REFERENCE = "reference"


@dataclass
class Subject:
    """What identifies one donor in our tables."""

    looked_up_by: LookedUpBy
    pledge_ids: list[int] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    call_ids: list[int] = field(default_factory=list)
    numbers: set[str] = field(default_factory=set)  # E.164, and retention pseudonyms
    raw_phones: set[str] = field(default_factory=set)  # as typed or sent
    emails: set[str] = field(default_factory=set)
    names: set[tuple[str, str]] = field(default_factory=set)  # (first, last)

    @property
    def found(self) -> bool:
        return bool(self.pledge_ids or self.call_ids or self.numbers)


def _one_key(phone: str | None, email: str | None, reference: str | None) -> LookedUpBy:
    given = [
        k
        for k, v in (
            (LookedUpBy.PHONE, phone),
            (LookedUpBy.EMAIL, email),
            (LookedUpBy.REFERENCE, reference),
        )
        if v and v.strip()
    ]
    if len(given) != 1:
        raise Invalid("give exactly one of phone, email or reference", field="phone")
    return given[0]


async def find_subject(
    session: AsyncSession,
    secret: str,
    *,
    phone: str | None = None,
    email: str | None = None,
    reference: str | None = None,
) -> Subject:
    """The donor these identify; 404 when nothing is held about them."""
    by = _one_key(phone, email, reference)
    subject = Subject(by)
    numbers: set[str] = set()
    emails: set[str] = set()
    condition: Any
    if by == LookedUpBy.PHONE:
        e164 = normalise(phone, DEFAULT_REGION).e164
        if e164 is None:
            raise Invalid("not a phone number", field="phone")
        numbers.add(e164)
        condition = or_(Pledge.phone_e164 == e164, Pledge.caller_number == e164)
    elif by == LookedUpBy.EMAIL:
        address = (email or "").strip().casefold()
        if "@" not in address:
            raise Invalid("not an e-mail address", field="email")
        emails.add(address)
        condition = func.lower(Pledge.email) == address
    else:
        condition = Pledge.reference == (reference or "").strip().upper()
    pledges = list((await session.scalars(select(Pledge).where(condition))).all())
    for pledge in pledges:
        numbers |= {n for n in (pledge.phone_e164, pledge.caller_number) if n}
        if pledge.email:
            emails.add(pledge.email.casefold())
    # Other pledges with those numbers or e-mails are the same donor's.
    more: list[Any] = []
    if numbers:
        more += [Pledge.phone_e164.in_(numbers), Pledge.caller_number.in_(numbers)]
    if emails:
        more.append(func.lower(Pledge.email).in_(emails))
    if more:
        known = {p.id for p in pledges}
        pledges += [
            p
            for p in (await session.scalars(select(Pledge).where(or_(*more)))).all()
            if p.id not in known
        ]
    for pledge in pledges:
        subject.pledge_ids.append(pledge.id)
        subject.references.append(pledge.reference)
        if pledge.phone:
            subject.raw_phones.add(pledge.phone)
        if pledge.first_name or pledge.last_name:
            subject.names.add((pledge.first_name, pledge.last_name))
        if pledge.email:
            emails.add(pledge.email.casefold())
        numbers |= {n for n in (pledge.phone_e164, pledge.caller_number) if n}
    # Calls the pledges were taken on, then every call from the donor's numbers
    # (also those whose number the retention purge already pseudonymised).
    taken_on = [p.call_id for p in pledges if p.call_id is not None]
    if taken_on:
        for number in (
            await session.scalars(
                select(Call.caller_number).where(
                    Call.id.in_(taken_on), Call.caller_number.is_not(None)
                )
            )
        ).all():
            if number:
                numbers.add(number)
    numbers |= {pseudonym(secret, n) for n in numbers}
    calls = (
        await session.execute(
            select(Call.id, Call.caller_raw).where(
                or_(Call.caller_number.in_(numbers), Call.id.in_(taken_on))
            )
        )
    ).all()
    subject.call_ids = sorted(call_id for call_id, _ in calls)
    subject.raw_phones |= {raw for _, raw in calls if raw}
    blocked = (
        await session.scalars(select(NumberBlock.number).where(NumberBlock.number.in_(numbers)))
    ).all()
    subject.numbers = numbers if (subject.pledge_ids or subject.call_ids or blocked) else set()
    subject.emails = emails
    subject.pledge_ids.sort()
    if not subject.found:
        raise NotFound("nothing is held about this donor", field=str(by))
    return subject


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def row_dict(row: Any) -> dict[str, Any]:
    """A table row as JSON-ready values, column by column."""
    return {c.key: _plain(getattr(row, c.key)) for c in row.__table__.columns}


async def summary(session: AsyncSession, subject: Subject) -> dict[str, Any]:
    """What the admin sees to be sure it is the right person before acting."""
    pledges = (await session.scalars(select(Pledge).where(Pledge.id.in_(subject.pledge_ids)))).all()
    return {
        "looked_up_by": str(subject.looked_up_by),
        "pledges": [
            {
                "reference": p.reference,
                "campaign_id": p.campaign_id,
                "first_name": p.first_name,
                "last_name": p.last_name,
                "amount_minor": p.amount_minor,
                "currency": p.currency,
                "status": p.status,
                "created_at": p.created_at.isoformat(),
            }
            for p in pledges
        ],
        "calls": len(subject.call_ids),
        "numbers": sorted(n for n in subject.numbers if n.startswith("+")),
        "emails": sorted(subject.emails),
    }


async def export(session: AsyncSession, subject: Subject) -> dict[str, Any]:
    """Everything held about the donor, table by table."""
    pledge_ids, call_ids = subject.pledge_ids, subject.call_ids

    async def rows(stmt: Any) -> list[dict[str, Any]]:
        return [row_dict(r) for r in (await session.scalars(stmt)).all()]

    return {
        "pledges": await rows(select(Pledge).where(Pledge.id.in_(pledge_ids)).order_by(Pledge.id)),
        "pledge_audit": await rows(
            select(PledgeAudit)
            .where(PledgeAudit.pledge_id.in_(pledge_ids))
            .order_by(PledgeAudit.id)
        ),
        "pledge_payments": await rows(
            select(PledgePayment)
            .where(PledgePayment.pledge_id.in_(pledge_ids))
            .order_by(PledgePayment.id)
        ),
        "calls": await rows(select(Call).where(Call.id.in_(call_ids)).order_by(Call.id)),
        "screen_pops": await rows(
            select(ScreenPop).where(ScreenPop.call_id.in_(call_ids)).order_by(ScreenPop.call_id)
        ),
        "events": await rows(select(Event).where(Event.call_id.in_(call_ids)).order_by(Event.seq)),
        "number_blocks": await rows(
            select(NumberBlock)
            .where(NumberBlock.number.in_(subject.numbers))
            .order_by(NumberBlock.id)
        ),
    }

"""Retention: how long each kind of personal data is kept, and the purge that applies it.

Each kind is a :class:`RetentionKind` in :data:`KINDS`: its period (from the
settings) and the step that removes or pseudonymises what is older. Another
package adds its own kind with :func:`register` (tax receipts, say, kept for
their legal period). The purge runs every kind, each in its own transaction with
its event (``privacy.purged``) and its line in the privacy register.

A purge never changes totals or statistics: amounts, statuses, times, queues,
départements stay, and a caller number becomes a keyed pseudonym (the same number
always the same pseudonym), so counts per number stay right too.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, not_, or_, select, update

from app.acd.models import Call, Campaign
from app.cti.models import ScreenPop
from app.db import Database, UnitOfWork, utcnow
from app.outbox import Event, emit
from app.pledges.models import IdempotencyRecord, Pledge, PledgeAudit
from app.privacy.models import PrivacyAction, PurgedCampaign
from app.privacy.scrub import (
    PERSONAL_KEYS,
    PLEDGE_PERSONAL_FIELDS,
    PSEUDONYM_PREFIX,
    pseudonym,
    scrub_event_payload,
    scrub_json,
)
from app.rules.models import NumberBlock
from app.settings import Settings
from app.telephony.models import InboundEvent

PURGED_EVENT = "privacy.purged"
BATCH = 500
# Event types whose payload may hold a caller's data (numbers, screen pops, names
# filled into a script or an alert). Others carry ids and figures only.
PERSONAL_EVENT_PREFIXES = ("call.", "script.", "number.", "supervisor.")

Purge = Callable[[UnitOfWork, dt.datetime, dt.datetime, Settings], Awaitable[int]]


@dataclass(frozen=True)
class RetentionKind:
    """One kind of personal data. ``cutoff(now, settings)``: the moment before which
    it is due (now minus its period); ``purge(uow, before, now, settings)`` removes
    or pseudonymises what is due and says how many rows it changed."""

    name: str
    what: str
    cutoff: Callable[[dt.datetime, Settings], dt.datetime]
    purge: Purge


KINDS: dict[str, RetentionKind] = {}


def register(kind: RetentionKind) -> None:
    """Add a kind of data to the purge (a kind of the same name is replaced)."""
    KINDS[kind.name] = kind


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day and time ``months`` calendar months earlier (the 31st becomes
    the month's last day)."""
    total = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(total, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


async def scrub_events(uow: UnitOfWork, where: ColumnElement[bool], secret: str) -> int:
    """Take the caller's data out of the payloads of the events ``where`` selects."""
    personal = or_(*(Event.type.startswith(prefix) for prefix in PERSONAL_EVENT_PREFIXES))
    changed, after = 0, 0
    while True:
        stmt = (
            select(Event.seq, Event.type, Event.data)
            .where(where, personal, Event.seq > after)
            .order_by(Event.seq)
            .limit(BATCH)
        )
        rows = (await uow.session.execute(stmt)).all()
        if not rows:
            return changed
        updates = []
        for seq, type, data in rows:
            scrubbed = scrub_event_payload(type, data or {}, secret)
            if scrubbed != (data or {}):
                updates.append({"seq": seq, "data": scrubbed})
        if updates:
            await uow.session.execute(update(Event), updates)
            changed += len(updates)
        after = rows[-1][0]


async def ended_campaigns(uow: UnitOfWork, before: dt.datetime) -> dict[int, dt.datetime]:
    """Campaigns that ended before ``before``, with their end: the later of their
    last call, their last time slot's end and their creation."""
    last_calls = dict(
        (
            await uow.session.execute(
                select(Call.campaign_id, func.max(Call.received_at)).group_by(Call.campaign_id)
            )
        ).all()
    )
    ended = {}
    for campaign_id, created_at, slots in (
        await uow.session.execute(select(Campaign.id, Campaign.created_at, Campaign.time_slots))
    ).all():
        moments = [created_at]
        if last_calls.get(campaign_id) is not None:
            moments.append(last_calls[campaign_id])
        moments += [dt.datetime.fromisoformat(slot["ends_at"]) for slot in slots or []]
        if max(moments) < before:
            ended[campaign_id] = max(moments)
    return ended


# --- the kinds shipped -----------------------------------------------------------


async def purge_screen_pops(
    uow: UnitOfWork, before: dt.datetime, now: dt.datetime, settings: Settings
) -> int:
    """Screen pops of ended campaigns go; their events keep ids and figures only."""
    ended = await ended_campaigns(uow, before)
    done = dict(
        (
            await uow.session.execute(select(PurgedCampaign.campaign_id, PurgedCampaign.ended_at))
        ).all()
    )
    # Done before with the same end: nothing of theirs has changed since.
    campaigns = [c for c, end in ended.items() if done.get(c) != end]
    if not campaigns:
        return 0
    calls = select(Call.id).where(Call.campaign_id.in_(campaigns))
    result = await uow.session.execute(delete(ScreenPop).where(ScreenPop.call_id.in_(calls)))
    removed = _rowcount(result)
    removed += await scrub_events(uow, Event.campaign_id.in_(campaigns), settings.secret_key)
    await uow.session.execute(
        delete(PurgedCampaign).where(PurgedCampaign.campaign_id.in_(campaigns))
    )
    uow.session.add_all(PurgedCampaign(campaign_id=c, ended_at=ended[c]) for c in campaigns)
    return removed


async def purge_caller_numbers(
    uow: UnitOfWork, before: dt.datetime, now: dt.datetime, settings: Settings
) -> int:
    """Calls older than the period: the caller's number becomes its pseudonym, the
    number as the platform sent it goes. Lifted blocks too, and the events."""
    secret = settings.secret_key
    changed = 0
    not_done = or_(
        Call.caller_raw.is_not(None),
        and_(
            Call.caller_number.is_not(None), not_(Call.caller_number.startswith(PSEUDONYM_PREFIX))
        ),
    )
    while True:
        stmt = (
            select(Call.id, Call.caller_number)
            .where(Call.received_at < before, not_done)
            .order_by(Call.id)
            .limit(BATCH)
        )
        rows = (await uow.session.execute(stmt)).all()
        if not rows:
            break
        updates = [
            {
                "id": call_id,
                "caller_raw": None,
                "caller_number": pseudonym(secret, number) if number else None,
            }
            for call_id, number in rows
        ]
        await uow.session.execute(update(Call), updates)
        changed += len(updates)
    blocks = (
        await uow.session.execute(
            select(NumberBlock.id, NumberBlock.number).where(
                NumberBlock.updated_at < before,
                or_(NumberBlock.blocked_until.is_(None), NumberBlock.blocked_until < now),
                not_(NumberBlock.number.startswith(PSEUDONYM_PREFIX)),
            )
        )
    ).all()
    if blocks:
        await uow.session.execute(
            update(NumberBlock),
            # The reason is free text a supervisor typed: it may name the caller.
            [
                {"id": i, "number": pseudonym(secret, number), "reason": None}
                for i, number in blocks
            ],
        )
        changed += len(blocks)
    # What the platform's deliveries were answered (kept to answer a repeat the same
    # way) has long been useless, and holds the call as it was.
    result = await uow.session.execute(
        delete(InboundEvent).where(InboundEvent.received_at < before)
    )
    changed += _rowcount(result)
    return changed + await scrub_events(uow, Event.at < before, secret)


def _pledge_has_donor_details() -> ColumnElement[bool]:
    return or_(
        *(
            getattr(Pledge, name) != blank
            if blank is not None
            else getattr(Pledge, name).is_not(None)
            for name, blank in PLEDGE_PERSONAL_FIELDS.items()
        )
    )


async def blank_pledges(uow: UnitOfWork, pledge_ids: list[int]) -> int:
    """The donor's details go from these pledges and their audit trail; amounts,
    statuses and the rest stay (the totals do not move)."""
    if not pledge_ids:
        return 0
    await uow.session.execute(
        update(Pledge).where(Pledge.id.in_(pledge_ids)).values(**PLEDGE_PERSONAL_FIELDS)
    )
    return len(pledge_ids) + await scrub_pledge_audit(uow, pledge_ids)


async def scrub_pledge_audit(
    uow: UnitOfWork, pledge_ids: list[int], keep: frozenset[int] = frozenset()
) -> int:
    """The personal values in these pledges' audit trail go (but the ``keep`` rows)."""
    audits = (
        await uow.session.execute(
            select(PledgeAudit.id, PledgeAudit.before, PledgeAudit.after).where(
                PledgeAudit.pledge_id.in_(pledge_ids)
            )
        )
    ).all()
    updates: list[dict[str, Any]] = []
    for audit_id, before, after in audits:
        if audit_id in keep:
            continue
        new_before = scrub_json(before or {}, (), PERSONAL_KEYS)
        new_after = scrub_json(after or {}, (), PERSONAL_KEYS)
        if (new_before, new_after) != (before, after):
            updates.append({"id": audit_id, "before": new_before, "after": new_after})
    if updates:
        await uow.session.execute(update(PledgeAudit), updates)
    return len(updates)


async def purge_pledges(
    uow: UnitOfWork, before: dt.datetime, now: dt.datetime, settings: Settings
) -> int:
    """Pledges unchanged for the legal period lose the donor's details."""
    ids = list(
        (
            await uow.session.scalars(
                select(Pledge.id).where(Pledge.updated_at < before, _pledge_has_donor_details())
            )
        ).all()
    )
    return await blank_pledges(uow, ids)


async def purge_idempotency_keys(
    uow: UnitOfWork, before: dt.datetime, now: dt.datetime, settings: Settings
) -> int:
    """First answers kept for retried requests: they hold the pledge as it was saved,
    and a client retries within minutes, so a day on they are only weight."""
    result = await uow.session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before)
    )
    # Keys claimed by the pledge rows themselves (since migration 0022): forgotten.
    claimed = await uow.session.execute(
        update(Pledge)
        .where(Pledge.idem_key.is_not(None), Pledge.created_at < before)
        .values(idem_scope=None, idem_key=None, idem_request=None)
    )
    return _rowcount(result) + _rowcount(claimed)


register(
    RetentionKind(
        "screen_pops",
        "screen pops, and callers' data in event payloads, after the campaign ends",
        lambda now, s: now - dt.timedelta(days=s.retention_screen_pop_days),
        purge_screen_pops,
    )
)
register(
    RetentionKind(
        "caller_numbers",
        "call records' caller numbers (pseudonymised)",
        lambda now, s: months_before(now, s.retention_caller_number_months),
        purge_caller_numbers,
    )
)
register(
    RetentionKind(
        "pledges",
        "donors' details on pledges and in their audit trail (the legal period)",
        lambda now, s: months_before(now, 12 * s.retention_pledge_years),
        purge_pledges,
    )
)
register(
    RetentionKind(
        "idempotency_keys",
        "stored first answers to requests with an Idempotency-Key (a day by default)",
        lambda now, s: now - dt.timedelta(hours=s.idempotency_key_hours),
        purge_idempotency_keys,
    )
)


async def purge(db: Database, settings: Settings, now: dt.datetime | None = None) -> dict[str, int]:
    """Apply every kind's retention period as of ``now``: rows changed, by kind.

    ``now`` later than the clock purges early, never late (the data goes sooner).
    """
    now = now or utcnow()
    done: dict[str, int] = {}
    for kind in list(KINDS.values()):
        async with db.unit_of_work() as uow:
            before = kind.cutoff(now, settings)
            changed = await kind.purge(uow, before, now, settings)
            if changed:
                uow.session.add(
                    PrivacyAction(
                        actor="retention",
                        action="purge",
                        looked_up_by=kind.name,
                        summary={"rows": changed, "before": before.isoformat()},
                    )
                )
                emit(uow, PURGED_EVENT, data={"kind": kind.name, "rows": changed})
        done[kind.name] = changed
    return done

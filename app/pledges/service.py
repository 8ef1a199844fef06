"""Pledge lifecycle: save, correct, send the payment link, record payments, cancel.

Every function works inside the caller's unit of work and never commits; the
state change, its audit row and its event are written in that one transaction.
Text is passed through the card-number guard before any format check, so a
refused value is never compared, echoed, stored or logged.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import Table, bindparam, null, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import class_mapper

from app.acd.models import Agent, Call, Campaign
from app.auth.service import Principal, Role
from app.db import Database, UnitOfWork, built_once, typed_binds, utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.i18n import N_
from app.outbox import Event
from app.phone_numbers import normalise
from app.pledges import cardguard, hooks, repository, rollups, saved_at_once
from app.pledges.models import (
    CancelReason,
    Pledge,
    PledgeAudit,
    PledgePayment,
    PledgeStatus,
)
from app.pledges.schemas import TEXT_FIELDS, PledgeIn, PledgePatch
from app.realtime.outbox import emit

# Unambiguous when read out over the phone: no 0/O, 1/I/L, no U (rude words).
REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
_ZERO_DECIMAL = frozenset({"BIF", "CLP", "ISK", "JPY", "KRW", "PYG", "UGX", "VND", "XAF", "XOF"})
# Countries whose postcodes follow the French scheme (metropolitan and overseas).
_FRENCH_POSTCODES = frozenset({"FR", "GP", "MQ", "GF", "RE", "PM", "YT", "MC"})
_EMAIL = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)+$"
)
_FR_POSTCODE = re.compile(r"^(?!00)[0-9]{5}$")
_OTHER_POSTCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,9}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# Fields whose change is audited and shown in corrections.
AUDITED = (
    *TEXT_FIELDS,
    "amount_minor",
    "currency",
    "frequency",
    "channel",
    "consent_contact",
    "consent_tax_receipt",
    "consent_board",
    "flagged_for_review",
    "departement",
    "phone_e164",
    "status",
    "cancel_reason",
    "paid_minor",
)


def departement(postcode: str, country: str = "FR") -> str | None:
    """The French département of a postcode: ``75``, ``2A``/``2B`` (Corsica), ``971``-``976``."""
    if country not in _FRENCH_POSTCODES or not _FR_POSTCODE.match(postcode):
        return None
    if postcode.startswith("20"):
        # Corse-du-Sud 200xx-201xx; Haute-Corse 202xx-206xx.
        return "2A" if int(postcode[:3]) < 202 else "2B"
    if postcode.startswith("97"):
        return postcode[:3] if "971" <= postcode[:3] <= "976" else None
    if postcode.startswith("98"):
        return None  # Monaco and the Pacific collectivities are not départements
    return postcode[:2]


def new_reference() -> str:
    # One draw for all six characters: one read of the system's randomness where a
    # draw per character made six (2 % of a pledge's CPU); as uniform.
    base = len(REFERENCE_ALPHABET)
    number = secrets.randbelow(base**6)
    chars = []
    for _ in range(6):
        number, index = divmod(number, base)
        chars.append(REFERENCE_ALPHABET[index])
    return f"{''.join(chars[:3])}-{''.join(chars[3:])}"


def normalise_reference(text: str) -> str:
    """``k7q4m2``, ``K7Q 4M2`` and ``K7Q-4M2`` are the same reference."""
    compact = re.sub(r"[\s\-]", "", text).upper()
    return f"{compact[:3]}-{compact[3:]}" if len(compact) == 6 else compact


def major_units(amount_minor: int, currency: str) -> str:
    if currency in _ZERO_DECIMAL:
        return str(amount_minor)
    return f"{amount_minor // 100}.{amount_minor % 100:02d}"


def payment_link(campaign: Campaign, pledge: Pledge) -> str | None:
    if pledge.channel != "web_link":
        return None
    # Plain replacement, not str.format: a template is data and must not reach attributes.
    return (
        campaign.payment_link_template.replace("{reference}", quote(pledge.reference))
        .replace("{amount}", major_units(pledge.amount_minor, pledge.currency))
        .replace("{currency}", pledge.currency)
    )


def time_slot_at(campaign: Campaign, moment: dt.datetime) -> str | None:
    for slot in campaign.time_slots or []:
        try:
            starts = dt.datetime.fromisoformat(slot["starts_at"])
            ends = dt.datetime.fromisoformat(slot["ends_at"])
        except (KeyError, TypeError, ValueError):
            continue
        if starts <= moment < ends:
            return str(slot.get("name"))
    return None


def snapshot(pledge: Pledge) -> dict[str, Any]:
    return {name: getattr(pledge, name) for name in AUDITED}


def _audit(
    uow: UnitOfWork,
    pledge: Pledge,
    actor: Principal | None,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    machine: str = "payment-provider",
) -> None:
    """One audit row; ``machine`` names the actor when no user acts (webhook, simulator).

    Staged, not added to the ORM session: it goes out with the transaction's outbox
    rows in one ``INSERT`` at commit (an ORM flush of one row costs a pledge about
    7 % of its CPU). The pledge is in the database already: it has its id.
    """
    row = _audit_row(actor, action, before, after, machine=machine)
    uow.stage(_AUDIT_TABLE, {"pledge_id": pledge.id, **row})


def _audit_row(
    actor: Principal | None,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    machine: str = "payment-provider",
) -> dict[str, Any]:
    """An audit row's values but its pledge's id (:func:`_audit`, :func:`save_new`)."""
    return {
        "at": utcnow(),
        "user_id": actor.user_id if actor else None,
        "actor": actor.username if actor else machine,
        "action": action,
        "before": before,
        "after": after,
    }


_AUDIT_TABLE = cast(Table, PledgeAudit.__table__)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    changed = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in changed}, {k: after[k] for k in changed}


# --- validation --------------------------------------------------------------------


def _check_amount(campaign: Campaign, amount_minor: int, currency: str | None) -> None:
    if currency is not None and currency != campaign.currency:
        raise Invalid(
            "this campaign takes pledges in {currency}",
            field="currency",
            currency=campaign.currency,
        )
    if amount_minor <= 0:
        raise Invalid("the amount must be more than zero", field="amount_minor")
    if amount_minor < campaign.pledge_min_minor:
        raise Invalid(
            "the amount is below the campaign minimum of {minimum} {currency}",
            field="amount_minor",
            code="amount_too_small",
            minimum=major_units(campaign.pledge_min_minor, campaign.currency),
            currency=campaign.currency,
        )
    if amount_minor > campaign.pledge_max_minor:
        raise Invalid(
            "the amount is above the campaign maximum of {maximum} {currency}",
            field="amount_minor",
            code="amount_too_large",
            maximum=major_units(campaign.pledge_max_minor, campaign.currency),
            currency=campaign.currency,
        )


def _check_donor(values: dict[str, Any], default_region: str) -> dict[str, Any]:
    """Format checks on the donor fields; returns the derived columns."""
    country = str(values.get("country") or "FR").upper()
    if not _COUNTRY.match(country):
        raise Invalid("a two-letter country code such as FR", field="country")
    postcode = values.get("postcode") or ""
    if postcode:
        pattern = _FR_POSTCODE if country in _FRENCH_POSTCODES else _OTHER_POSTCODE
        if not pattern.match(postcode):
            raise Invalid(
                N_("a French postcode has five digits")
                if country in _FRENCH_POSTCODES
                else N_("not a valid postcode"),
                field="postcode",
            )
    email = values.get("email") or ""
    if email and not _EMAIL.match(email):
        raise Invalid("not a valid e-mail address", field="email")
    phone = values.get("phone") or ""
    phone_e164 = None
    if phone:
        # A donor abroad may still give a number of the campaign's country.
        number = normalise(phone, country)
        if number.e164 is None and country != default_region:
            number = normalise(phone, default_region)
        if number.e164 is None:
            raise Invalid("not a valid phone number", field="phone")
        phone_e164 = number.e164
    if not (values.get("first_name") or values.get("last_name")):
        raise Invalid("the donor's name is needed", field="last_name")
    if values.get("channel") == "web_link" and not (email or phone):
        raise Invalid("an e-mail or a phone number is needed to send the link", field="email")
    if values.get("consent_tax_receipt") and not (postcode and values.get("city")):
        raise Invalid("a tax receipt needs the postal address", field="postcode")
    return {
        "country": country,
        "phone_e164": phone_e164,
        "departement": departement(postcode, country),
    }


def check_new_pledge(campaign: Campaign, body: PledgeIn) -> dict[str, Any]:
    """Every check a new pledge goes through before it is written (amount, donor)
    besides the card guard; returns the derived columns. Practice calls
    (``app/practice``) run the very same checks on their form and write nothing here.

    The card guard ran when ``body`` was made: ``PledgeIn`` is ``CardGuarded``, which
    checks the raw input, every field and adjacent pairs, before any field is
    validated (a second pass here read the same text again: a twentieth of a
    pledge's CPU)."""
    values = body.model_dump()
    _check_amount(campaign, body.amount_minor, body.currency)
    return _check_donor(values, campaign.default_region)


# --- who may ---------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    campaign: Campaign
    call: Call | None


async def origin(uow: UnitOfWork, principal: Principal, body: PledgeIn) -> Origin:
    """The campaign and call a new pledge belongs to, once the caller may save it."""
    return await origin_in(uow.session, principal, body)


async def origin_in(session: AsyncSession, principal: Principal, body: PledgeIn) -> Origin:
    """:func:`origin` in any session (a read, to explain a refusal)."""
    call = None
    if body.call_id is not None:
        call = await session.get(Call, body.call_id)
        if call is None:
            raise Invalid("unknown call", field="call_id", code="unknown_call")
        if body.campaign_id is not None and body.campaign_id != call.campaign_id:
            raise Invalid("the call belongs to another campaign", field="campaign_id")
        campaign_id = call.campaign_id
    elif body.campaign_id is not None:
        campaign_id = body.campaign_id
    else:
        raise Invalid("the pledge needs its call", field="call_id")
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise Invalid("unknown campaign", field="campaign_id", code="unknown_campaign")
    if principal.role == Role.AGENT:
        # A volunteer saves pledges for the calls they took, whatever state the
        # call is in now (a pledge typed as wrap-up ends is not lost).
        if call is None or call.agent_id is None or call.agent_id != principal.agent_id:
            raise Forbidden("volunteers save pledges for their own calls", field="call_id")
    elif principal.role == Role.SUPERVISOR:
        if principal.campaign_id != campaign.id:
            raise Forbidden("this belongs to another campaign")
    elif principal.role != Role.ADMIN:
        raise Forbidden("a {role} may not save pledges", role=principal.role)
    return Origin(campaign, call)


async def editable_by_volunteer(uow: UnitOfWork, principal: Principal, pledge: Pledge) -> bool:
    """A volunteer corrects their own pledge until the wrap-up of its call ends.

    The agent row says so: it holds the call (``current_call_id``) from the offer
    until wrap-up ends, also when the call leg itself ended by a transfer.
    """
    if principal.agent_id is None or pledge.agent_id != principal.agent_id:
        return False
    if pledge.call_id is None:
        return False
    agent = await uow.session.get(Agent, principal.agent_id)
    return agent is not None and agent.current_call_id == pledge.call_id


async def check_may_change(uow: UnitOfWork, principal: Principal, pledge: Pledge) -> None:
    if principal.role == Role.ADMIN:
        return
    if principal.role in (Role.SUPERVISOR, Role.ORGANISER):
        if principal.role == Role.SUPERVISOR and principal.campaign_id != pledge.campaign_id:
            raise Forbidden("this belongs to another campaign")
        return
    if not await editable_by_volunteer(uow, principal, pledge):
        raise Forbidden(
            "the pledge can no longer be changed from this screen; ask a supervisor",
            code="not_editable",
        )


# --- the steps ---------------------------------------------------------------------


async def _unique_reference(uow: UnitOfWork) -> str:
    for _ in range(20):
        reference = new_reference()
        taken = await uow.session.scalar(select(Pledge.id).where(Pledge.reference == reference))
        if taken is None:
            return reference
    raise Conflict("could not find a free reference; try again")


async def create(
    uow: UnitOfWork, principal: Principal, body: PledgeIn, where: Origin | None = None
) -> Pledge:
    where = where or await origin(uow, principal, body)
    return await _save(uow, principal, body, where)


@dataclass(frozen=True)
class KeyClaim:
    """The Idempotency-Key a new pledge claims: caller scope, key digest, request hash."""

    scope: str
    key: str
    request: str


@dataclass(frozen=True)
class NewPledge:
    """A new pledge, checked in memory: who saves it, the form, its campaign, what
    ``check_new_pledge`` derived, and the key it claims."""

    principal: Principal
    body: PledgeIn
    campaign: Campaign
    derived: dict[str, Any]
    claim: KeyClaim


def fast_path_allowed(principal: Principal, body: PledgeIn, campaign: Campaign) -> bool:
    """Whether :func:`save_new` can itself check who may save (else :func:`origin`
    explains the refusal)."""
    if principal.role == Role.AGENT:
        return body.call_id is not None and principal.agent_id is not None
    if principal.role == Role.SUPERVISOR:
        return principal.campaign_id == campaign.id
    return principal.role == Role.ADMIN


def _pledge_insert(postgres: bool, fixed: tuple[str, ...], from_call: bool, volunteer: bool) -> Any:
    """The pledge's ``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING``, built once
    per shape with named parameters (``v_<column>``, ``call_id``, ``volunteer``)."""
    shape = (postgres, fixed, from_call, volunteer)
    return built_once(("pledge insert", *shape), lambda: _build_pledge_insert(*shape))


def _build_pledge_insert(
    postgres: bool, fixed: tuple[str, ...], from_call: bool, volunteer: bool
) -> Any:
    table = cast(Table, Pledge.__table__)
    columns: dict[str, Any] = typed_binds(table, fixed, "v_")
    if from_call:
        calls, agents = Call.__table__, Agent.__table__
        columns |= {
            "call_id": calls.c.id,
            "agent_id": calls.c.agent_id,
            "queue_id": calls.c.queue_id,
            "caller_number": calls.c.caller_number,
            "partner_org": agents.c.partner_org,
        }
        source = (
            select(*columns.values())
            .select_from(calls.outerjoin(agents, agents.c.id == calls.c.agent_id))
            .where(
                calls.c.id == bindparam("call_id"),
                calls.c.campaign_id == bindparam("v_campaign_id", type_=table.c.campaign_id.type),
            )
        )
        if volunteer:
            source = source.where(calls.c.agent_id == bindparam("volunteer"))
    else:
        for name in ("call_id", "agent_id", "queue_id", "caller_number", "partner_org"):
            columns[name] = null()
        # A WHERE, so SQLite does not read the upsert's ON as a join's.
        source = select(*columns.values()).where(true())
    insert = pg_insert if postgres else sqlite_insert
    return (
        insert(table)
        .from_select(list(columns), source)
        .on_conflict_do_nothing()
        .returning(*table.c)
    )


async def save_new(db: Database, new: NewPledge) -> Pledge | None:
    """Save a checked pledge (``check_new_pledge``) with all it writes, at once
    (``app/pledges/saved_at_once.py``): the pledge with its key, its audit row, its
    roll-ups and its ``pledge.saved`` event; None when nothing went in.

    The pledge row is ``INSERT ... SELECT`` from its call (agent, queue, caller, the
    volunteer's partner), with the caller's right in the ``WHERE`` (a volunteer's own
    call, in the campaign), ``ON CONFLICT DO NOTHING``: None when no row went in (the
    key or the reference is taken, or the call is not one the caller may save for),
    with nothing written; the caller then finds out which.
    """
    fixed, pledge_insert, params = _new_insert(db.is_postgres, new)
    # The pledge as written, but for what its row gives back (its key, its call's).
    pledge = _unsaved({**fixed, "cancel_reason": None, "link_sent_at": None, "paid_at": None})
    audit = _audit_row(new.principal, "created", {}, snapshot(pledge))
    data = _pledge_event(pledge, **_saved_data(pledge))["data"]
    for name in saved_at_once.EVENT_DATA_FROM_ROW:
        del data[name]
    event = {"type": "pledge.saved", "at": utcnow(), "data": data}
    written: Mapping[Any, Any] | None
    if db.is_postgres:
        params.update({f"a_{name}": value for name, value in audit.items()})
        params.update({f"e_{name}": value for name, value in event.items()})
        rows = await db.execute_alone(saved_at_once.statement(pledge_insert), params)
        written = rows[0] if rows else None
    else:
        written = await db.write_at_once(
            lambda conn: saved_at_once.write(conn, pledge_insert, params, audit, event)
        )
    if written is None:
        return None
    pledge.__dict__.update({name: written[name] for name in saved_at_once.FROM_ROW})
    saved = Event(
        seq=written[saved_at_once.EVENT_SEQ],
        type=event["type"],
        at=event["at"],
        **_pledge_event(pledge, **_saved_data(pledge)),
    )
    await db.committed([saved], saved_at_once.TABLES_WRITTEN)
    return pledge


def _unsaved(values: dict[str, Any]) -> Pledge:
    """A pledge holding ``values``, made without the ORM's bookkeeping of changes: a
    new pledge is written by a statement, never through a session, and this object is
    only read (what is answered, audited and announced). ``Pledge(**values)`` recorded
    every value as a change: 30 µs, 2 % of a pledge."""
    pledge: Pledge = _PLEDGE_CLASS.new_instance()
    pledge.__dict__.update(values)
    return pledge


_PLEDGE_CLASS = class_mapper(Pledge).class_manager


def _saved_data(pledge: Pledge) -> dict[str, Any]:
    """What ``pledge.saved`` says besides :func:`_emit_pledge`'s own fields."""
    return {
        "call_id": pledge.call_id,
        "agent_id": pledge.agent_id,
        "flagged_for_review": pledge.flagged_for_review,
        "frequency": pledge.frequency,
    }


def _new_insert(postgres: bool, new: NewPledge) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """A new pledge's columns (:func:`_new_row`), its insert and the insert's parameters."""
    fixed = _new_row(new)
    principal, body = new.principal, new.body
    stmt = _pledge_insert(
        postgres, tuple(fixed), body.call_id is not None, principal.role == Role.AGENT
    )
    params = {f"v_{name}": value for name, value in fixed.items()}
    params.update(call_id=body.call_id, volunteer=principal.agent_id)
    return fixed, stmt, params


def _new_row(new: NewPledge) -> dict[str, Any]:
    """A new pledge's columns but those taken from its call (see ``_pledge_insert``)."""
    body, campaign, derived, claim = new.body, new.campaign, new.derived, new.claim
    values = body.model_dump()
    now = utcnow()
    return {
        "reference": new_reference(),
        "campaign_id": campaign.id,
        **{name: values[name] for name in TEXT_FIELDS if name != "country"},
        "country": derived["country"],
        "phone_e164": derived["phone_e164"],
        "departement": derived["departement"],
        "amount_minor": body.amount_minor,
        "currency": campaign.currency,
        "frequency": body.frequency,
        "channel": body.channel,
        "consent_contact": body.consent_contact,
        "consent_tax_receipt": body.consent_tax_receipt,
        "consent_board": body.consent_board,
        "flagged_for_review": body.amount_minor > campaign.pledge_review_minor,
        "time_slot": time_slot_at(campaign, now),
        "status": PledgeStatus.PROMISED,
        "paid_minor": 0,
        "created_by": new.principal.user_id,
        "created_at": now,
        "updated_at": now,
        "idem_scope": claim.scope,
        "idem_key": claim.key,
        "idem_request": claim.request,
    }


def first_answer(pledge: Pledge, created: dict[str, Any], campaign: Campaign) -> dict[str, Any]:
    """The answer ``POST /pledges`` gave when it saved ``pledge``: its row as it was
    then, from the ``created`` audit row's snapshot (what a correction changes since)."""
    then = Pledge(**{c.name: getattr(pledge, c.name) for c in Pledge.__table__.columns})
    for name, value in created.items():
        if name in AUDITED:
            setattr(then, name, value)
    then.updated_at = then.created_at
    then.link_sent_at = None
    then.paid_at = None
    return pledge_out(then, campaign)


async def save_simulated(uow: UnitOfWork, call: Call, body: PledgeIn) -> Pledge:
    """A pledge saved by a simulated volunteer (demo and load), through the same checks."""
    campaign = await uow.session.get(Campaign, call.campaign_id)
    if campaign is None:
        raise Invalid("unknown campaign", field="campaign_id", code="unknown_campaign")
    return await _save(uow, None, body, Origin(campaign, call), machine="simulator")


async def _save(
    uow: UnitOfWork,
    principal: Principal | None,
    body: PledgeIn,
    where: Origin,
    *,
    machine: str = "simulator",
) -> Pledge:
    values = body.model_dump()
    campaign, call = where.campaign, where.call
    derived = check_new_pledge(campaign, body)
    now = utcnow()
    agent_id = call.agent_id if call is not None else None
    pledge = Pledge(
        reference=await _unique_reference(uow),
        campaign_id=campaign.id,
        call_id=call.id if call else None,
        agent_id=agent_id,
        queue_id=call.queue_id if call else None,
        caller_number=call.caller_number if call else None,
        partner_org=await agent_partner(uow, agent_id),
        **{name: values[name] for name in TEXT_FIELDS if name != "country"},
        country=derived["country"],
        phone_e164=derived["phone_e164"],
        departement=derived["departement"],
        amount_minor=body.amount_minor,
        currency=campaign.currency,
        frequency=body.frequency,
        channel=body.channel,
        consent_contact=body.consent_contact,
        consent_tax_receipt=body.consent_tax_receipt,
        consent_board=body.consent_board,
        flagged_for_review=body.amount_minor > campaign.pledge_review_minor,
        time_slot=time_slot_at(campaign, now),
        status=PledgeStatus.PROMISED,
        paid_minor=0,
        created_by=principal.user_id if principal else None,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(pledge)
    await uow.session.flush()
    _audit(uow, pledge, principal, "created", {}, snapshot(pledge), machine=machine)
    moves = rollups.contributions(rollups.values_of(pledge))
    await rollups.apply(uow, pledge.campaign_id, pledge.id, moves)
    _emit_pledge(
        uow,
        "pledge.saved",
        pledge,
        call_id=pledge.call_id,
        agent_id=agent_id,
        flagged_for_review=pledge.flagged_for_review,
        frequency=pledge.frequency,
    )
    return pledge


def _status_after_payment(pledge: Pledge) -> str:
    if pledge.paid_minor <= 0:
        return PledgeStatus.LINK_SENT if pledge.link_sent_at else PledgeStatus.PROMISED
    if pledge.paid_minor >= pledge.amount_minor:
        return PledgeStatus.PAID
    return PledgeStatus.PARTIALLY_PAID


async def correct(
    uow: UnitOfWork, principal: Principal, reference: str, patch: PledgePatch
) -> Pledge:
    changes = patch.model_dump(exclude_unset=True)
    cardguard.check_fields({k: v for k, v in changes.items() if k in (*TEXT_FIELDS, "currency")})
    for name, value in changes.items():
        if value is None:
            raise Invalid("{name} cannot be null", field=name, name=name)
    pledge = await repository.get_by_reference(
        uow.session, normalise_reference(reference), lock=True
    )
    await check_may_change(uow, principal, pledge)
    if pledge.status == PledgeStatus.CANCELLED:
        raise Conflict("a cancelled pledge is not corrected", code="pledge_cancelled")
    campaign = await uow.session.get(Campaign, pledge.campaign_id)
    assert campaign is not None
    if "amount_minor" in changes or "currency" in changes:
        _check_amount(
            campaign, changes.get("amount_minor", pledge.amount_minor), changes.get("currency")
        )
    changes.pop("currency", None)
    merged = {
        name: getattr(pledge, name) for name in (*TEXT_FIELDS, "channel", "consent_tax_receipt")
    }
    merged.update(changes)
    derived = _check_donor(merged, campaign.default_region)
    before = snapshot(pledge)
    counted = rollups.values_of(pledge)
    for name, value in changes.items():
        setattr(pledge, name, value)
    pledge.country = derived["country"]
    pledge.phone_e164 = derived["phone_e164"]
    pledge.departement = derived["departement"]
    if "amount_minor" in changes:
        # A new amount is looked at again; an approved pledge whose address is
        # corrected stays approved.
        pledge.flagged_for_review = pledge.amount_minor > campaign.pledge_review_minor
    if pledge.paid_minor > 0:
        pledge.status = _status_after_payment(pledge)
    old, new = _diff(before, snapshot(pledge))
    if not new:
        return pledge
    pledge.updated_at = utcnow()
    _audit(uow, pledge, principal, "corrected", old, new)
    await rollups.change(uow, pledge, counted)
    _emit_pledge(
        uow,
        "pledge.updated",
        pledge,
        fields=sorted(new),
        flagged_for_review=pledge.flagged_for_review,
    )
    return pledge


async def approve(
    uow: UnitOfWork, principal: Principal, reference: str, note: str | None
) -> Pledge:
    """A reviewer approves a pledge flagged for review (a large amount): audited with
    their note, and off the review list."""
    cardguard.check_fields({"note": note})
    pledge = await repository.get_by_reference(
        uow.session, normalise_reference(reference), lock=True
    )
    await check_may_change(uow, principal, pledge)
    if pledge.status == PledgeStatus.CANCELLED:
        raise Conflict("a cancelled pledge is not reviewed", code="pledge_cancelled")
    if not pledge.flagged_for_review:
        raise Conflict("this pledge is not waiting for review", code="not_flagged")
    pledge.flagged_for_review = False
    pledge.updated_at = utcnow()
    _audit(
        uow,
        pledge,
        principal,
        "approved",
        {"flagged_for_review": True},
        {"flagged_for_review": False, "review_note": note or ""},
    )
    _emit_pledge(
        uow, "pledge.updated", pledge, fields=["flagged_for_review"], flagged_for_review=False
    )
    return pledge


def _emit_pledge(uow: UnitOfWork, type: str, pledge: Pledge, **data: Any) -> None:
    """A pledge event, routed to the pledge's campaign, queue, call and agent."""
    emit(uow, type, **_pledge_event(pledge, **data))


def _pledge_event(pledge: Pledge, **data: Any) -> dict[str, Any]:
    """A pledge event's routing and data (:func:`_emit_pledge`)."""
    return {
        "campaign_id": pledge.campaign_id,
        "queue_id": pledge.queue_id,
        "call_id": pledge.call_id,
        "agent_id": pledge.agent_id,
        "data": {
            "pledge_id": pledge.id,
            "reference": pledge.reference,
            "amount_minor": pledge.amount_minor,
            "currency": pledge.currency,
            **data,
        },
    }


def _emit_status(uow: UnitOfWork, pledge: Pledge) -> None:
    _emit_pledge(
        uow,
        "pledge.status",
        pledge,
        status=pledge.status,
        cancel_reason=pledge.cancel_reason,
        paid_minor=pledge.paid_minor,
    )


async def mark_link_sent(uow: UnitOfWork, principal: Principal, reference: str) -> Pledge:
    pledge = await repository.get_by_reference(
        uow.session, normalise_reference(reference), lock=True
    )
    await check_may_change(uow, principal, pledge)
    if pledge.channel != "web_link":
        raise Conflict("this pledge is not paid by web link", code="illegal_pledge_transition")
    if pledge.status == PledgeStatus.LINK_SENT:
        return pledge  # sent again: nothing changes
    if pledge.status != PledgeStatus.PROMISED:
        raise Conflict(
            "a {status} pledge cannot move to link_sent",
            code="illegal_pledge_transition",
            status=pledge.status,
        )
    before = snapshot(pledge)
    pledge.status = PledgeStatus.LINK_SENT
    pledge.link_sent_at = pledge.updated_at = utcnow()
    _audit(uow, pledge, principal, "link_sent", *_diff(before, snapshot(pledge)))
    _emit_status(uow, pledge)
    return pledge


async def cancel(
    uow: UnitOfWork, principal: Principal, reference: str, reason: CancelReason
) -> Pledge:
    pledge = await repository.get_by_reference(
        uow.session, normalise_reference(reference), lock=True
    )
    await check_may_change(uow, principal, pledge)
    if pledge.status not in (PledgeStatus.PROMISED, PledgeStatus.LINK_SENT):
        raise Conflict(
            "a {status} pledge cannot be cancelled",
            code="illegal_pledge_transition",
            status=pledge.status,
        )
    before = snapshot(pledge)
    counted = rollups.values_of(pledge)
    pledge.status = PledgeStatus.CANCELLED
    pledge.cancel_reason = reason
    pledge.updated_at = utcnow()
    _audit(uow, pledge, principal, "cancelled", *_diff(before, snapshot(pledge)))
    await rollups.change(uow, pledge, counted)
    _emit_status(uow, pledge)
    return pledge


async def record_payment(
    uow: UnitOfWork,
    principal: Principal | None,
    reference: str,
    *,
    amount_minor: int,
    currency: str | None,
    provider_payment_id: str | None,
    received_at: dt.datetime | None,
) -> tuple[Pledge, bool]:
    """Add a payment; returns the pledge and whether it was new.

    A provider payment id already recorded changes nothing (the provider retries
    webhooks), as long as it was recorded against the same pledge.
    """
    pledge = await repository.get_by_reference(
        uow.session, normalise_reference(reference), lock=True
    )
    if principal is not None and principal.role == Role.SUPERVISOR:
        raise Forbidden("payments are recorded by organisers")
    if provider_payment_id is not None:
        known = await uow.session.scalar(
            select(PledgePayment).where(PledgePayment.provider_payment_id == provider_payment_id)
        )
        if known is not None:
            if known.pledge_id != pledge.id or known.amount_minor != amount_minor:
                raise Conflict(
                    "this payment id was recorded with other details",
                    field="provider_payment_id",
                    code="payment_conflict",
                )
            return pledge, False
    if currency is not None and currency != pledge.currency:
        raise Invalid("this pledge is in {currency}", field="currency", currency=pledge.currency)
    if amount_minor <= 0:
        raise Invalid("the amount must be more than zero", field="amount_minor")
    if pledge.status == PledgeStatus.CANCELLED:
        raise Conflict("the pledge was cancelled", code="illegal_pledge_transition")
    now = utcnow()
    uow.session.add(
        PledgePayment(
            pledge_id=pledge.id,
            amount_minor=amount_minor,
            currency=pledge.currency,
            provider_payment_id=provider_payment_id,
            source="manual" if principal is not None else "provider",
            recorded_by=principal.user_id if principal else None,
            received_at=received_at or now,
        )
    )
    before = snapshot(pledge)
    counted = rollups.values_of(pledge)
    pledge.paid_minor += amount_minor
    pledge.status = _status_after_payment(pledge)
    pledge.paid_at = received_at or now
    pledge.updated_at = now
    _audit(uow, pledge, principal, "payment", *_diff(before, snapshot(pledge)))
    await rollups.change(uow, pledge, counted)
    _emit_status(uow, pledge)
    return pledge, True


async def cancel_payment(
    uow: UnitOfWork, principal: Principal | None, reference: str, payment_id: int, reason: str
) -> Pledge:
    """A payment that no longer counts (a refund, a bounced cheque, a charge-back).

    The pledge's paid amount and status go back; what follows a cancelled payment
    (the tax receipt is cancelled) happens in this transaction through the hooks.
    """
    pledge = await repository.get_by_reference(
        uow.session, normalise_reference(reference), lock=True
    )
    if principal is not None and principal.role not in (Role.ORGANISER, Role.ADMIN):
        raise Forbidden("payments are cancelled by organisers")
    payment = await uow.session.get(PledgePayment, payment_id)
    if payment is None or payment.pledge_id != pledge.id:
        raise NotFound("no such payment on this pledge", field="payment_id")
    if payment.cancelled_at is not None:
        return pledge  # cancelled already: nothing changes
    now = utcnow()
    payment.cancelled_at = now
    payment.cancel_reason = reason
    before = snapshot(pledge)
    counted = rollups.values_of(pledge)
    pledge.paid_minor -= payment.amount_minor
    pledge.status = _status_after_payment(pledge)
    pledge.updated_at = now
    _audit(uow, pledge, principal, "payment_void", *_diff(before, snapshot(pledge)))
    await rollups.change(uow, pledge, counted)
    _emit_status(uow, pledge)
    for hook in hooks.of(uow.db).payment_cancelled:
        await hook(uow, pledge, reason)
    return pledge


async def payments_of(session: Any, pledge: Pledge) -> list[PledgePayment]:
    rows = await session.scalars(
        select(PledgePayment)
        .where(PledgePayment.pledge_id == pledge.id)
        .order_by(PledgePayment.received_at, PledgePayment.id)
    )
    return list(rows)


async def agent_partner(uow: UnitOfWork, agent_id: int | None) -> str | None:
    if agent_id is None:
        return None
    agent = await uow.session.get(Agent, agent_id)
    return agent.partner_org if agent else None


def pledge_out(pledge: Pledge, campaign: Campaign) -> dict[str, Any]:
    return {
        "id": pledge.id,
        "reference": pledge.reference,
        "campaign_id": pledge.campaign_id,
        "call_id": pledge.call_id,
        "agent_id": pledge.agent_id,
        "queue_id": pledge.queue_id,
        "first_name": pledge.first_name,
        "last_name": pledge.last_name,
        "address": pledge.address,
        "postcode": pledge.postcode,
        "city": pledge.city,
        "country": pledge.country,
        "email": pledge.email,
        "phone": pledge.phone,
        "departement": pledge.departement,
        "amount_minor": pledge.amount_minor,
        "currency": pledge.currency,
        "frequency": pledge.frequency,
        "channel": pledge.channel,
        "consent_contact": pledge.consent_contact,
        "consent_tax_receipt": pledge.consent_tax_receipt,
        "consent_board": pledge.consent_board,
        "flagged_for_review": pledge.flagged_for_review,
        "time_slot": pledge.time_slot,
        "note": pledge.note,
        "status": pledge.status,
        "cancel_reason": pledge.cancel_reason,
        "paid_minor": pledge.paid_minor,
        "payment_link": payment_link(campaign, pledge),
        "created_at": pledge.created_at.isoformat(),
        "updated_at": pledge.updated_at.isoformat(),
        "link_sent_at": pledge.link_sent_at.isoformat() if pledge.link_sent_at else None,
        "paid_at": pledge.paid_at.isoformat() if pledge.paid_at else None,
    }

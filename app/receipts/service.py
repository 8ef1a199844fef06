"""Issuing, copying, sending and cancelling tax receipts.

* **Issue.** A batch lists the campaign's paid pledges whose donor asked for a
  receipt and that have no live receipt, then issues each in a transaction of its
  own: the pledge row locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a pledge
  another batch is issuing is left to it), checked again, numbered
  (``numbering.next_number``), its receipt and ``receipt.issued`` event written.
  Short transactions keep the counter's row lock brief when batches overlap.
* **Copy.** Each PDF made (a download, an e-mail) counts a copy; the first is the
  original and every later one says "DUPLICATA", with the same number and content.
* **Cancel.** A cancelled payment cancels the pledge's live receipt in the same
  transaction (the pledge hook ``payment_cancelled``). Its number is never given
  again; if the pledge is paid once more, the next batch issues a new number.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Campaign
from app.db import Database, UnitOfWork, utcnow
from app.errors import AppError, Conflict, Invalid, NotFound
from app.pledges.hooks import PledgeHooks
from app.pledges.models import Pledge, PledgeStatus
from app.realtime.outbox import emit
from app.receipts import mail, numbering, wording
from app.receipts.models import (
    TAX_ARTICLES,
    Receipt,
    ReceiptCampaign,
    ReceiptOrganisation,
    ReceiptStatus,
)
from app.receipts.pdf import ReceiptDocument, render
from app.settings import Settings

log = logging.getLogger(__name__)
RECEIPTS = cast(Table, Receipt.__table__)
Progress = Callable[[int], None]


class MailFailed(AppError):
    status_code = 502
    code = "smtp_failed"


ORGANISATION_FIELDS = (
    "name",
    "address",
    "postcode",
    "city",
    "purpose",
    "siren",
    "rna",
    "legal_status",
    "tax_articles",
    "signatory_name",
    "signatory_title",
    "signature_place",
)
# What a receipt cannot be printed without.
REQUIRED = ("name", "address", "postcode", "city", "purpose", "legal_status", "signatory_name")


# --- organisations -----------------------------------------------------------------


def _check_organisation(values: dict[str, Any]) -> None:
    unknown = [a for a in values.get("tax_articles", []) if a not in TAX_ARTICLES]
    if unknown:
        raise Invalid(
            "tax articles are among {choices}; not {given!r}",
            field="tax_articles",
            choices=", ".join(TAX_ARTICLES),
            given=unknown[0],
        )
    if "tax_articles" in values and not values["tax_articles"]:
        raise Invalid("name at least one tax article", field="tax_articles")


async def _name_taken(session: AsyncSession, name: str, but: int | None = None) -> None:
    query = select(ReceiptOrganisation.id).where(ReceiptOrganisation.name == name)
    if but is not None:
        query = query.where(ReceiptOrganisation.id != but)
    if await session.scalar(query) is not None:
        raise Conflict("an organisation has this name", field="name", code="name_taken")


async def create_organisation(uow: UnitOfWork, values: dict[str, Any]) -> ReceiptOrganisation:
    _check_organisation(values)
    await _name_taken(uow.session, values["name"])
    now = utcnow()
    organisation = ReceiptOrganisation(**values, created_at=now, updated_at=now)
    uow.session.add(organisation)
    await uow.session.flush()
    emit(uow, "receipts.organisation_changed", data={"organisation_id": organisation.id})
    return organisation


async def update_organisation(
    uow: UnitOfWork, organisation_id: int, changes: dict[str, Any]
) -> ReceiptOrganisation:
    organisation = await uow.session.get(ReceiptOrganisation, organisation_id)
    if organisation is None:
        raise NotFound("no such organisation", field="organisation_id")
    _check_organisation(changes)
    if "name" in changes:
        await _name_taken(uow.session, changes["name"], but=organisation_id)
    for name, value in changes.items():
        setattr(organisation, name, value)
    organisation.updated_at = utcnow()
    emit(uow, "receipts.organisation_changed", data={"organisation_id": organisation.id})
    return organisation


async def attach(uow: UnitOfWork, campaign_id: int, organisation_id: int) -> None:
    """The campaign's receipts are issued by this organisation from now on."""
    if await uow.session.get(Campaign, campaign_id) is None:
        raise NotFound("no such campaign", field="campaign_id")
    if await uow.session.get(ReceiptOrganisation, organisation_id) is None:
        raise Invalid("no such organisation", field="organisation_id")
    link = await uow.session.get(ReceiptCampaign, campaign_id)
    if link is None:
        uow.session.add(ReceiptCampaign(campaign_id=campaign_id, organisation_id=organisation_id))
    else:
        link.organisation_id = organisation_id
    emit(
        uow,
        "receipts.campaign_attached",
        campaign_id=campaign_id,
        data={"organisation_id": organisation_id},
    )


async def organisation_of(session: AsyncSession, campaign_id: int) -> ReceiptOrganisation:
    organisation = await session.scalar(
        select(ReceiptOrganisation)
        .join(ReceiptCampaign, ReceiptCampaign.organisation_id == ReceiptOrganisation.id)
        .where(ReceiptCampaign.campaign_id == campaign_id)
    )
    if organisation is None:
        raise Conflict(
            "no organisation issues this campaign's receipts yet",
            field="campaign_id",
            code="receipts_not_configured",
        )
    missing = [name for name in REQUIRED if not getattr(organisation, name)]
    if missing or not organisation.tax_articles:
        raise Conflict(
            "the organisation's {missing} is missing",
            field=(missing or ["tax_articles"])[0],
            code="receipts_not_configured",
            missing=(missing or ["tax_articles"])[0],
        )
    return organisation


def organisation_snapshot(organisation: ReceiptOrganisation) -> dict[str, Any]:
    return {name: getattr(organisation, name) for name in ORGANISATION_FIELDS}


# --- issuing -----------------------------------------------------------------------


def _eligible(pledge: Pledge) -> bool:
    return (
        pledge.status == PledgeStatus.PAID
        and pledge.consent_tax_receipt
        and pledge.paid_minor > 0
        and pledge.paid_at is not None
    )


def _has_live_receipt() -> Any:
    return exists().where(Receipt.pledge_id == Pledge.id, Receipt.status == ReceiptStatus.ISSUED)


async def waiting_pledges(session: AsyncSession, campaign_id: int) -> list[int]:
    """Ids of the campaign's pledges a batch would issue a receipt for, oldest first."""
    rows = await session.scalars(
        select(Pledge.id)
        .where(
            Pledge.campaign_id == campaign_id,
            Pledge.status == PledgeStatus.PAID,
            Pledge.consent_tax_receipt.is_(True),
            ~_has_live_receipt(),
        )
        .order_by(Pledge.id)
    )
    return list(rows)


async def issue_one(
    db: Database, pledge_id: int, organisation: ReceiptOrganisation, actor: str
) -> Receipt | None:
    """Issue the pledge's receipt in one transaction; None if another batch has it, or
    it is no longer due (a payment cancelled since the list was read)."""
    async with db.unit_of_work() as uow:
        session = uow.session
        query = select(Pledge).where(Pledge.id == pledge_id)
        pledge = await session.scalar(query.with_for_update(skip_locked=True))
        if pledge is None or not _eligible(pledge):
            return None
        live = await session.scalar(
            select(Receipt.id).where(
                Receipt.pledge_id == pledge.id, Receipt.status == ReceiptStatus.ISSUED
            )
        )
        if live is not None:
            return None
        now = utcnow()
        year = wording.paris_year(now)
        number = await numbering.next_number(uow, organisation.id, year)
        assert pledge.paid_at is not None
        receipt = Receipt(
            organisation_id=organisation.id,
            year=year,
            number=number,
            campaign_id=pledge.campaign_id,
            pledge_id=pledge.id,
            pledge_reference=pledge.reference,
            donor_first_name=pledge.first_name,
            donor_last_name=pledge.last_name,
            donor_address=pledge.address,
            donor_postcode=pledge.postcode,
            donor_city=pledge.city,
            donor_country=pledge.country,
            donor_email=pledge.email,
            amount_minor=pledge.paid_minor,
            currency=pledge.currency,
            paid_at=pledge.paid_at,
            payment_mode=pledge.channel,
            organisation=organisation_snapshot(organisation),
            status=ReceiptStatus.ISSUED,
            issued_at=now,
            issued_by=actor,
            copies=0,
        )
        session.add(receipt)
        await session.flush()
        _emit(uow, "receipt.issued", receipt)
    return receipt


@dataclass
class BatchResult:
    campaign_id: int
    waiting: int = 0
    issued: list[Receipt] = field(default_factory=list)
    sent: int = 0
    send_failed: int = 0
    without_email: int = 0


async def issue_batch(
    db: Database,
    campaign_id: int,
    actor: str,
    *,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> BatchResult:
    """Issue every receipt due in the campaign (see the module note)."""
    async with db.read() as session:
        if await session.get(Campaign, campaign_id) is None:
            raise NotFound("no such campaign", field="campaign_id")
        organisation = await organisation_of(session, campaign_id)
        waiting = await waiting_pledges(session, campaign_id)
    result = BatchResult(campaign_id, waiting=len(waiting))
    if on_total is not None:
        on_total(len(waiting))
    for done, pledge_id in enumerate(waiting, start=1):
        receipt = await issue_one(db, pledge_id, organisation, actor)
        if receipt is not None:
            result.issued.append(receipt)
        if progress is not None:
            progress(done)
    if result.issued:
        first, last = result.issued[0], result.issued[-1]
        log.info(
            "receipts issued for campaign %s: %d (%s to %s)",
            campaign_id,
            len(result.issued),
            wording.receipt_number(first.year, first.number),
            wording.receipt_number(last.year, last.number),
        )
    return result


# --- cancelling --------------------------------------------------------------------


async def cancel_for_pledge(uow: UnitOfWork, pledge: Any, reason: str) -> None:
    """The pledge hook ``payment_cancelled``: its live receipt is cancelled, in the
    transaction that cancelled the payment."""
    now = utcnow()
    rows = await uow.session.execute(
        update(RECEIPTS)
        .where(RECEIPTS.c.pledge_id == pledge.id, RECEIPTS.c.status == ReceiptStatus.ISSUED)
        .values(
            status=ReceiptStatus.CANCELLED,
            cancelled_at=now,
            cancel_reason=f"payment cancelled: {reason}"[:200],
        )
        .returning(RECEIPTS.c.id, RECEIPTS.c.year, RECEIPTS.c.number)
    )
    for receipt_id, year, number in rows:
        emit(
            uow,
            "receipt.cancelled",
            campaign_id=pledge.campaign_id,
            data={
                "receipt_id": receipt_id,
                "number": wording.receipt_number(year, number),
                "reference": pledge.reference,
            },
        )


def register(pledge_hooks: PledgeHooks) -> None:
    pledge_hooks.payment_cancelled.append(cancel_for_pledge)


# --- copies: download and e-mail ---------------------------------------------------


def document(receipt: Receipt, *, duplicata: bool) -> ReceiptDocument:
    org = receipt.organisation
    return ReceiptDocument(
        number=wording.receipt_number(receipt.year, receipt.number),
        duplicata=duplicata,
        organisation_name=org["name"],
        organisation_address=org["address"],
        organisation_postcode=org["postcode"],
        organisation_city=org["city"],
        organisation_purpose=org["purpose"],
        organisation_siren=org.get("siren", ""),
        organisation_rna=org.get("rna", ""),
        organisation_status=org["legal_status"],
        tax_articles=tuple(org["tax_articles"]),
        donor_last_name=receipt.donor_last_name,
        donor_first_name=receipt.donor_first_name,
        donor_address=receipt.donor_address,
        donor_postcode=receipt.donor_postcode,
        # Abroad, the country follows the town (a French receipt names no country at home).
        donor_city=receipt.donor_city
        + (f" ({receipt.donor_country})" if receipt.donor_country not in ("", "FR") else ""),
        amount_figures=wording.amount_in_figures(receipt.amount_minor, receipt.currency),
        amount_words=wording.amount_in_words(receipt.amount_minor, receipt.currency),
        payment_date=wording.paris_date(receipt.paid_at),
        payment_mode=wording.payment_mode(receipt.payment_mode),
        signatory_name=org["signatory_name"],
        signatory_title=org.get("signatory_title", ""),
        signature_place=org.get("signature_place", "") or org["city"],
        signature_date=wording.paris_date(receipt.issued_at),
    )


def filename(receipt: Receipt) -> str:
    return f"recu-fiscal-{wording.receipt_number(receipt.year, receipt.number)}.pdf"


async def get(session: AsyncSession, receipt_id: int) -> Receipt:
    receipt = await session.get(Receipt, receipt_id)
    if receipt is None:
        raise NotFound("no such receipt", field="receipt_id")
    return receipt


async def _render(receipt: Receipt, settings: Settings, *, duplicata: bool) -> bytes:
    # Tens of milliseconds of drawing: off the event loop, which serves the calls.
    doc = document(receipt, duplicata=duplicata)
    return await asyncio.to_thread(render, doc, font_path=settings.receipts_font_path)


async def take_copy(db: Database, receipt_id: int) -> tuple[Receipt, int]:
    """Count one more copy of a live receipt: (the receipt, this copy's rank from 1)."""
    async with db.unit_of_work() as uow:
        rank = await uow.session.scalar(
            update(RECEIPTS)
            .where(RECEIPTS.c.id == receipt_id, RECEIPTS.c.status == ReceiptStatus.ISSUED)
            .values(copies=RECEIPTS.c.copies + 1)
            .returning(RECEIPTS.c.copies)
        )
        receipt = await get(uow.session, receipt_id)
        if rank is None:
            raise Conflict(
                "this receipt was cancelled; it is not given out again",
                field="receipt_id",
                code="receipt_cancelled",
            )
        await uow.session.refresh(receipt)
    return receipt, int(rank)


async def pdf_copy(db: Database, settings: Settings, receipt_id: int) -> tuple[Receipt, bytes]:
    receipt, rank = await take_copy(db, receipt_id)
    return receipt, await _render(receipt, settings, duplicata=rank > 1)


async def _give_back_copy(db: Database, receipt_id: int, rank: int) -> None:
    """An e-mail that did not leave: its copy is not counted (the next one is the original)."""
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            update(RECEIPTS)
            .where(RECEIPTS.c.id == receipt_id, RECEIPTS.c.copies == rank)
            .values(copies=RECEIPTS.c.copies - 1)
        )


def check_mail_configured(settings: Settings) -> None:
    if not settings.smtp_host:
        raise Conflict("no SMTP server is set (PLEDGELINE_SMTP_HOST)", code="smtp_not_configured")


async def send(db: Database, settings: Settings, receipt_id: int, to: str | None = None) -> bool:
    """E-mail the receipt to the donor (or ``to``); whether the server took it."""
    async with db.read() as session:
        receipt = await get(session, receipt_id)
    address = to or receipt.donor_email
    if not address:
        raise Invalid("the donor gave no e-mail address", field="to", code="no_email")
    check_mail_configured(settings)
    receipt, rank = await take_copy(db, receipt_id)
    number = wording.receipt_number(receipt.year, receipt.number)
    pdf = await _render(receipt, settings, duplicata=rank > 1)
    org = receipt.organisation["name"]
    try:
        await mail.send_pdf(
            settings,
            to=address,
            subject=f"Votre reçu fiscal n° {number}" + (" (duplicata)" if rank > 1 else ""),
            text=(
                f"Bonjour,\n\nMerci pour votre don à {org}. Vous trouverez ci-joint le reçu "
                f"fiscal n° {number} à joindre à votre déclaration de revenus.\n\n{org}\n"
            ),
            pdf=pdf,
            filename=filename(receipt),
        )
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("receipt %s not sent: %s", number, type(exc).__name__)
        await _give_back_copy(db, receipt_id, rank)
        return False
    async with db.unit_of_work() as uow:
        row = await get(uow.session, receipt_id)
        row.sent_at, row.sent_to = utcnow(), address
        _emit(uow, "receipt.sent", row, duplicata=rank > 1)
    return True


async def unsent(session: AsyncSession, campaign_id: int) -> list[Receipt]:
    rows = await session.scalars(
        select(Receipt)
        .where(
            Receipt.campaign_id == campaign_id,
            Receipt.status == ReceiptStatus.ISSUED,
            Receipt.sent_at.is_(None),
        )
        .order_by(Receipt.id)
    )
    return list(rows)


async def send_unsent(
    db: Database, settings: Settings, result: BatchResult, progress: Progress | None = None
) -> None:
    """E-mail every live receipt of the campaign not sent yet (no address: left to download)."""
    async with db.read() as session:
        pending = await unsent(session, result.campaign_id)
    for done, receipt in enumerate(pending, start=1):
        if not receipt.donor_email:
            result.without_email += 1
        else:
            try:
                sent = await send(db, settings, receipt.id)
            except Conflict:
                continue  # cancelled since the list was read: not sent, not counted
            if sent:
                result.sent += 1
            else:
                result.send_failed += 1
        if progress is not None:
            progress(done)


def _emit(uow: UnitOfWork, type: str, receipt: Receipt, **data: Any) -> None:
    emit(
        uow,
        type,
        campaign_id=receipt.campaign_id,
        data={
            "receipt_id": receipt.id,
            "number": wording.receipt_number(receipt.year, receipt.number),
            "reference": receipt.pledge_reference,
            **data,
        },
    )


def receipt_out(receipt: Receipt) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "number": wording.receipt_number(receipt.year, receipt.number),
        "year": receipt.year,
        "sequence": receipt.number,
        "organisation_id": receipt.organisation_id,
        "campaign_id": receipt.campaign_id,
        "pledge_reference": receipt.pledge_reference,
        "donor_name": f"{receipt.donor_first_name} {receipt.donor_last_name}".strip(),
        "donor_email": receipt.donor_email,
        "amount_minor": receipt.amount_minor,
        "currency": receipt.currency,
        "paid_at": receipt.paid_at,
        "status": receipt.status,
        "issued_at": receipt.issued_at,
        "cancelled_at": receipt.cancelled_at,
        "cancel_reason": receipt.cancel_reason,
        "copies": receipt.copies,
        "sent_at": receipt.sent_at,
        "sent_to": receipt.sent_to,
    }

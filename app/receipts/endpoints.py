"""Receipts over HTTP: the issuing organisations, the batch, the list, PDFs and e-mails.

Organisers and admins only. Thin handlers over ``service``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import select

from app.auth.deps import require
from app.auth.service import Principal, Role
from app.db import Database
from app.deps import get_app_settings, get_db
from app.receipts import service, wording
from app.receipts.models import Receipt, ReceiptOrganisation
from app.receipts.schemas import (
    AttachIn,
    BatchOut,
    IssueIn,
    OrganisationIn,
    OrganisationOut,
    OrganisationPatch,
    ReceiptOut,
    SendIn,
)
from app.settings import Settings

router = APIRouter(prefix="/receipts", tags=["receipts"])
DB = Annotated[Database, Depends(get_db)]
Organisers = Annotated[Principal, Depends(require(Role.ORGANISER))]
AppSettings = Annotated[Settings, Depends(get_app_settings)]


@router.get("/organisations", response_model=list[OrganisationOut])
async def list_organisations(db: DB, _: Organisers) -> list[ReceiptOrganisation]:
    async with db.read() as session:
        return list(await session.scalars(select(ReceiptOrganisation).order_by("id")))


@router.post("/organisations", response_model=OrganisationOut, status_code=201)
async def create_organisation(body: OrganisationIn, db: DB, _: Organisers) -> ReceiptOrganisation:
    async with db.unit_of_work() as uow:
        return await service.create_organisation(uow, body.model_dump())


@router.patch("/organisations/{organisation_id}", response_model=OrganisationOut)
async def update_organisation(
    organisation_id: int, body: OrganisationPatch, db: DB, _: Organisers
) -> ReceiptOrganisation:
    changes = body.model_dump(exclude_unset=True)
    async with db.unit_of_work() as uow:
        return await service.update_organisation(uow, organisation_id, changes)


@router.put("/campaigns/{campaign_id}", response_model=OrganisationOut)
async def attach_campaign(
    campaign_id: int, body: AttachIn, db: DB, _: Organisers
) -> ReceiptOrganisation:
    """The organisation that issues this campaign's receipts."""
    async with db.unit_of_work() as uow:
        await service.attach(uow, campaign_id, body.organisation_id)
    async with db.read() as session:
        organisation = await session.get(ReceiptOrganisation, body.organisation_id)
    assert organisation is not None
    return organisation


@router.post("/issue", response_model=BatchOut)
async def issue(body: IssueIn, db: DB, principal: Organisers, settings: AppSettings) -> Any:
    """Issue the campaign's due receipts (paid pledges whose donor asked for one); with
    ``send``, then e-mail every receipt not sent yet."""
    if body.send:
        service.check_mail_configured(settings)  # before anything is issued
    result = await service.issue_batch(db, body.campaign_id, principal.username)
    if body.send:
        await service.send_unsent(db, settings, result)
    return {
        "campaign_id": result.campaign_id,
        "waiting": result.waiting,
        "issued": len(result.issued),
        "numbers": [wording.receipt_number(r.year, r.number) for r in result.issued],
        "sent": result.sent,
        "send_failed": result.send_failed,
        "without_email": result.without_email,
    }


@router.get("", response_model=list[ReceiptOut])
async def list_receipts(
    db: DB,
    _: Organisers,
    campaign_id: int,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    query = select(Receipt).where(Receipt.campaign_id == campaign_id)
    if status is not None:
        query = query.where(Receipt.status == status)
    query = query.order_by(Receipt.year, Receipt.number).limit(limit).offset(offset)
    async with db.read() as session:
        return [service.receipt_out(r) for r in await session.scalars(query)]


@router.get(
    "/{receipt_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def receipt_pdf(receipt_id: int, db: DB, _: Organisers, settings: AppSettings) -> Response:
    """The receipt as a PDF; every download after the first copy says "DUPLICATA"."""
    receipt, pdf = await service.pdf_copy(db, settings, receipt_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{service.filename(receipt)}"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/{receipt_id}/send", response_model=ReceiptOut)
async def send_receipt(
    receipt_id: int, body: SendIn, db: DB, _: Organisers, settings: AppSettings
) -> dict[str, Any]:
    """E-mail the receipt (again: a duplicata) to the donor or to ``to``."""
    if not await service.send(db, settings, receipt_id, body.to):
        raise service.MailFailed("the mail server did not take the message")
    async with db.read() as session:
        return service.receipt_out(await service.get(session, receipt_id))

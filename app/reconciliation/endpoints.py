"""Reconciliation HTTP API (organisers and admins): sources, imports, lines.

Thin handlers: each change is one unit of work over ``service``; an import goes
through ``imports.import_file`` like the command line's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth.deps import require
from app.auth.service import Principal, Role
from app.db import Database
from app.deps import get_db, read_limited_body
from app.errors import Conflict, refused_file_response
from app.pledges.models import Pledge
from app.reconciliation import imports, repository, service
from app.reconciliation.models import PaymentImport, PaymentLine, PaymentSource
from app.reconciliation.schemas import (
    FileRefusedOut,
    ImportOut,
    LineOut,
    MatchIn,
    SourceIn,
    SourceOut,
)

router = APIRouter(tags=["reconciliation"])
DB = Annotated[Database, Depends(get_db)]
Organiser = Annotated[Principal, Depends(require(Role.ORGANISER))]
SourceName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$")]
LineView = Annotated[
    str,
    Query(pattern=r"^(unmatched|differences|recorded|already_recorded|dismissed|ignored)$"),
]


def _source_out(source: PaymentSource) -> dict[str, Any]:
    return {
        name: getattr(source, name)
        for name in (
            "id",
            "name",
            "kind",
            "delimiter",
            "decimal_separator",
            "encoding",
            "date_format",
            "currency",
            "columns",
            "updated_at",
        )
    }


def _import_out(batch: PaymentImport, source_name: str) -> dict[str, Any]:
    return {
        "id": batch.id,
        "source": source_name,
        "campaign_id": batch.campaign_id,
        "filename": batch.filename,
        "actor": batch.actor,
        "imported_at": batch.imported_at,
        **{name: getattr(batch, name) for name in service.COUNTS},
    }


def _brief(pledge: Pledge) -> dict[str, Any]:
    return {
        "id": pledge.id,
        "reference": pledge.reference,
        "name": f"{pledge.first_name} {pledge.last_name}".strip(),
        "amount_minor": pledge.amount_minor,
        "paid_minor": pledge.paid_minor,
        "currency": pledge.currency,
        "status": pledge.status,
        "frequency": pledge.frequency,
    }


@router.get("/payments/sources", response_model=list[SourceOut])
async def list_sources(db: DB, _: Organiser) -> list[dict[str, Any]]:
    async with db.read() as session:
        sources = await session.scalars(select(PaymentSource).order_by(PaymentSource.name))
        return [_source_out(s) for s in sources]


@router.put("/payments/sources/{name}", response_model=SourceOut)
async def save_source(name: SourceName, body: SourceIn, db: DB, _: Organiser) -> dict[str, Any]:
    """Create or replace a source's column mapping."""
    values = body.model_dump()
    values["columns"] = {k: v for k, v in values["columns"].items() if v is not None}
    async with db.unit_of_work() as uow:
        source = await service.save_source(uow, name, values)
        return _source_out(source)


@router.post(
    "/payments/imports",
    status_code=201,
    response_model=ImportOut,
    summary="Import a CSV export (the raw file as the body)",
    responses={
        422: {
            "model": FileRefusedOut,
            "description": "bad file: every problem as {line, column, reason}",
        }
    },
)
async def import_payments(
    request: Request,
    db: DB,
    principal: Organiser,
    source: Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$")],
    campaign_id: int,
    filename: Annotated[str, Query(max_length=200)] = "",
) -> Any:
    data = await read_limited_body(request, imports.MAX_IMPORT_BYTES)
    try:
        batch = await imports.import_file(
            db,
            principal,
            source_name=source,
            campaign_id=campaign_id,
            data=data,
            filename=filename,
        )
    except imports.FileRefused as exc:
        return refused_file_response(request, exc)
    return JSONResponse(
        ImportOut(**_import_out(batch, source)).model_dump(mode="json"), status_code=201
    )


@router.get("/payments/imports", response_model=list[ImportOut])
async def list_imports(
    db: DB, _: Organiser, campaign_id: int, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[dict[str, Any]]:
    async with db.read() as session:
        rows = await session.execute(
            select(PaymentImport, PaymentSource.name)
            .join(PaymentSource, PaymentSource.id == PaymentImport.source_id)
            .where(PaymentImport.campaign_id == campaign_id)
            .order_by(PaymentImport.id.desc())
            .limit(limit)
        )
        return [_import_out(batch, name) for batch, name in rows]


async def _lines_out(db: Database, lines: list[PaymentLine]) -> list[dict[str, Any]]:
    ids = {line.pledge_id for line in lines if line.pledge_id is not None}
    ids.update(s["pledge_id"] for line in lines for s in line.suggestions or [])
    async with db.read() as session:
        by_id = await repository.pledges_by_id(session, ids)
    out = []
    for line in lines:
        pledge = by_id.get(line.pledge_id) if line.pledge_id is not None else None
        out.append(
            {
                **{
                    name: getattr(line, name)
                    for name in (
                        "id",
                        "import_id",
                        "line_no",
                        "booked_at",
                        "amount_minor",
                        "currency",
                        "label",
                        "payer",
                        "transaction_id",
                        "status",
                        "note",
                        "method",
                        "confidence",
                        "difference_minor",
                        "reviewed_at",
                    )
                },
                "pledge": _brief(pledge) if pledge is not None else None,
                "suggestions": [
                    {"confidence": s["confidence"], "pledge": _brief(by_id[s["pledge_id"]])}
                    for s in line.suggestions or []
                    if s["pledge_id"] in by_id
                ],
            }
        )
    return out


@router.get("/payments/lines", response_model=list[LineOut])
async def list_lines(
    db: DB,
    _: Organiser,
    campaign_id: int,
    view: LineView = "unmatched",
    import_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """``unmatched``: lines waiting for a pledge; ``differences``: over- and
    under-payments not yet checked; or the lines of one status."""
    query = select(PaymentLine).where(
        PaymentLine.campaign_id == campaign_id, *repository.line_filters(view)
    )
    if import_id is not None:
        query = query.where(PaymentLine.import_id == import_id)
    query = query.order_by(PaymentLine.booked_at, PaymentLine.id).limit(limit).offset(offset)
    async with db.read() as session:
        lines = list(await session.scalars(query))
    return await _lines_out(db, lines)


@router.post("/payments/lines/{line_id}/match", response_model=LineOut)
async def match_line(line_id: int, body: MatchIn, db: DB, principal: Organiser) -> Any:
    """Record the line's payment on the pledge the organiser picked."""
    try:
        async with db.unit_of_work() as uow:
            line = await service.match_line(uow, principal, line_id, body.reference)
    except IntegrityError as exc:  # the same payment recorded at this moment elsewhere
        raise Conflict("this payment was just recorded", code="payment_conflict") from exc
    return (await _lines_out(db, [line]))[0]


@router.post("/payments/lines/{line_id}/dismiss", response_model=LineOut)
async def dismiss_line(line_id: int, db: DB, principal: Organiser) -> Any:
    async with db.unit_of_work() as uow:
        line = await service.dismiss_line(uow, principal, line_id)
    return (await _lines_out(db, [line]))[0]


@router.post("/payments/lines/{line_id}/reviewed", response_model=LineOut)
async def line_reviewed(line_id: int, db: DB, principal: Organiser) -> Any:
    async with db.unit_of_work() as uow:
        line = await service.mark_reviewed(uow, principal, line_id)
    return (await _lines_out(db, [line]))[0]

"""``GET /pledges/export.csv`` and ``GET /pledges/export.xlsx``: organisers' pledge lists;
``GET /pledges/totals.csv|xlsx``: one table of their totals.

Thin: the filter is checked and the export's bounds fixed before the first byte
(so a refusal is a plain JSON error), then the file streams chunk by chunk.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from app.auth.deps import check_campaign, require
from app.auth.service import Principal, Role
from app.db import Database, utcnow
from app.deps import get_db
from app.errors import Invalid
from app.i18n.negotiation import request_language
from app.pledges import exports, totals, totals_files
from app.pledges.export_formats import MEDIA_TYPES
from app.pledges.schemas import Moment

router = APIRouter(tags=["pledges"])
DB = Annotated[Database, Depends(get_db)]
Organiser = Annotated[Principal, Depends(require(Role.ORGANISER))]

CampaignId = Annotated[int, Query(description="the campaign whose pledges to export")]
Since = Annotated[
    Moment | None, Query(description="pledges created at or after (ISO 8601 with zone)")
]
Until = Annotated[Moment | None, Query(description="pledges created before (ISO 8601)")]
Status = Annotated[
    list[str] | None, Query(description="only these statuses (repeat the parameter)")
]
Slot = Annotated[str | None, Query(max_length=100, description="only this time slot (by name)")]
QueueId = Annotated[int | None, Query(description="only pledges taken on this queue")]


async def export_filter(
    campaign_id: CampaignId,
    since: Since = None,
    until: Until = None,
    status: Status = None,
    slot: Slot = None,
    queue_id: QueueId = None,
) -> exports.ExportFilter:
    """The filter both formats take, from the query string."""
    return exports.ExportFilter(
        campaign_id=campaign_id,
        since=since,
        until=until,
        statuses=tuple(status or ()),
        slot=slot,
        queue_id=queue_id,
    )


Filter = Annotated[exports.ExportFilter, Depends(export_filter)]


async def _stream(
    request: Request,
    db: Database,
    principal: Principal,
    fmt: str,
    wanted: exports.ExportFilter,
    bom: bool = False,
    dialect: str = "rfc4180",
) -> StreamingResponse:
    check_campaign(principal, wanted.campaign_id)
    export = await exports.prepare(db, wanted)
    name = exports.file_name(export, fmt, utcnow())
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Export-Rows": str(export.total),
    }
    return StreamingResponse(
        # The headers in the caller's language (``Accept-Language``, their setting).
        export.stream(db, fmt, bom=bom, csv_dialect=dialect, language=request_language(request)),
        media_type=MEDIA_TYPES[fmt],
        headers=headers,
    )


@router.get(
    "/pledges/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES["csv"]: {}}}},
)
async def export_csv(
    request: Request,
    db: DB,
    principal: Organiser,
    wanted: Filter,
    bom: Annotated[
        bool, Query(description="start with a UTF-8 byte-order mark (for spreadsheet programs)")
    ] = False,
    dialect: Annotated[
        Literal["rfc4180", "excel-fr"],
        Query(
            description=(
                "rfc4180: comma-separated, decimal point; excel-fr: semicolon-separated, "
                "decimal comma in amounts, with a BOM (what a French Excel opens as it is)"
            )
        ),
    ] = "rfc4180",
) -> StreamingResponse:
    """The campaign's pledges as CSV (RFC 4180, UTF-8, or the excel-fr dialect), streamed."""
    return await _stream(request, db, principal, "csv", wanted, bom, dialect)


@router.get(
    "/pledges/export.xlsx",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES["xlsx"]: {}}}},
)
async def export_xlsx(
    request: Request, db: DB, principal: Organiser, wanted: Filter
) -> StreamingResponse:
    """The campaign's pledges as an XLSX workbook, streamed."""
    return await _stream(request, db, principal, "xlsx", wanted)


TableName = Annotated[
    totals_files.Table,
    Query(description="which table of GET /pledges/totals (by_slot, by_hour, by_queue...)"),
]


@dataclass(frozen=True)
class TotalsFileQuery:
    campaign_id: int
    table: str
    since: dt.datetime | None
    until: dt.datetime | None


async def totals_file_query(
    campaign_id: CampaignId, table: TableName, since: Since = None, until: Until = None
) -> TotalsFileQuery:
    """Which table of which campaign's totals, over which period (as the page's)."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid("a time with an offset (Z or +01:00)", field=name)
    return TotalsFileQuery(campaign_id, table, since, until)


TotalsWanted = Annotated[TotalsFileQuery, Depends(totals_file_query)]


async def _totals_file(
    request: Request, db: Database, principal: Principal, fmt: str, wanted: TotalsFileQuery
) -> Response:
    check_campaign(principal, wanted.campaign_id)
    async with db.read() as session:
        figures = await totals.campaign_totals(
            session, wanted.campaign_id, wanted.since, wanted.until
        )
    data = totals_files.spreadsheet(figures, wanted.table, fmt, request_language(request))
    stamp = utcnow().strftime("%Y%m%dT%H%MZ")
    name = totals_files.file_name(wanted.campaign_id, wanted.table, fmt, stamp)
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)


@router.get("/pledges/totals.csv", responses={200: {"content": {MEDIA_TYPES["csv"]: {}}}})
async def totals_csv(
    request: Request, db: DB, principal: Organiser, wanted: TotalsWanted
) -> Response:
    """One table of the campaign's totals (the organiser screen's) as CSV (RFC 4180)."""
    return await _totals_file(request, db, principal, "csv", wanted)


@router.get("/pledges/totals.xlsx", responses={200: {"content": {MEDIA_TYPES["xlsx"]: {}}}})
async def totals_xlsx(
    request: Request, db: DB, principal: Organiser, wanted: TotalsWanted
) -> Response:
    """One table of the campaign's totals (the organiser screen's) as an XLSX workbook."""
    return await _totals_file(request, db, principal, "xlsx", wanted)

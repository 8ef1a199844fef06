"""``GET /reports/hours`` (JSON, CSV, XLSX) and ``GET /reports/hours/attestation.pdf``:
the volunteers' hours for organisers and admins (docs/roster.md, Hours report)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.deps import check_campaign, require
from app.auth.service import Principal, Role
from app.db import Database, utcnow
from app.deps import get_db
from app.i18n.negotiation import negotiate, request_language
from app.pledges.export_formats import MEDIA_TYPES
from app.pledges.schemas import Moment
from app.roster import hours
from app.roster.attestation import render
from app.roster.hours_files import file_name, spreadsheet
from app.roster.schemas import HoursReportOut, HoursRowOut, HoursTotalsOut
from app.settings import Settings

router = APIRouter(tags=["roster"])
DB = Annotated[Database, Depends(get_db)]
Organiser = Annotated[Principal, Depends(require(Role.ORGANISER))]
CampaignId = Annotated[int, Query(description="the campaign whose volunteers' hours to report")]
From = Annotated[
    Moment | None,
    Query(alias="from", description="start of the period (ISO 8601 with zone); default: all"),
]
To = Annotated[
    Moment | None, Query(alias="to", description="end of the period, excluded (ISO 8601)")
]
PDF = "application/pdf"


def _totals_out(totals: hours.Totals) -> HoursTotalsOut:
    return HoursTotalsOut(**vars(totals))


def _out(report: hours.HoursReport) -> HoursReportOut:
    return HoursReportOut(
        campaign_id=report.campaign_id,
        campaign=report.campaign,
        group=report.group,
        currency=report.currency,
        timezone=report.timezone,
        since=report.since,
        until=report.until,
        generated_at=report.now,
        rows=[
            HoursRowOut(
                agent_id=row.agent_id,
                volunteer=row.volunteer,
                employer=row.employer,
                site_id=row.site_id,
                site=row.site,
                volunteers=row.volunteers,
                **vars(row.totals),
            )
            for row in report.rows
        ],
        totals=_totals_out(report.totals),
    )


@router.get(
    "/reports/hours",
    response_model=HoursReportOut,
    summary="The volunteers' hours, per volunteer, employer or site",
    responses={200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["xlsx"]: {}}}},
)
async def hours_report(
    request: Request,
    db: DB,
    principal: Organiser,
    campaign_id: CampaignId,
    since: From = None,
    until: To = None,
    group: Annotated[
        Literal["volunteer", "employer", "site"], Query(description="one line per...")
    ] = "volunteer",
    format: Annotated[
        Literal["json", "csv", "xlsx"], Query(description="json, or a CSV (RFC 4180) or XLSX file")
    ] = "json",
) -> HoursReportOut | Response:
    """Shifts signed up, time logged in, time on calls, calls handled and pledges taken
    over the period (the whole campaign by default); durations in seconds of real
    elapsed time (docs/roster.md, Hours report)."""
    check_campaign(principal, campaign_id)
    report = await hours.report(db, campaign_id, group, since=since, until=until, now=utcnow())
    if format == "json":
        return _out(report)
    data = spreadsheet(report, format, request_language(request))
    return Response(
        data,
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="{file_name(report, format)}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/reports/hours/attestation.pdf",
    response_class=Response,
    summary="A company's attestation of its employees' hours (PDF)",
    responses={200: {"content": {PDF: {}}}},
)
async def hours_attestation(
    request: Request,
    db: DB,
    principal: Organiser,
    campaign_id: CampaignId,
    employer: Annotated[
        str, Query(min_length=1, max_length=200, description="the company, as on the roster")
    ],
    since: From = None,
    until: To = None,
    lang: Annotated[
        Literal["fr", "en"] | None,
        Query(description="the attestation's language (default: the negotiated one, French)"),
    ] = None,
) -> Response:
    """Printable: the company, the campaign, the period, each employee's time logged in,
    time on calls and calls handled, the total, the date of issue and a signature line."""
    check_campaign(principal, campaign_id)
    report = await hours.report(
        db, campaign_id, "volunteer", since=since, until=until, now=utcnow(), employer=employer
    )
    language = lang or negotiate(
        getattr(request.state, "user_language", None),
        request.headers.get("accept-language"),
        report.language,
    )
    settings: Settings = request.app.state.settings
    pdf = await asyncio.to_thread(
        render,
        report,
        employer.strip(),
        language,
        font_path=settings.receipts_font_path,
    )
    name = f"attestation-{report.campaign_id}-{report.now:%Y%m%d}.pdf"
    return Response(
        pdf,
        media_type=PDF,
        headers={
            "Content-Disposition": f'inline; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )

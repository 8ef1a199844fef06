"""Roster HTTP API: sites, volunteers one by one, roster imports, PIN sheets.

Admins write; supervisors read their campaign's sites, organisers all. PINs appear in an answer
once (registration, import, sheet) and are never readable again: a lost PIN is
re-issued by a new sheet.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from app.acd import config, repository
from app.acd.models import Site
from app.acd.schemas import agent_out
from app.auth.deps import check_campaign, require
from app.auth.service import Principal, Role
from app.db import Database
from app.deps import get_db, read_limited_body
from app.errors import refused_file_response
from app.roster import service
from app.roster.pin_sheet import render_pin_sheet
from app.roster.schemas import (
    ImportOut,
    ImportRefusedOut,
    IssuedPinOut,
    PinSheetIn,
    SiteIn,
    SiteOut,
    SitePatch,
    VolunteerIn,
    VolunteerOut,
)

router = APIRouter(tags=["roster"])
DB = Annotated[Database, Depends(get_db)]
Admin = Annotated[Principal, Depends(require())]
Staff = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ORGANISER))]


def _pin_out(issued: service.IssuedPin) -> IssuedPinOut:
    return IssuedPinOut(
        agent_id=issued.agent_id,
        display_name=issued.display_name,
        site_id=issued.site_id,
        username=issued.username,
        pin=issued.pin,
    )


# --- sites ---------------------------------------------------------------------------


@router.post("/sites", status_code=201, response_model=SiteOut, summary="Add a partner site")
async def create_site(body: SiteIn, db: DB, _: Admin) -> Site:
    async with db.unit_of_work() as uow:
        return await service.create_site(uow, body)


@router.get("/sites", response_model=list[SiteOut], summary="A campaign's sites")
async def list_sites(db: DB, principal: Staff, campaign_id: int | None = None) -> list[Site]:
    if principal.role == Role.SUPERVISOR:
        if campaign_id is not None:
            check_campaign(principal, campaign_id)
        campaign_id = principal.campaign_id
    async with db.read() as session:
        return await config.list_rows(session, Site, campaign_id)


@router.get("/sites/{site_id}", response_model=SiteOut, summary="A site")
async def get_site(site_id: int, db: DB, principal: Staff) -> Site:
    async with db.read() as session:
        site = await service.get_site(session, site_id)
    check_campaign(principal, site.campaign_id)
    return site


@router.patch("/sites/{site_id}", response_model=SiteOut, summary="Change a site")
async def update_site(site_id: int, body: SitePatch, db: DB, _: Admin) -> Site:
    async with db.unit_of_work() as uow:
        return await service.update_site(uow, site_id, body)


# --- volunteers ------------------------------------------------------------------------


@router.post(
    "/roster/volunteers",
    status_code=201,
    response_model=VolunteerOut,
    summary="Register a volunteer (their PIN is in this answer only)",
)
async def register_volunteer(body: VolunteerIn, db: DB, _: Admin) -> VolunteerOut:
    data = body.model_copy(update={"login": body.login or "pending"})
    issued = await service.register_one(db, data, body.login)
    async with db.read() as session:
        agent = await repository.get_agent(session, issued.agent_id)
        skills = await repository.agent_skills(session, agent.id)
    return VolunteerOut(agent=agent_out(agent, skills), login=_pin_out(issued))


@router.post(
    "/roster/import",
    response_model=ImportOut,
    summary="Import a roster file, CSV or XLSX (the raw file as the body): all or nothing",
    responses={422: {"model": ImportRefusedOut, "description": "refused rows; nothing imported"}},
)
async def import_roster(
    request: Request,
    db: DB,
    principal: Admin,
    campaign_id: Annotated[int, Query()],
) -> Any:
    data = await read_limited_body(request, service.MAX_IMPORT_BYTES)
    try:
        issued = await service.import_roster(db, campaign_id, data, actor=principal.username)
    except service.RosterRefused as exc:
        return refused_file_response(request, exc)
    out = ImportOut(
        campaign_id=campaign_id, imported=len(issued), logins=[_pin_out(i) for i in issued]
    )
    return JSONResponse(out.model_dump(mode="json"))


@router.post(
    "/sites/{site_id}/pin-sheet",
    response_class=Response,
    summary="Re-issue a site's PINs and answer the printable sheet (admin; audited)",
    responses={200: {"content": {"text/html": {}}, "description": "the sheet, to print"}},
)
async def pin_sheet(site_id: int, body: PinSheetIn, db: DB, principal: Admin) -> HTMLResponse:
    issued = await service.reissue_pins(
        db, site_id, everyone=body.volunteers == "all", actor=principal.username
    )
    async with db.read() as session:
        site = await service.get_site(session, site_id)
        html = render_pin_sheet(site.name, site.organisation, site.campaign_id, issued)
    # Never cached: the sheet holds secrets that exist nowhere else.
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})

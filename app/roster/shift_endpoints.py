"""Shifts HTTP API (docs/roster.md, Shifts): shifts per site, sign-ups, attendance.

Admins make shifts; staff read them (a supervisor its campaign's, a site-scoped one
its site's). A volunteer is signed up by an admin, by a supervisor (a site-scoped
one: its own site's volunteers, to its site's shifts), by a file, or by themselves
from their page: to their own site's shifts (any site's when they have none), and
only before the shift starts.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.acd import repository
from app.acd.models import Agent
from app.auth.deps import check_agent, check_campaign, check_site, require, site_scope
from app.auth.service import Principal, Role
from app.db import Database, utcnow
from app.deps import get_db, read_limited_body
from app.errors import Conflict, Forbidden, Invalid, refused_file_response
from app.pledges.schemas import Moment
from app.roster import shifts
from app.roster.models import Shift
from app.roster.shift_schemas import (
    AttendanceOut,
    MyShiftOut,
    ShiftIn,
    ShiftOut,
    ShiftPatch,
    SignupOut,
    SignupsImportOut,
    SignupsRefusedOut,
)
from app.settings import settings_of

router = APIRouter(tags=["shifts"])
DB = Annotated[Database, Depends(get_db)]
Admin = Annotated[Principal, Depends(require())]
Staff = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ORGANISER))]
Signer = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.AGENT))]


def _check_reader(principal: Principal, shift: Shift) -> None:
    check_campaign(principal, shift.campaign_id)
    check_site(principal, shift.site_id)


def _signer(principal: Principal, now: dt.datetime) -> shifts.Authorize:
    """Whether ``principal`` may sign this volunteer up to (or off) this shift."""

    def authorize(shift: Shift, agent: Agent) -> None:
        if principal.role == Role.ADMIN:
            return
        check_campaign(principal, shift.campaign_id)
        if principal.role == Role.SUPERVISOR:
            check_site(principal, shift.site_id)
            check_site(principal, agent.site_id)
            return
        # A volunteer, on their own page.
        check_agent(principal, agent.id, agent.campaign_id)
        if agent.site_id is not None and agent.site_id != shift.site_id:
            raise Forbidden("this shift is at another site", code="other_site")
        if now >= shift.starts_at:
            raise Conflict(
                "shift {shift_id} has started: ask a supervisor",
                code="shift_started",
                field="shift_id",
                shift_id=shift.id,
            )

    return authorize


def _source(principal: Principal) -> str:
    return {Role.ADMIN: "admin", Role.SUPERVISOR: "supervisor"}.get(principal.role, "self")


# --- shifts ------------------------------------------------------------------------------


@router.post("/shifts", status_code=201, response_model=ShiftOut, summary="Add a shift at a site")
async def create_shift(body: ShiftIn, db: DB, _: Admin) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        shift = await shifts.create_shift(uow, body)
        return (await shifts.view(uow.session, shift)).out()


@router.get(
    "/shifts",
    response_model=list[ShiftOut],
    summary="A campaign's shifts by start (a site-scoped supervisor: its site's)",
)
async def list_shifts(
    db: DB,
    principal: Staff,
    campaign_id: int | None = None,
    site_id: int | None = None,
    since: Annotated[
        Moment | None, Query(description="only shifts still running then (with an offset)")
    ] = None,
    until: Annotated[
        Moment | None, Query(description="only shifts starting before then (with an offset)")
    ] = None,
) -> list[dict[str, Any]]:
    if principal.role == Role.SUPERVISOR:
        if campaign_id is not None:
            check_campaign(principal, campaign_id)
        campaign_id = principal.campaign_id
        scope = site_scope(principal)
        if scope is not None:
            if site_id is not None:
                check_site(principal, site_id)
            site_id = scope
    bounds = [_aware(since, "since"), _aware(until, "until")]
    async with db.read() as session:
        views = await shifts.list_shifts(
            session, campaign_id, site_id=site_id, since=bounds[0], until=bounds[1]
        )
    return [v.out() for v in views]


def _aware(moment: dt.datetime | None, field: str) -> dt.datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise Invalid(
            "{name} needs a time zone (e.g. 2026-11-23T18:00:00Z)", field=field, name=field
        )
    return moment.astimezone(dt.UTC)


@router.get("/shifts/{shift_id}", response_model=ShiftOut, summary="A shift")
async def get_shift(shift_id: int, db: DB, principal: Staff) -> dict[str, Any]:
    async with db.read() as session:
        shift = await shifts.get_shift(session, shift_id)
        _check_reader(principal, shift)
        return (await shifts.view(session, shift)).out()


@router.patch("/shifts/{shift_id}", response_model=ShiftOut, summary="Change a shift")
async def update_shift(shift_id: int, body: ShiftPatch, db: DB, _: Admin) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        shift = await shifts.update_shift(uow, shift_id, body)
        return (await shifts.view(uow.session, shift)).out()


@router.delete(
    "/shifts/{shift_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a shift and its sign-ups",
)
async def delete_shift(shift_id: int, db: DB, _: Admin) -> Response:
    async with db.unit_of_work() as uow:
        await shifts.delete_shift(uow, shift_id)
    return Response(status_code=204)


@router.get(
    "/shifts/{shift_id}/attendance",
    response_model=AttendanceOut,
    summary="Who signed up to the shift, who checked in, who is late, who did not come",
)
async def shift_attendance(shift_id: int, db: DB, principal: Staff) -> dict[str, Any]:
    grace = dt.timedelta(seconds=settings_of(db).shift_late_grace_seconds)
    async with db.read() as session:
        shift = await shifts.get_shift(session, shift_id)
        _check_reader(principal, shift)
        return (await shifts.attendance(session, shift, utcnow(), grace)).out()


# --- sign-ups ----------------------------------------------------------------------------


@router.put(
    "/shifts/{shift_id}/signups/{agent_id}",
    response_model=SignupOut,
    summary="Sign a volunteer up to a shift (a volunteer: themselves, before it starts)",
)
async def sign_up(shift_id: int, agent_id: int, db: DB, principal: Signer) -> SignupOut:
    async with db.unit_of_work() as uow:
        signup, created = await shifts.sign_up(
            uow,
            shift_id,
            agent_id,
            source=_source(principal),
            actor=principal.username,
            authorize=_signer(principal, utcnow()),
        )
        return SignupOut(
            shift_id=signup.shift_id,
            agent_id=signup.agent_id,
            source=signup.source,
            created_at=signup.created_at,
            created=created,
        )


@router.delete(
    "/shifts/{shift_id}/signups/{agent_id}",
    status_code=204,
    response_class=Response,
    summary="Take a volunteer off a shift (a volunteer: themselves, before it starts)",
)
async def withdraw(shift_id: int, agent_id: int, db: DB, principal: Signer) -> Response:
    async with db.unit_of_work() as uow:
        await shifts.withdraw(
            uow,
            shift_id,
            agent_id,
            actor=principal.username,
            authorize=_signer(principal, utcnow()),
        )
    return Response(status_code=204)


@router.get(
    "/agents/{agent_id}/shifts",
    response_model=list[MyShiftOut],
    summary="The shifts a volunteer may sign up to (their site's; any site's without one)",
)
async def agent_shifts(
    agent_id: int,
    db: DB,
    principal: Signer,
    since: Annotated[
        Moment | None,
        Query(description="only shifts still running then (with an offset); default: now"),
    ] = None,
) -> list[dict[str, Any]]:
    start = _aware(since, "since") or utcnow()
    async with db.read() as session:
        agent = await repository.get_agent(session, agent_id)
        check_agent(principal, agent.id, agent.campaign_id)
        check_site(principal, agent.site_id)
        views = await shifts.list_shifts(
            session, agent.campaign_id, site_id=agent.site_id, since=start
        )
        mine = await shifts.signed_shift_ids(session, agent.id)
    return [
        {**v.out(), "mine": v.shift.id in mine, "full": v.signed_up >= v.shift.seats} for v in views
    ]


@router.post(
    "/shifts/signups/import",
    response_model=SignupsImportOut,
    summary="Sign volunteers up from a CSV or XLSX file (the raw file as the body): all or nothing",
    responses={422: {"model": SignupsRefusedOut, "description": "refused rows; nothing signed up"}},
)
async def import_signups(
    request: Request, db: DB, principal: Admin, campaign_id: Annotated[int, Query()]
) -> Any:
    data = await read_limited_body(request, shifts.MAX_IMPORT_BYTES)
    try:
        added, already = await shifts.import_signups(
            db, campaign_id, data, actor=principal.username
        )
    except shifts.SignupsRefused as exc:
        return refused_file_response(request, exc)
    return SignupsImportOut(campaign_id=campaign_id, added=added, already=already)

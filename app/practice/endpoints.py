"""Practice-call HTTP API (docs/roster.md#practice-calls).

A volunteer starts, plays and ends their own practice calls; supervisors (their
campaign, their site if scoped) and admins read them. Nothing here writes a call,
a pledge, a strike or a figure.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select

from app import int64
from app.acd.models import Agent
from app.auth.deps import check_campaign, require
from app.auth.service import Principal, Role
from app.cardguard import find_card_data
from app.db import Database
from app.deps import get_db
from app.errors import AppError
from app.pledges.schemas import PledgeIn
from app.practice import service
from app.practice.models import PracticeCall
from app.practice.scenarios import SCENARIOS
from app.practice.schemas import (
    PracticeActionIn,
    PracticeActionOut,
    PracticeCallOut,
    PracticeEndOut,
    PracticeStartIn,
    PracticeSummaryOut,
    ScenarioOut,
)

router = APIRouter(tags=["practice"])
DB = Annotated[Database, Depends(get_db)]
Volunteer = Annotated[Principal, Depends(require(Role.AGENT))]
Readers = Annotated[Principal, Depends(require(Role.AGENT, Role.SUPERVISOR))]


@router.get(
    "/practice/scenarios",
    response_model=list[ScenarioOut],
    summary="The scripted practice callers",
)
async def list_scenarios(_: Readers) -> list[dict[str, Any]]:
    return [scenario.out() for scenario in SCENARIOS.values()]


@router.post(
    "/practice/calls",
    status_code=201,
    response_model=PracticeCallOut,
    summary="Start a practice call (the volunteer, for themselves; no real call meanwhile)",
)
async def start_call(body: PracticeStartIn, db: DB, principal: Volunteer) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        return await service.start(uow, principal, body.scenario)


@router.get(
    "/practice/calls",
    response_model=list[PracticeSummaryOut],
    summary="Practice calls: a volunteer's own; a supervisor's campaign's",
)
async def list_calls(
    db: DB,
    principal: Readers,
    agent_id: int | None = None,
    campaign_id: int | None = None,
) -> list[PracticeCall]:
    stmt = select(PracticeCall).order_by(PracticeCall.id)
    if principal.role == Role.AGENT:
        stmt = stmt.where(PracticeCall.agent_id == principal.agent_id)
    elif principal.role == Role.SUPERVISOR:
        if campaign_id is not None:
            check_campaign(principal, campaign_id)
        stmt = stmt.where(PracticeCall.campaign_id == principal.campaign_id)
        if principal.site_id is not None:
            site_agents = select(Agent.id).where(Agent.site_id == principal.site_id)
            stmt = stmt.where(PracticeCall.agent_id.in_(site_agents))
    elif campaign_id is not None:
        stmt = stmt.where(PracticeCall.campaign_id == campaign_id)
    if agent_id is not None:
        stmt = stmt.where(PracticeCall.agent_id == agent_id)
    async with db.read() as session:
        return list((await session.execute(stmt.limit(1000))).scalars())


@router.get(
    "/practice/calls/{practice_call_id}",
    response_model=PracticeCallOut,
    summary="A practice call, with its scorecard once ended",
)
async def get_call(practice_call_id: int, db: DB, principal: Readers) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        call = await service.readable(uow.session, principal, practice_call_id)
        return await service.view(uow, call)


@router.post(
    "/practice/calls/{practice_call_id}/pledge",
    summary="Save the practice call's pledge form: the real checks, stored in the practice only",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PledgeIn"}}},
        }
    },
)
async def save_pledge(
    practice_call_id: int, request: Request, db: DB, principal: Volunteer
) -> dict[str, Any]:
    """The body is read here, not by a body model: the card guard must run on it
    first *and* count a refusal on the scorecard, which a refusing model cannot.
    Then it is validated by ``PledgeIn`` (itself card-guarded) as ``POST /pledges``."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error"}]
        ) from None
    int64.check_body(body)  # as the app-wide check does for declared bodies
    # The card guard first, as for a real pledge (whoever sends it); on the volunteer's
    # own open practice call the refusal is counted on the scorecard (committed).
    refused = find_card_data(body)
    if refused is None:
        try:
            pledge = PledgeIn.model_validate(body)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
            raise RequestValidationError(errors) from None
        async with db.unit_of_work() as uow:
            call = await service.own_open(uow, principal, practice_call_id)
            return await service.save_pledge(uow, call, pledge)
    try:
        async with db.unit_of_work() as uow:
            call = await service.own_open(uow, principal, practice_call_id)
            service.card_refused(call, refused.field or "")
    except AppError:
        pass  # not theirs, or over: the refusal alone
    raise refused


@router.post(
    "/practice/calls/{practice_call_id}/actions",
    response_model=PracticeActionOut,
    summary="A button of the practice call: Prank, Needs support, a script's button, read-back",
)
async def act(practice_call_id: int, body: PracticeActionIn, db: DB, principal: Volunteer) -> Any:
    async with db.unit_of_work() as uow:
        return await service.act(
            uow,
            principal,
            practice_call_id,
            body.action,
            script=body.script,
            button=body.button,
            reference=body.reference,
        )


@router.post(
    "/practice/calls/{practice_call_id}/end",
    response_model=PracticeEndOut,
    summary="End the practice call: its scorecard; trained after enough passes",
)
async def end_call(practice_call_id: int, db: DB, principal: Volunteer) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        return await service.end(uow, principal, practice_call_id)

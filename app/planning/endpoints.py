"""Planning HTTP API: ``/planning/...`` for organisers, supervisors and admins.

Nothing here writes: a plan is computed from its inputs each time (docs/surge.md).
Supervisors reach their own campaign's figures only (``check_campaign``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from app.auth.deps import check_campaign, require
from app.auth.service import Principal, Role
from app.db import Database
from app.deps import get_db, read_limited_body
from app.errors import Invalid, refused_file_response
from app.planning import rundown, service
from app.planning.export import plan_csv, plan_dict
from app.planning.plan import Plan, Targets, make_plan
from app.planning.schemas import (
    HandleTimesOut,
    PlanIn,
    PlanOut,
    RundownOut,
    RundownRefusedOut,
)
from app.text_files import BadValue

router = APIRouter(tags=["planning"])
DB = Annotated[Database, Depends(get_db)]
Planner = Annotated[Principal, Depends(require(Role.ORGANISER, Role.SUPERVISOR))]


def segment_out(segment: rundown.Segment) -> dict[str, Any]:
    end = "24:00" if segment.end % rundown.DAY_MINUTES == 0 else rundown.clock(segment.end)
    return {
        "start": rundown.clock(segment.start),
        "end": end,
        "calls_per_15min": segment.calls,
        "label": segment.label,
        "seats": segment.seats,
    }


def _segments(body: PlanIn) -> list[rundown.Segment]:
    raw = []
    for index, item in enumerate(body.segments):
        values: dict[str, Any] = {}
        for field, check, value in (
            ("start", rundown.parse_clock, item.start),
            ("end", rundown.parse_end_clock, item.end),
            ("label", rundown.check_label, item.label),
        ):
            try:
                values[field] = check(value)
            except BadValue as exc:
                where, reason = f"segments.{index}.{field}", exc.reason
                raise Invalid(reason.id, field=where, **reason.params) from None
        start, end, label = values["start"], values["end"], values["label"]
        raw.append(rundown.RawSegment(start, end, item.calls_per_15min, label, item.seats))
    segments, problems = rundown.place(raw)
    if problems:
        index, field, reason = problems[0]
        where = f"segments.{index}.{field}"
        raise Invalid(reason.id, field=where, **reason.params)
    return segments


async def build_plan(
    db: Database, principal: Principal, body: PlanIn
) -> tuple[Plan, dict[str, Any]]:
    """The plan of a request, and its handle times with where each came from."""
    segments = _segments(body)
    measured = None
    if body.campaign_id is not None:
        check_campaign(principal, body.campaign_id)
        async with db.read() as session:
            await service.campaign(session, body.campaign_id)
            if body.talk_seconds is None or body.wrapup_seconds is None:
                measured = await service.measured_handle_times(session, body.campaign_id)
    fallback = measured or service.HandleTimes(
        service.DEFAULT_TALK_SECONDS, service.DEFAULT_WRAPUP_SECONDS, 0, "default"
    )
    talk = body.talk_seconds if body.talk_seconds is not None else fallback.talk_seconds
    wrap = body.wrapup_seconds if body.wrapup_seconds is not None else fallback.wrapup_seconds
    handle = {
        "talk_seconds": talk,
        "wrapup_seconds": wrap,
        "handle_seconds": talk + wrap,
        "talk_source": "typed" if body.talk_seconds is not None else fallback.source,
        "wrapup_source": "typed" if body.wrapup_seconds is not None else fallback.source,
        "answered_calls": fallback.answered_calls,
    }
    if body.scheduled_seats is not None and not isinstance(body.scheduled_seats, int):
        count = len(rundown.intervals(segments))
        if len(body.scheduled_seats) != count:
            raise Invalid(
                "{given} numbers of seats for {count} intervals: "
                "give one number, or one per interval",
                field="scheduled_seats",
                given=len(body.scheduled_seats),
                count=count,
            )
    targets = Targets(
        target=body.service_level_target,
        threshold_seconds=body.threshold_seconds,
        max_average_wait=body.max_average_wait_seconds,
    )
    try:
        plan = make_plan(
            segments, handle_seconds=talk + wrap, targets=targets, scheduled=body.scheduled_seats
        )
    except ValueError as exc:
        raise Invalid(str(exc), field="segments") from None
    return plan, handle


@router.post("/planning/plan", response_model=PlanOut, summary="Compute a staffing plan")
async def compute_plan(body: PlanIn, db: DB, principal: Planner) -> dict[str, Any]:
    plan, handle = await build_plan(db, principal, body)
    return plan_dict(plan, handle)


@router.post(
    "/planning/plan.csv",
    summary="Compute a staffing plan as CSV (RFC 4180)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "one line per interval"}},
)
async def compute_plan_csv(body: PlanIn, db: DB, principal: Planner) -> Response:
    plan, _ = await build_plan(db, principal, body)
    return Response(
        plan_csv(plan).encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="staffing-plan.csv"'},
    )


@router.post(
    "/planning/rundowns/import",
    response_model=RundownOut,
    summary="Read a rundown CSV file (the raw file as the body)",
    responses={
        422: {
            "model": RundownRefusedOut,
            "description": "bad file: every problem as {line, column, reason}",
        }
    },
)
async def import_rundown(request: Request, _: Planner) -> Any:
    data = await read_limited_body(request, rundown.MAX_FILE_BYTES)
    try:
        segments = rundown.parse_csv(data)
    except rundown.RundownRefused as exc:
        return refused_file_response(request, exc)
    return {"segments": [segment_out(s) for s in segments]}


@router.get(
    "/planning/rundowns/derived",
    response_model=RundownOut,
    summary="A rundown from an earlier campaign's calls per 15 minutes",
)
async def derived_rundown(
    db: DB,
    principal: Planner,
    campaign_id: int,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    scale: Annotated[float, Query(gt=0, le=100)] = 1.0,
) -> dict[str, Any]:
    check_campaign(principal, campaign_id)
    if since is not None and until is not None and until <= since:
        raise Invalid("until must be after since", field="until")
    async with db.read() as session:
        segments = await service.derived_rundown(
            session, campaign_id, since=_utc(since), until=_utc(until), scale=scale
        )
    return {"segments": [segment_out(s) for s in segments]}


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.astimezone(dt.UTC)


@router.get(
    "/planning/handle-times",
    response_model=HandleTimesOut,
    summary="A campaign's measured mean talk and wrap-up seconds (the plan's defaults)",
)
async def handle_times(db: DB, principal: Planner, campaign_id: int) -> dict[str, Any]:
    check_campaign(principal, campaign_id)
    async with db.read() as session:
        await service.campaign(session, campaign_id)
        times = await service.measured_handle_times(session, campaign_id)
    return {
        "talk_seconds": times.talk_seconds,
        "wrapup_seconds": times.wrapup_seconds,
        "handle_seconds": times.handle_seconds,
        "answered_calls": times.answered_calls,
        "source": times.source,
    }

"""Rules and blocklist HTTP API: thin handlers over ``loader``, ``engine`` and ``blocklist``.

Rules files are read by staff and replaced by admins; a refused file answers 422
with every problem as ``{file, line, reason}`` and changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from app.acd import repository
from app.acd.models import Call, Queue
from app.auth.deps import check_campaign, require
from app.auth.service import Principal, Role
from app.db import Database, utcnow
from app.deps import get_app_settings, get_db
from app.errors import Invalid, NotFound, error_body
from app.i18n.negotiation import request_language
from app.phone_numbers import normalise
from app.realtime.outbox import emit
from app.rules import blocklist, engine
from app.rules.loader import RuleSet, RulesRefused, parse_duration, queue_problems
from app.rules.models import NumberBlock, RuleFile
from app.rules.schemas import (
    BlockIn,
    BlockOut,
    CheckOut,
    ProblemOut,
    RuleOut,
    RulesIn,
    RulesOut,
    RulesRefusedOut,
    ScriptOut,
)
from app.settings import Settings

router = APIRouter(tags=["rules"])
FILE = "rules.yaml"  # how problems name a file put through the API
DB = Annotated[Database, Depends(get_db)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
Admin = Annotated[Principal, Depends(require())]
Staff = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ORGANISER))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]


def _refused(request: Request, exc: RulesRefused) -> JSONResponse:
    """422 with the first problem as the message and every problem, in the request's
    language."""
    language = request_language(request)
    body = error_body("rules_invalid", exc.summary.text(language), "source")
    body["problems"] = [p.as_dict(language) for p in exc.problems]
    return JSONResponse(body, status_code=422)


def _describe(ruleset: RuleSet) -> tuple[list[RuleOut], list[ScriptOut]]:
    rules = [
        RuleOut(
            name=r.name,
            on=r.on,
            when=r.when.source if r.when else None,
            actions=[a.name for a in r.then],
            line=r.line,
        )
        for r in ruleset.rules
    ]
    scripts = [
        ScriptOut(name=s.name, version=s.version, title=s.title, steps=len(s.steps))
        for s in ruleset.scripts.values()
    ]
    return rules, scripts


@router.get("/campaigns/{campaign_id}/rules", response_model=RulesOut)
async def get_rules(campaign_id: int, db: DB, principal: Staff, settings: AppSettings) -> RulesOut:
    check_campaign(principal, campaign_id)
    async with db.read() as session:
        await repository.get_campaign(session, campaign_id)
        row = await engine.latest_file(session, campaign_id)
        ruleset = await engine.ruleset_for(session, campaign_id, settings)
    path = engine.rules_file(settings, campaign_id)
    if row is not None:
        origin, source = "api", row.source
    elif path is not None and path.is_file():
        origin, source = "file", path.read_text("utf-8")
    else:
        origin, source = "default", engine.default_source()
    rules, scripts = _describe(ruleset)
    return RulesOut(
        campaign_id=campaign_id,
        origin=origin,
        version=row.version if row else None,
        created_by=row.created_by if row else None,
        created_at=row.created_at if row else None,
        source=source,
        rules=rules,
        scripts=scripts,
    )


async def _checked(db: Database, campaign_id: int, source: str) -> None:
    """Load the file for this campaign (its queues too); raises ``RulesRefused``."""
    async with db.read() as session:
        await repository.get_campaign(session, campaign_id)
        stmt = select(Queue.name).where(Queue.campaign_id == campaign_id)
        queues = set((await session.execute(stmt)).scalars())
    # In a worker thread: checking the largest file allowed takes up to about a second
    # of CPU, which the event loop (every other request, /healthz) must not wait for.
    ruleset = await asyncio.to_thread(engine.load_for_campaign, source, FILE)
    problems = queue_problems(ruleset, queues, FILE)
    if problems:
        raise RulesRefused(problems)


@router.post("/campaigns/{campaign_id}/rules/check", response_model=CheckOut)
async def check_rules(
    request: Request, campaign_id: int, body: RulesIn, db: DB, _: Admin
) -> CheckOut:
    """Check a rules file without putting it in force."""
    try:
        await _checked(db, campaign_id, body.source)
    except RulesRefused as exc:
        language = request_language(request)
        problems = [ProblemOut(**p.as_dict(language)) for p in exc.problems]
        return CheckOut(ok=False, problems=problems)
    return CheckOut(ok=True, problems=[])


@router.put(
    "/campaigns/{campaign_id}/rules",
    response_model=RulesOut,
    responses={
        422: {
            "model": RulesRefusedOut,
            "description": "refused: every problem as {file, line, reason}",
        }
    },
)
async def put_rules(
    request: Request,
    campaign_id: int,
    body: RulesIn,
    db: DB,
    principal: Admin,
    settings: AppSettings,
) -> Any:
    """Replace the campaign's rules file (a new version, in force in every process)."""
    try:
        await _checked(db, campaign_id, body.source)
    except RulesRefused as exc:
        return _refused(request, exc)
    async with db.unit_of_work() as uow:
        await repository.get_campaign(uow.session, campaign_id)
        latest = await engine.latest_file(uow.session, campaign_id)
        version = (latest.version if latest else 0) + 1
        uow.session.add(
            RuleFile(
                campaign_id=campaign_id,
                version=version,
                source=body.source,
                created_by=principal.username,
                created_at=utcnow(),
            )
        )
        emit(
            uow,
            "rules.replaced",
            campaign_id=campaign_id,
            data={"version": version, "by": principal.username},
        )
    engine.invalidate(campaign_id)
    return await get_rules(campaign_id, db, principal, settings)


# --- blocklist -------------------------------------------------------------------


async def _block_out(db: Database, campaign_id: int, rows: list[NumberBlock]) -> list[BlockOut]:
    now = utcnow()
    counts: dict[str, tuple[int, int]] = {}
    async with db.read() as session:
        campaign = await repository.get_campaign(session, campaign_id)
        tz = ZoneInfo(campaign.timezone)
        numbers = [r.number for r in rows]
        if numbers:
            stmt = select(Call.caller_number, Call.received_at).where(
                Call.campaign_id == campaign_id, Call.caller_number.in_(numbers), Call.leg == 0
            )
            seen: dict[str, list[Any]] = {}
            for number, at in (await session.execute(stmt)).all():
                seen.setdefault(str(number), []).append(at)
            counts = {
                n: (len(times), len({t.astimezone(tz).date() for t in times}))
                for n, times in seen.items()
            }
    return [
        BlockOut(
            number=r.number,
            strikes=r.strikes,
            blocked=blocklist.is_blocked(r, now),
            blocked_until=r.blocked_until if blocklist.is_blocked(r, now) else None,
            reason=r.reason,
            updated_by=r.updated_by,
            updated_at=r.updated_at,
            calls_total=counts.get(r.number, (0, 0))[0],
            distinct_days=counts.get(r.number, (0, 0))[1],
        )
        for r in rows
    ]


@router.get("/campaigns/{campaign_id}/blocklist", response_model=list[BlockOut])
async def list_blocklist(
    campaign_id: int, db: DB, principal: Staff, blocked_only: bool = False
) -> list[BlockOut]:
    """Numbers with prank strikes or a block: blocked first, then the most recent."""
    check_campaign(principal, campaign_id)
    async with db.read() as session:
        await repository.get_campaign(session, campaign_id)
        rows = await blocklist.listing(session, campaign_id, utcnow(), blocked_only=blocked_only)
    return await _block_out(db, campaign_id, rows)


@router.post("/campaigns/{campaign_id}/blocklist", status_code=201, response_model=BlockOut)
async def add_block(campaign_id: int, body: BlockIn, db: DB, principal: Supervisor) -> BlockOut:
    check_campaign(principal, campaign_id)
    seconds = parse_duration(body.duration)
    if seconds is None:
        raise Invalid("duration: say 90s, 10m, 24h, 2d or a number of seconds", field="duration")
    async with db.unit_of_work() as uow:
        campaign = await repository.get_campaign(uow.session, campaign_id)
        number = normalise(body.number, campaign.default_region).e164
        if number is None:
            raise Invalid("not a phone number", field="number")
        row = await blocklist.block(
            uow,
            campaign_id,
            number,
            utcnow(),
            by=principal.username,
            seconds=seconds,
            reason=body.reason,
        )
    return (await _block_out(db, campaign_id, [row]))[0]


@router.delete("/campaigns/{campaign_id}/blocklist/{number}", response_model=BlockOut)
async def unblock(campaign_id: int, number: str, db: DB, principal: Supervisor) -> BlockOut:
    """Lift the block and clear the strikes."""
    check_campaign(principal, campaign_id)
    async with db.unit_of_work() as uow:
        campaign = await repository.get_campaign(uow.session, campaign_id)
        e164 = normalise(number, campaign.default_region).e164 or number
        row = await blocklist.unblock(uow, campaign_id, e164, utcnow(), by=principal.username)
        if row is None:
            raise NotFound("{e164} has no strikes or block", field="number", e164=e164)
    return (await _block_out(db, campaign_id, [row]))[0]

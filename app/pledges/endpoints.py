"""Pledge HTTP API, the payment provider's webhook, and the public tote board.

Thin handlers: each writing one is one unit of work over ``service``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import signing
from app.acd import config_cache
from app.acd.models import Campaign
from app.auth.deps import current_principal, require
from app.auth.service import Principal, Role
from app.db import Database, utcnow
from app.deps import get_app_settings, get_db, read_limited_body
from app.errors import (
    API_ERRORS,
    AppError,
    Conflict,
    ErrorOut,
    Forbidden,
    Invalid,
    error_responses,
)
from app.pledges import cardguard, idempotency, repository, service, totals
from app.pledges.board_stream import BoardResponse, BoardStream, board_campaign
from app.pledges.models import CancelReason, Pledge, PledgeAudit
from app.pledges.schemas import (
    ApproveIn,
    AuditOut,
    BoardOut,
    CancelIn,
    Moment,
    PaymentCancelIn,
    PaymentIn,
    PaymentOut,
    PledgeIn,
    PledgeOut,
    PledgePatch,
    ProviderPaymentIn,
    TotalsOut,
)
from app.settings import Settings


async def card_guard(request: Request) -> None:
    """Refuse card data in any field of the raw body, before anything else reads it.

    FastAPI solves dependencies before it validates the body, so a card number is
    refused as such (``card_data_refused``, naming the field) even in a value the
    schema would refuse for another reason (too long, wrong type, unknown field).
    """
    try:
        payload = await request.json()
    except ValueError:
        return  # not JSON: the body validation answers
    if isinstance(payload, dict):
        cardguard.check_fields(
            {
                str(name): str(value)
                for name, value in payload.items()
                if isinstance(value, (str, int)) and not isinstance(value, bool)
            }
        )


log = logging.getLogger(__name__)
router = APIRouter()
CardGuard = Depends(card_guard)
DB = Annotated[Database, Depends(get_db)]
Savers = Annotated[Principal, Depends(require(Role.AGENT, Role.SUPERVISOR))]
Changers = Annotated[Principal, Depends(require(Role.AGENT, Role.SUPERVISOR, Role.ORGANISER))]
Staff = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ORGANISER))]
Payers = Annotated[Principal, Depends(require(Role.ORGANISER))]
Anyone = Annotated[Principal, Depends(current_principal)]


async def _out(db: Database, pledge: Pledge) -> dict[str, Any]:
    async with db.read() as session:
        campaign = await session.get(Campaign, pledge.campaign_id)
    assert campaign is not None
    return service.pledge_out(pledge, campaign)


def _check_read(principal: Principal, pledge: Pledge) -> None:
    if principal.role in (Role.ADMIN, Role.ORGANISER):
        return
    if principal.role == Role.SUPERVISOR:
        if principal.campaign_id != pledge.campaign_id:
            raise Forbidden("this belongs to another campaign")
        return
    if principal.agent_id is None or pledge.agent_id != principal.agent_id:
        raise Forbidden("volunteers see their own pledges only")


# No CardGuard dependency: PledgeIn's own guard (CardGuarded) reads the raw JSON
# before any field is validated, and the dependency parsed the body a second time.
@router.post(
    "/pledges",
    status_code=201,
    response_model=PledgeOut,
    tags=["pledges"],
    summary="Save a pledge (exactly once per Idempotency-Key)",
    responses={
        409: {
            "model": ErrorOut,
            "description": "the Idempotency-Key was used for another request",
        }
    },
)
async def create_pledge(
    body: PledgeIn,
    request: Request,
    db: DB,
    principal: Savers,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="one per pledge form: 8 to 200 visible ASCII characters (a UUID)",
            json_schema_extra=idempotency.KEY_SCHEMA,
        ),
    ] = None,
) -> Response:
    scope = f"user:{principal.user_id}"
    digest = idempotency.request_hash("POST", "/pledges", body.model_dump(mode="json"))
    campaign = await _campaign_guess(db, principal, body)
    derived: dict[str, Any] | None = None
    if (
        campaign is not None
        and idempotency_key is not None
        and service.fast_path_allowed(principal, body, campaign)
    ):
        with contextlib.suppress(AppError):
            derived = _checked(campaign, body, idempotency_key)
    if derived is None or campaign is None:
        # A refusal (or a campaign this process has not cached): explained in the order
        # of the checks, who may first, then the key, then the form.
        async with db.read() as session:
            campaign = (await service.origin_in(session, principal, body)).campaign
            if idempotency_key is None:
                _checked(campaign, body, idempotency_key)  # raises: the key is missing
            assert idempotency_key is not None
            key_sha = idempotency.key_digest(idempotency_key)
            stored = await idempotency.find_pledge(session, scope, key_sha, digest)
        if stored is not None:
            return _replay(stored)
        derived = _checked(campaign, body, idempotency_key)
    assert idempotency_key is not None
    claim = service.KeyClaim(scope, idempotency.key_digest(idempotency_key), digest)
    answer: dict[str, Any] | None = None
    for _ in range(_ATTEMPTS):
        new = service.NewPledge(principal, body, campaign, derived, claim)
        pledge = await service.save_new(db, new)
        if pledge is not None:
            answer = service.pledge_out(pledge, campaign)
            break
        # Nothing went in: who may not, a key used before, or a reference taken.
        async with db.read() as session:
            where = await service.origin_in(session, principal, body)
            stored = await idempotency.find_pledge(session, scope, claim.key, digest)
        if stored is not None:
            return _replay(stored)
        if where.campaign.id != campaign.id:
            campaign = where.campaign
            derived = _checked(campaign, body, idempotency_key)
    if answer is None:
        raise Conflict("could not find a free reference; try again")
    # Only what reconciles a pledge in the log: never the donor's details.
    log.info(
        "pledge %s saved: %s %s (call %s)",
        answer["reference"],
        answer["amount_minor"],
        answer["currency"],
        answer["call_id"],
    )
    # orjson: the same JSON as JSONResponse's in a tenth of the time.
    return Response(orjson.dumps(answer), status_code=201, media_type="application/json")


_ATTEMPTS = 5


async def _campaign_guess(db: Database, principal: Principal, body: PledgeIn) -> Campaign | None:
    """The campaign a new pledge goes to, from the cached configuration when the body
    or the caller's login names it (the insert checks that the call is in it)."""
    campaign_id = body.campaign_id
    if campaign_id is None and principal.role in (Role.AGENT, Role.SUPERVISOR):
        campaign_id = principal.campaign_id
    if campaign_id is None:
        return None
    return await config_cache.campaign_of(db, campaign_id)


def _checked(campaign: Campaign, body: PledgeIn, key: str | None) -> dict[str, Any]:
    if key is None:
        raise Invalid(
            "send an Idempotency-Key header (one per pledge form)",
            field=idempotency.HEADER,
            code="idempotency_key_missing",
        )
    idempotency.key_digest(key)
    return service.check_new_pledge(campaign, body)


def _replay(stored: idempotency.Stored) -> JSONResponse:
    return JSONResponse(
        stored.body, status_code=stored.status_code, headers={"Idempotent-Replayed": "true"}
    )


@router.get("/pledges", response_model=list[PledgeOut], tags=["pledges"])
async def list_pledges(
    db: DB,
    principal: Anyone,
    campaign_id: int | None = None,
    status: str | None = None,
    agent_id: int | None = None,
    call_id: int | None = None,
    flagged: bool | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    query = select(Pledge)
    if principal.role == Role.AGENT:
        query = query.where(Pledge.agent_id == principal.agent_id)
    elif principal.role == Role.SUPERVISOR:
        query = query.where(Pledge.campaign_id == principal.campaign_id)
    if campaign_id is not None:
        query = query.where(Pledge.campaign_id == campaign_id)
    if status is not None:
        query = query.where(Pledge.status == status)
    if agent_id is not None:
        query = query.where(Pledge.agent_id == agent_id)
    if call_id is not None:
        query = query.where(Pledge.call_id == call_id)
    if flagged is not None:
        query = query.where(Pledge.flagged_for_review == flagged)
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid("a time with an offset (Z or +01:00)", field=name)
    if since is not None:
        query = query.where(Pledge.created_at >= since)
    if until is not None:
        query = query.where(Pledge.created_at < until)
    query = query.order_by(Pledge.created_at.desc(), Pledge.id.desc()).limit(limit).offset(offset)
    async with db.read() as session:
        pledges = list(await session.scalars(query))
        campaigns = {c.id: c for c in await session.scalars(select(Campaign))}
    return [service.pledge_out(p, campaigns[p.campaign_id]) for p in pledges]


@router.get("/pledges/totals", response_model=TotalsOut, tags=["pledges"])
async def pledge_totals(
    db: DB,
    principal: Staff,
    campaign_id: int | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
) -> dict[str, Any]:
    if principal.role == Role.SUPERVISOR:
        if campaign_id is not None and principal.campaign_id != campaign_id:
            raise Forbidden("this belongs to another campaign")
        campaign_id = principal.campaign_id
    if campaign_id is None:
        raise Invalid("which campaign?", field="campaign_id")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid("a time with an offset (Z or +01:00)", field=name)
    async with db.read() as session:
        return await totals.campaign_totals(session, campaign_id, since, until)


@router.get("/pledges/{reference}", response_model=PledgeOut, tags=["pledges"])
async def get_pledge(reference: str, db: DB, principal: Anyone) -> dict[str, Any]:
    async with db.read() as session:
        pledge = await repository.get_by_reference(session, service.normalise_reference(reference))
    _check_read(principal, pledge)
    return await _out(db, pledge)


@router.get("/pledges/{reference}/audit", response_model=list[AuditOut], tags=["pledges"])
async def pledge_audit(reference: str, db: DB, principal: Staff) -> list[PledgeAudit]:
    async with db.read() as session:
        pledge = await repository.get_by_reference(session, service.normalise_reference(reference))
        _check_read(principal, pledge)
        rows = await session.scalars(
            select(PledgeAudit)
            .where(PledgeAudit.pledge_id == pledge.id)
            .order_by(PledgeAudit.at, PledgeAudit.id)
        )
        return list(rows)


@router.patch(
    "/pledges/{reference}", dependencies=[CardGuard], response_model=PledgeOut, tags=["pledges"]
)
async def correct_pledge(
    reference: str, body: PledgePatch, db: DB, principal: Changers
) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        pledge = await service.correct(uow, principal, reference, body)
    return await _out(db, pledge)


@router.post("/pledges/{reference}/link-sent", response_model=PledgeOut, tags=["pledges"])
async def pledge_link_sent(reference: str, db: DB, principal: Changers) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        pledge = await service.mark_link_sent(uow, principal, reference)
    return await _out(db, pledge)


@router.post(
    "/pledges/{reference}/approve",
    dependencies=[CardGuard],
    response_model=PledgeOut,
    tags=["pledges"],
    summary="Approve a pledge flagged for review (audited, with the reviewer's note)",
)
async def pledge_approve(
    reference: str, body: ApproveIn, db: DB, principal: Staff
) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        pledge = await service.approve(uow, principal, reference, body.note)
    return await _out(db, pledge)


@router.post("/pledges/{reference}/cancel", response_model=PledgeOut, tags=["pledges"])
async def pledge_cancel(
    reference: str, body: CancelIn, db: DB, principal: Changers
) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        pledge = await service.cancel(uow, principal, reference, CancelReason(body.reason))
    return await _out(db, pledge)


@router.post(
    "/pledges/{reference}/payments",
    dependencies=[CardGuard],
    response_model=PledgeOut,
    tags=["pledges"],
)
async def pledge_payment(
    reference: str, body: PaymentIn, db: DB, principal: Payers
) -> dict[str, Any]:
    if body.received_at is not None and body.received_at.tzinfo is None:
        raise Invalid("a time with an offset (Z or +01:00)", field="received_at")
    try:
        async with db.unit_of_work() as uow:
            pledge, _ = await service.record_payment(
                uow,
                principal,
                reference,
                amount_minor=body.amount_minor,
                currency=body.currency,
                provider_payment_id=body.provider_payment_id,
                received_at=body.received_at,
            )
    except IntegrityError as exc:  # the same payment id recorded concurrently
        raise Conflict(
            "this payment was just recorded", field="provider_payment_id", code="payment_conflict"
        ) from exc
    return await _out(db, pledge)


@router.get("/pledges/{reference}/payments", response_model=list[PaymentOut], tags=["pledges"])
async def pledge_payments(reference: str, db: DB, principal: Payers) -> list[Any]:
    async with db.read() as session:
        pledge = await repository.get_by_reference(session, service.normalise_reference(reference))
        return await service.payments_of(session, pledge)


@router.post(
    "/pledges/{reference}/payments/{payment_id}/cancel",
    dependencies=[CardGuard],
    response_model=PledgeOut,
    tags=["pledges"],
    summary="Cancel a payment (refund, bounced cheque); its tax receipt is cancelled",
)
async def pledge_payment_cancel(
    reference: str, payment_id: int, body: PaymentCancelIn, db: DB, principal: Payers
) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        pledge = await service.cancel_payment(uow, principal, reference, payment_id, body.reason)
    return await _out(db, pledge)


@router.post(
    "/payments/webhook",
    tags=["pledges"],
    summary="Payment provider webhook (HMAC-signed, idempotent on payment_id)",
    responses=error_responses(413),
)
async def payment_webhook(
    request: Request, db: DB, settings: Annotated[Settings, Depends(get_app_settings)]
) -> JSONResponse:
    raw = await read_limited_body(request, settings.max_body_bytes)
    signing.verify(
        settings.payment_webhook_secret,
        raw,
        request.headers,
        window_seconds=settings.signature_window_seconds,
    )
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AppError("the body is not valid JSON", code="malformed_json") from exc
    if isinstance(payload, dict):  # nothing card-like is stored, whoever sends it
        cardguard.check_fields({str(k): v for k, v in payload.items() if isinstance(v, str)})
    try:
        event = ProviderPaymentIn.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise Invalid("{name}: {problem}", field=field, name=field, problem=first["msg"]) from exc
    for attempt in range(2):
        try:
            async with db.unit_of_work() as uow:
                pledge, new = await service.record_payment(
                    uow,
                    None,
                    event.reference,
                    amount_minor=event.amount_minor,
                    currency=event.currency,
                    provider_payment_id=event.payment_id,
                    received_at=event.paid_at,
                )
            break
        except IntegrityError:
            # Delivered twice at once (PostgreSQL): the second pass finds the first.
            if attempt:
                raise
    return JSONResponse(
        {
            "reference": pledge.reference,
            "status": pledge.status,
            "paid_minor": pledge.paid_minor,
            "recorded": new,
        }
    )


# --- the public tote board -----------------------------------------------------------


@router.get("/board/totals", response_model=BoardOut, tags=["board"])
async def board_totals(db: DB, campaign_id: int | None = None) -> dict[str, Any]:
    """Public, read-only: figures for a studio screen, and the first name and town of
    the latest donors who consented to be named on air. Nothing else of anyone."""
    campaign_id = await board_campaign(db, campaign_id)
    async with db.read() as session:
        figures = await totals.board(session, campaign_id)
    return {**figures, "updated_at": utcnow()}


@router.get(
    "/board/stream",
    tags=["board"],
    summary="The tote board's figures, pushed (server-sent events)",
    response_class=BoardResponse,
    status_code=200,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "``event: totals.updated`` frames whose data is a BoardOut: "
            "the current figures first, then each update (at most one a second)",
        },
        # The refusals are JSON, not the stream's media type.
        **{
            status: {
                "description": response["description"],
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
                },
            }
            for status, response in API_ERRORS.items()
        },
    },
)
async def board_stream(request: Request, campaign_id: int | None = None) -> Response:
    """Public, read-only: what ``/board/totals`` answers, pushed. See
    ``app/pledges/board_stream.py``: a stream that opens is served by
    ``BoardStreamRoute`` before the middleware stack; this route gives the refusals
    (and streams a request that route leaves to it, e.g. ``campaign_id=+1``)."""
    stream: BoardStream = request.app.state.board_stream
    return await stream.open(campaign_id)  # NotFound: a 404, before any stream

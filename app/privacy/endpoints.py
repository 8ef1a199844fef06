"""Privacy HTTP API (admins only): find a donor, export what is held about them,
erase them; see and run the retention purge.

The donor's phone, e-mail or reference travels in the request body, never in the
URL: request lines are logged and kept by proxies.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import require
from app.auth.service import Principal
from app.cardguard import CardGuarded
from app.db import Database, utcnow
from app.deps import get_app_settings, get_db
from app.errors import Invalid
from app.outbox import emit
from app.privacy import caches, erasure, retention, subjects
from app.privacy.models import PrivacyAction
from app.settings import Settings

router = APIRouter(prefix="/privacy", tags=["privacy"])
DB = Annotated[Database, Depends(get_db)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
Admin = Annotated[Principal, Depends(require())]
EXPORTED_EVENT = "privacy.exported"


class DonorIn(CardGuarded):
    """Exactly one of phone, e-mail or pledge reference."""

    model_config = ConfigDict(extra="forbid")
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=254)
    reference: str | None = Field(default=None, max_length=16)


class EraseIn(DonorIn):
    # The request's own reference or a few words: recorded with the erasure.
    reason: str = Field(min_length=3, max_length=200)


class PurgeIn(CardGuarded):
    model_config = ConfigDict(extra="forbid")
    # Apply the periods as of this time (default now). Later purges early, never late.
    as_of: dt.datetime | None = None


async def _subject(session: AsyncSession, settings: Settings, body: DonorIn) -> subjects.Subject:
    return await subjects.find_subject(
        session,
        settings.secret_key,
        phone=body.phone,
        email=body.email,
        reference=body.reference,
    )


@router.post("/donors/lookup")
async def look_up_donor(body: DonorIn, db: DB, settings: AppSettings, _: Admin) -> dict[str, Any]:
    """Who this is: their pledges and how many calls, to check before acting."""
    async with db.read() as session:
        subject = await _subject(session, settings, body)
        return await subjects.summary(session, subject)


@router.post("/donors/export")
async def export_donor(
    body: DonorIn, db: DB, settings: AppSettings, principal: Admin
) -> dict[str, Any]:
    """Everything held about the donor (their access request), as JSON; audited."""
    async with db.unit_of_work() as uow:
        subject = await _subject(uow.session, settings, body)
        data = await subjects.export(uow.session, subject)
        record = PrivacyAction(
            user_id=principal.user_id,
            actor=principal.username,
            action="export",
            looked_up_by=str(subject.looked_up_by),
            summary={"pledge_ids": subject.pledge_ids, "call_ids": subject.call_ids},
        )
        uow.session.add(record)
        await uow.session.flush()
        emit(uow, EXPORTED_EVENT, data={"action_id": record.id})
    return {"generated_at": utcnow().isoformat(), **data}


@router.post("/donors/erase")
async def erase_donor(
    body: EraseIn, request: Request, db: DB, settings: AppSettings, principal: Admin
) -> dict[str, Any]:
    """Remove or pseudonymise every copy of the donor's personal data; audited."""
    async with db.unit_of_work() as uow:
        subject = await _subject(uow.session, settings, body)
        done = await erasure.erase(uow, subject, principal, body.reason)
    caches.drop(request.app.state)  # this process's at once; the others on the event
    return done


@router.get("/retention")
async def retention_periods(settings: AppSettings, _: Admin) -> list[dict[str, Any]]:
    """Each kind of data, and the moment before which it is purged as of now."""
    now = utcnow()
    return [
        {"kind": k.name, "what": k.what, "purged_before": k.cutoff(now, settings).isoformat()}
        for k in retention.KINDS.values()
    ]


@router.post("/purge")
async def run_purge(body: PurgeIn, db: DB, settings: AppSettings, _: Admin) -> dict[str, Any]:
    """Apply the retention periods now (the background task does it on its own too)."""
    if body.as_of is not None and body.as_of.tzinfo is None:
        raise Invalid("a time with an offset (Z or +01:00)", field="as_of")
    if body.as_of is not None and body.as_of < utcnow() - dt.timedelta(minutes=5):
        raise Invalid("a purge as of a past time would keep data too long", field="as_of")
    return {"changed": await retention.purge(db, settings, body.as_of)}

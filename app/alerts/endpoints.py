"""``/alerts``: the campaign's supervisor alerts, kept, with who acknowledged them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from app.alerts import service
from app.alerts.schemas import AlertOut
from app.auth.deps import check_campaign, require
from app.auth.service import Principal, Role
from app.db import Database
from app.deps import get_db
from app.errors import Invalid

router = APIRouter(tags=["alerts"])
DB = Annotated[Database, Depends(get_db)]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]


def _campaign(principal: Principal, campaign_id: int | None) -> int:
    campaign_id = campaign_id if campaign_id is not None else principal.campaign_id
    if campaign_id is None:
        raise Invalid("which campaign?", field="campaign_id")
    check_campaign(principal, campaign_id)
    return campaign_id


@router.get("/alerts", response_model=list[AlertOut])
async def list_alerts(
    db: DB,
    principal: Supervisor,
    campaign_id: int | None = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    acknowledged: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The campaign's alerts, newest first; ``kind`` (``rule``, ``stale_call``...) and
    ``acknowledged`` filter them."""
    wanted = service.AlertFilter(
        campaign_id=_campaign(principal, campaign_id),
        kind=kind,
        acknowledged=acknowledged,
        limit=limit,
    )
    async with db.read() as session:
        return await service.list_alerts(session, wanted)


@router.get("/alerts/kinds", response_model=list[str])
async def alert_kinds(db: DB, principal: Supervisor, campaign_id: int | None = None) -> list[str]:
    """The kinds of alert the campaign has had, for a filter."""
    campaign = _campaign(principal, campaign_id)
    async with db.read() as session:
        return await service.kinds(session, campaign)


@router.post("/alerts/{seq}/acknowledge", response_model=AlertOut)
async def acknowledge_alert(seq: int, db: DB, principal: Supervisor) -> dict[str, Any]:
    """Acknowledge an alert: the first supervisor's acknowledgement is kept."""
    async with db.unit_of_work() as uow:
        return await service.acknowledge(uow, principal, seq)

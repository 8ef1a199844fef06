"""Supervisor alerts: the campaign's ``supervisor.alert`` events listed with their
acknowledgement, and the acknowledgement itself (the first supervisor's counts; one
``supervisor.alert_acknowledged`` event tells the other screens).

An alert's *kind* is why it was raised: its ``reason`` (``stale_call``,
``stranded_agent``, ``callback_failed``...) or ``rule`` for an alert written by
the campaign's rules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.models import AlertAcknowledgement
from app.auth.deps import check_campaign
from app.auth.service import Principal
from app.db import UnitOfWork, utcnow
from app.errors import NotFound
from app.outbox import Event, emit

ALERT = "supervisor.alert"
ACKNOWLEDGED = "supervisor.alert_acknowledged"
RULE_KIND = "rule"


def _kind() -> Any:
    return func.coalesce(Event.data["reason"].as_string(), RULE_KIND)


@dataclass(frozen=True)
class AlertFilter:
    campaign_id: int
    kind: str | None = None
    acknowledged: bool | None = None
    limit: int = 100


def _alert_out(event: Event, kind: str, ack: AlertAcknowledgement | None) -> dict[str, Any]:
    data = event.data or {}
    return {
        "seq": event.seq,
        "at": event.at,
        "kind": kind,
        "text": data.get("text", ""),
        "call_id": event.call_id,
        "queue_id": event.queue_id,
        "about_agent_id": data.get("about_agent_id"),
        "acknowledged_by": ack.username if ack else None,
        "acknowledged_at": ack.acknowledged_at if ack else None,
    }


async def list_alerts(session: AsyncSession, wanted: AlertFilter) -> list[dict[str, Any]]:
    """Newest first, with who acknowledged each one and when."""
    kind = _kind().label("kind")
    query = (
        select(Event, kind, AlertAcknowledgement)
        .outerjoin(AlertAcknowledgement, AlertAcknowledgement.event_seq == Event.seq)
        .where(Event.type == ALERT, Event.campaign_id == wanted.campaign_id)
    )
    if wanted.kind is not None:
        query = query.where(_kind() == wanted.kind)
    if wanted.acknowledged is True:
        query = query.where(AlertAcknowledgement.event_seq.is_not(None))
    elif wanted.acknowledged is False:
        query = query.where(AlertAcknowledgement.event_seq.is_(None))
    query = query.order_by(Event.seq.desc()).limit(wanted.limit)
    rows = (await session.execute(query)).all()
    return [_alert_out(event, kind, ack) for event, kind, ack in rows]


async def kinds(session: AsyncSession, campaign_id: int) -> list[str]:
    """The kinds of alert the campaign has had (for the filter)."""
    query = select(_kind()).where(Event.type == ALERT, Event.campaign_id == campaign_id).distinct()
    return sorted(str(k) for k in (await session.scalars(query)).all())


async def acknowledge(
    uow: UnitOfWork, principal: Principal, seq: int, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Acknowledge the alert; an alert already acknowledged keeps its first one."""
    event = await uow.session.get(Event, seq)
    if event is None or event.type != ALERT or event.campaign_id is None:
        raise NotFound("alert {seq} not found", field="seq", seq=seq)
    check_campaign(principal, event.campaign_id)
    now = now or utcnow()
    table = AlertAcknowledgement.__table__
    insert = uow.db.insert_or_ignore(table).values(
        event_seq=seq,
        campaign_id=event.campaign_id,
        user_id=principal.user_id,
        username=principal.username,
        acknowledged_at=now,
    )
    claimed = (await uow.session.execute(insert.returning(table.c.event_seq))).first()
    ack = await uow.session.get(AlertAcknowledgement, seq, populate_existing=True)
    assert ack is not None
    if claimed is not None:
        emit(
            uow,
            ACKNOWLEDGED,
            campaign_id=event.campaign_id,
            data={"seq": seq, "by": ack.username, "at": ack.acknowledged_at.isoformat()},
        )
    kind = (event.data or {}).get("reason") or RULE_KIND
    return _alert_out(event, str(kind), ack)

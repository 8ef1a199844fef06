"""Writing events into the current unit of work."""

from __future__ import annotations

from typing import Any

from app.db import UnitOfWork, utcnow
from app.realtime.models import Event


def emit(
    uow: UnitOfWork,
    type: str,
    *,
    campaign_id: int | None = None,
    queue_id: int | None = None,
    call_id: int | None = None,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Add an event to the transaction; it is published only if the transaction commits."""
    event = Event(
        type=type,
        at=utcnow(),
        campaign_id=campaign_id,
        queue_id=queue_id,
        call_id=call_id,
        agent_id=agent_id,
        data=data or {},
    )
    uow.session.add(event)
    uow.events.append(event)
    return event

"""What ``/alerts`` answers."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class AlertOut(BaseModel):
    seq: int
    at: dt.datetime
    kind: str
    text: str
    call_id: int | None
    queue_id: int | None
    about_agent_id: int | None
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None

"""What the planner reads from the database: handle times and an earlier show's calls.

* **Measured handle time**: the campaign's answered calls (the most recent
  :data:`MEASURED_CALLS`), talk = hang-up - answer, wrap-up = end of wrap-up -
  hang-up (completed calls only: a transferred leg's wrap-up is not recorded).
  A campaign with no answered call yet falls back to :data:`DEFAULT_TALK_SECONDS`
  and :data:`DEFAULT_WRAPUP_SECONDS` (180 s in all, the expected wait's default
  handle time, ``app/acd/expected_wait.py``).
* **Derived rundown**: the campaign's calls (first legs only: a transfer is not a
  new caller), counted per 15 minutes of their arrival, between ``since`` and
  ``until`` when given, scaled by ``scale``; clock times in the campaign's time
  zone. The calls counted must fall within 24 hours (a rundown is one show).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Call, Campaign
from app.acd.states import CallState
from app.errors import Invalid, NotFound
from app.planning.rundown import DAY_MINUTES, INTERVAL_MINUTES, Segment

MEASURED_CALLS = 10_000
DEFAULT_TALK_SECONDS = 150.0
DEFAULT_WRAPUP_SECONDS = 30.0


@dataclass(frozen=True)
class HandleTimes:
    talk_seconds: float
    wrapup_seconds: float
    answered_calls: int  # calls measured (0: the defaults)
    source: str  # "measured" or "default"

    @property
    def handle_seconds(self) -> float:
        return self.talk_seconds + self.wrapup_seconds


async def campaign(session: AsyncSession, campaign_id: int) -> Campaign:
    found = await session.get(Campaign, campaign_id)
    if found is None:
        raise NotFound("no such campaign", field="campaign_id")
    return found


def _seconds(later: dt.datetime, earlier: dt.datetime) -> float:
    return max(0.0, (later - earlier).total_seconds())


async def measured_handle_times(session: AsyncSession, campaign_id: int) -> HandleTimes:
    """The campaign's mean talk and wrap-up seconds (see the module docstring)."""
    rows = (
        await session.execute(
            select(Call.answered_at, Call.hangup_at, Call.ended_at, Call.state)
            .where(
                Call.campaign_id == campaign_id,
                Call.answered_at.is_not(None),
                Call.hangup_at.is_not(None),
            )
            .order_by(Call.id.desc())
            .limit(MEASURED_CALLS)
        )
    ).all()
    if not rows:
        return HandleTimes(DEFAULT_TALK_SECONDS, DEFAULT_WRAPUP_SECONDS, 0, "default")
    talks = [_seconds(hangup, answered) for answered, hangup, _, _ in rows if answered and hangup]
    wraps = [
        _seconds(ended, hangup)
        for _, hangup, ended, state in rows
        if state == CallState.COMPLETED and ended is not None and hangup is not None
    ]
    talk = sum(talks) / len(talks) if talks else DEFAULT_TALK_SECONDS
    wrap = sum(wraps) / len(wraps) if wraps else DEFAULT_WRAPUP_SECONDS
    return HandleTimes(round(talk, 1), round(wrap, 1), len(rows), "measured")


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _quarter(moment: dt.datetime) -> dt.datetime:
    moment = moment.astimezone(dt.UTC)
    return moment.replace(
        minute=moment.minute - moment.minute % INTERVAL_MINUTES, second=0, microsecond=0
    )


async def derived_rundown(
    session: AsyncSession,
    campaign_id: int,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    scale: float = 1.0,
) -> list[Segment]:
    """One segment per 15 minutes from the first quarter with a call to the last,
    with that quarter's calls times ``scale`` (quarters without calls inside the
    span are kept, with 0: the show went on)."""
    found = await campaign(session, campaign_id)
    query = select(Call.received_at).where(Call.campaign_id == campaign_id, Call.leg == 0)
    if since is not None:
        query = query.where(Call.received_at >= since)
    if until is not None:
        query = query.where(Call.received_at < until)
    arrivals = list(await session.scalars(query))
    if not arrivals:
        raise Invalid("the campaign has no calls to derive a rundown from", field="campaign_id")
    counts = Counter(_quarter(moment) for moment in arrivals)
    first, last = min(counts), max(counts)
    span_minutes = (last - first).total_seconds() / 60 + INTERVAL_MINUTES
    if span_minutes > DAY_MINUTES:
        raise Invalid(
            "the campaign's calls span more than 24 hours: choose one show with since and until",
            field="since",
        )
    zone = _zone(found.timezone)
    local_first = first.astimezone(zone)
    offset = local_first.hour * 60 + local_first.minute
    segments = []
    step = dt.timedelta(minutes=INTERVAL_MINUTES)
    quarter, index = first, 0
    while quarter <= last:
        start = offset + index * INTERVAL_MINUTES
        calls = counts.get(quarter, 0) * scale
        segments.append(Segment(start, start + INTERVAL_MINUTES, round(calls, 2)))
        quarter, index = quarter + step, index + 1
    if not all(math.isfinite(s.calls) for s in segments):
        raise Invalid("the scale gives calls beyond any count", field="scale")
    return segments

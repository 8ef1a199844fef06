"""The hours report (issue 15, point 5; docs/roster.md, Hours report): per volunteer,
per employer and per site, what the volunteers gave to the campaign.

Five queries in one read transaction, each one aggregate grouped by volunteer (no
query per volunteer): the volunteers, their seat sessions, their calls, their
pledges and their shift sign-ups. The employer and site rows are then the sums of
their volunteers' rows, so the totals always agree with the detail.

What is counted, over the period ``[since, until)`` (the whole campaign when not
given), every duration in whole seconds of real elapsed time (UTC instants
subtracted: a session across a daylight-saving change counts what really passed):

* **logged in**: each seat session (``agent_sessions``, login to logout) clipped
  to the period; a session still open counts up to now.
* **on calls**: each call the volunteer answered, from ``answered_at`` to
  ``ended_at`` (the end of its wrap-up: writing down the pledge is part of the
  call; a transferred leg ends at the transfer), clipped to the period; a call
  still live counts up to its hang-up, or now.
* **calls handled**: the calls the volunteer answered in the period (inbound and
  callbacks; a transfer's next leg counts for whoever answers it).
* **pledges**: the pledges the volunteer took (``pledges.agent_id``) created in the
  period, cancelled ones excepted (fakes and duplicates are no one's work to
  attest): their number and their total in integer minor units.
* **shifts**: the sign-ups to the campaign's shifts starting in the period, and
  those shifts' total length (the period's end is not capped at now: a shift
  signed up for tomorrow counts).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, AgentSession, Call, Campaign, Site
from app.db import Database, UTCDateTime, as_utc
from app.errors import Invalid, NotFound
from app.pledges.models import Pledge, PledgeStatus
from app.roster.models import Shift, ShiftSignup

Group = Literal["volunteer", "employer", "site"]
GROUPS: tuple[Group, ...] = ("volunteer", "employer", "site")


@dataclass
class Totals:
    """What a volunteer, an employer's volunteers or a site's volunteers gave."""

    shifts: int = 0
    shift_seconds: int = 0
    logged_in_seconds: int = 0
    call_seconds: int = 0
    calls: int = 0
    pledges: int = 0
    pledged_minor: int = 0

    def add(self, other: Totals) -> None:
        for f in fields(Totals):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class HoursRow:
    """One line of the report. Which keys are set depends on the grouping: a
    volunteer's line has them all; an employer's only ``employer``; a site's only
    ``site_id``/``site``. ``employer`` None: volunteers lent by no company."""

    agent_id: int | None = None
    volunteer: str | None = None
    employer: str | None = None
    site_id: int | None = None
    site: str | None = None
    volunteers: int = 1
    totals: Totals = field(default_factory=Totals)


@dataclass
class HoursReport:
    campaign_id: int
    campaign: str
    currency: str
    timezone: str
    language: str
    group: Group
    since: dt.datetime | None
    until: dt.datetime | None
    now: dt.datetime
    rows: list[HoursRow]
    totals: Totals
    # The first login of the campaign (None: nobody logged in yet), for a period
    # "from the start" to be printed.
    first_login: dt.datetime | None = None


def check_period(since: dt.datetime | None, until: dt.datetime | None) -> None:
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise Invalid(
                "{name} needs a time zone (e.g. 2026-11-23T18:00:00Z)", field=name, name=name
            )
    if since is not None and until is not None and since >= until:
        raise Invalid("the period's start must be before its end", field="from")


def _least(db: Database, a: Any, b: Any) -> ColumnElement[Any]:
    return func.least(a, b) if db.is_postgres else func.min(a, b)


def _greatest(db: Database, a: Any, b: Any) -> ColumnElement[Any]:
    return func.greatest(a, b) if db.is_postgres else func.max(a, b)


def _moment(value: dt.datetime) -> ColumnElement[Any]:
    return literal(value, UTCDateTime)


def _clipped(
    db: Database,
    start: Any,
    end: Any,
    since: dt.datetime | None,
    until: dt.datetime,
) -> tuple[ColumnElement[Any], list[ColumnElement[bool]]]:
    """The seconds of ``[start, end)`` inside ``[since, until)``, and the conditions
    for the interval to overlap it at all (so the seconds are never negative)."""
    low = start if since is None else _greatest(db, start, _moment(since))
    high = _least(db, end, _moment(until))
    where = [start < _moment(until), end > start]
    if since is not None:
        where.append(end > _moment(since))
    return db.seconds_since(low, high), where


def _seconds(value: Any) -> int:
    return round(float(value or 0))


async def volunteer_rows(
    session: AsyncSession,
    db: Database,
    campaign_id: int,
    since: dt.datetime | None,
    until: dt.datetime | None,
    now: dt.datetime,
) -> list[HoursRow]:
    """Every volunteer of the campaign with what they gave in the period (zeros
    included), by name."""
    # Sessions and calls cannot run past now; shifts may be ahead.
    cap = now if until is None else min(until, now)
    agent, site = Agent.__table__.c, Site.__table__.c
    people = (
        await session.execute(
            select(agent.id, agent.display_name, agent.employer, agent.site_id, site.name)
            .select_from(Agent.__table__.outerjoin(Site.__table__, site.id == agent.site_id))
            .where(agent.campaign_id == campaign_id)
            .order_by(agent.display_name, agent.id)
        )
    ).all()
    rows: dict[int, HoursRow] = {}
    for agent_id, name, employer, site_id, site_name in people:
        rows[agent_id] = HoursRow(
            agent_id=agent_id,
            volunteer=name,
            employer=(employer or "").strip() or None,
            site_id=site_id,
            site=site_name,
        )
    if not rows:
        return []

    s = AgentSession.__table__.c
    seconds, where = _clipped(db, s.started_at, func.coalesce(s.ended_at, _moment(now)), since, cap)
    for agent_id, total in await session.execute(
        select(s.agent_id, func.sum(seconds))
        .join(Agent.__table__, agent.id == s.agent_id)
        .where(agent.campaign_id == campaign_id, *where)
        .group_by(s.agent_id)
    ):
        rows[agent_id].totals.logged_in_seconds = _seconds(total)

    c = Call.__table__.c
    call_end = func.coalesce(c.ended_at, c.hangup_at, _moment(now))
    seconds, where = _clipped(db, c.answered_at, call_end, since, cap)
    answered_in = [c.answered_at < _moment(cap)]
    if since is not None:
        answered_in.append(c.answered_at >= _moment(since))
    handled = func.sum(case((and_(*answered_in), 1), else_=0))
    for agent_id, total, count in await session.execute(
        select(c.agent_id, func.sum(seconds), handled)
        .where(
            c.campaign_id == campaign_id,
            c.agent_id.is_not(None),
            c.answered_at.is_not(None),
            *where,
        )
        .group_by(c.agent_id)
    ):
        if agent_id in rows:
            rows[agent_id].totals.call_seconds = _seconds(total)
            rows[agent_id].totals.calls = int(count or 0)

    p = Pledge.__table__.c
    taken = [
        p.campaign_id == campaign_id,
        p.agent_id.is_not(None),
        p.status != PledgeStatus.CANCELLED.value,
    ]
    if since is not None:
        taken.append(p.created_at >= _moment(since))
    if until is not None:
        taken.append(p.created_at < _moment(until))
    for agent_id, count, amount in await session.execute(
        select(p.agent_id, func.count(), func.sum(p.amount_minor))
        .where(*taken)
        .group_by(p.agent_id)
    ):
        if agent_id in rows:
            rows[agent_id].totals.pledges = int(count)
            rows[agent_id].totals.pledged_minor = int(amount or 0)

    sh, su = Shift.__table__.c, ShiftSignup.__table__.c
    starting = [sh.campaign_id == campaign_id]
    if since is not None:
        starting.append(sh.starts_at >= _moment(since))
    if until is not None:
        starting.append(sh.starts_at < _moment(until))
    for agent_id, count, length in await session.execute(
        select(su.agent_id, func.count(), func.sum(db.seconds_since(sh.starts_at, sh.ends_at)))
        .join(Shift.__table__, sh.id == su.shift_id)
        .where(*starting)
        .group_by(su.agent_id)
    ):
        if agent_id in rows:
            rows[agent_id].totals.shifts = int(count)
            rows[agent_id].totals.shift_seconds = _seconds(length)
    return list(rows.values())


def grouped(volunteers: Iterable[HoursRow], group: Group) -> list[HoursRow]:
    """The volunteers' rows as they are, or summed per employer or per site (by name;
    the volunteers with none last)."""
    if group == "volunteer":
        return list(volunteers)
    sums: dict[Any, HoursRow] = {}
    for row in volunteers:
        if group == "employer":
            key: Any = row.employer
            line = sums.setdefault(key, HoursRow(employer=row.employer, volunteers=0))
        else:
            key = row.site_id
            line = sums.setdefault(key, HoursRow(site_id=row.site_id, site=row.site, volunteers=0))
        line.volunteers += 1
        line.totals.add(row.totals)

    def order(line: HoursRow) -> tuple[bool, str]:
        name = line.employer if group == "employer" else line.site
        return (name is None, (name or "").casefold())

    return sorted(sums.values(), key=order)


async def report(
    db: Database,
    campaign_id: int,
    group: Group,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    now: dt.datetime,
    employer: str | None = None,
) -> HoursReport:
    """The report of a campaign; with ``employer``, that company's volunteers only
    (404 when the campaign has none)."""
    check_period(since, until)
    async with db.read() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFound(
                "campaign {campaign_id} not found", field="campaign_id", campaign_id=campaign_id
            )
        volunteers = await volunteer_rows(session, db, campaign_id, since, until, now)
        s, agent = AgentSession.__table__.c, Agent.__table__.c
        first_login = (
            await session.execute(
                select(func.min(s.started_at))
                .join(Agent.__table__, agent.id == s.agent_id)
                .where(agent.campaign_id == campaign_id)
            )
        ).scalar()
    if employer is not None:
        wanted = employer.strip()
        volunteers = [row for row in volunteers if row.employer == wanted]
        if not wanted or not volunteers:
            raise NotFound(
                "no volunteer of this campaign is lent by {employer}",
                field="employer",
                employer=employer,
            )
    totals = Totals()
    for row in volunteers:
        totals.add(row.totals)
    return HoursReport(
        campaign_id=campaign.id,
        campaign=campaign.name,
        currency=campaign.currency,
        timezone=campaign.timezone,
        language=campaign.language,
        group=group,
        since=since,
        until=until,
        now=now,
        rows=grouped(volunteers, group),
        totals=totals,
        first_login=as_utc(first_login),
    )


def hh_mm(seconds: int) -> str:
    """``29400`` seconds is ``08:10`` (to the nearest minute; hours past 24 go on)."""
    minutes = (seconds + 30) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"

"""Shifts: time slots per site with seats to fill, who signed up, who came (docs/roster.md).

A shift is stored in UTC and read in its site's time zone ("20:00-00:00", a slot
crossing midnight included). Sign-ups are refused when the shift is full (its
sign-ups reach its seats) or when the volunteer is already on a shift overlapping
it; the shift's row and the volunteer's are locked while this is checked, so two
sign-ups at once cannot both take the last seat. Each change is one unit of work
with its event (``shift.created``, ``shift.updated``, ``shift.deleted``,
``shift.signup_added``, ``shift.signup_removed``, ``shift.signups_imported``).

Attendance is read, never recorded: a volunteer's check-in is their first ACD
session (``agent_sessions``, opened at login, closed at logout) overlapping the
shift, their check-out the end of the last one. Nothing in ``app.acd`` knows shifts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd import repository
from app.acd.models import Agent, AgentSession, Site
from app.cardguard import looks_like_card_data
from app.db import Database, UnitOfWork
from app.errors import Conflict, Invalid, NotFound
from app.i18n import N_, Message
from app.outbox import emit
from app.roster.files import SIGNUPS, FileUnreadable, RosterRow, read_roster
from app.roster.models import Shift, ShiftSignup
from app.roster.service import Refusal, RosterRefused
from app.roster.shift_schemas import ShiftIn, ShiftPatch

MAX_SHIFT = dt.timedelta(hours=24)
EN_DASH = "\u2013"  # between a shift's hours, as printed rosters write them
MAX_IMPORT_BYTES = 5 * 1024 * 1024
SOURCES = ("admin", "supervisor", "import", "self")
# Called with the locked shift and volunteer before a sign-up or a withdrawal: raises
# when the caller may not (app/roster/shift_endpoints.py decides by role and site).
Authorize = Callable[[Shift, Agent], None]


# --- reading a shift in its site's time ------------------------------------------------


@dataclass(frozen=True)
class ShiftView:
    shift: Shift
    site: Site
    signed_up: int

    def out(self) -> dict[str, Any]:
        zone = ZoneInfo(self.site.timezone)
        start = self.shift.starts_at.astimezone(zone)
        end = self.shift.ends_at.astimezone(zone)
        return {
            "id": self.shift.id,
            "campaign_id": self.shift.campaign_id,
            "site_id": self.shift.site_id,
            "site_name": self.site.name,
            "timezone": self.site.timezone,
            "starts_at": self.shift.starts_at,
            "ends_at": self.shift.ends_at,
            "starts_local": start,
            "ends_local": end,
            "local_range": local_range(start, end),
            "crosses_midnight": end.date() != start.date(),
            "seats": self.shift.seats,
            "label": self.shift.label,
            "signed_up": self.signed_up,
            "created_at": self.shift.created_at,
        }


def local_range(start: dt.datetime, end: dt.datetime) -> str:
    """``20:00-00:00`` (joined by an en dash), ``22:00-02:00``: the hours on the site's
    clock (``crosses_midnight`` says when the end is the next day's)."""
    return f"{start:%H:%M}{EN_DASH}{end:%H:%M}"


# --- shifts ------------------------------------------------------------------------------


async def get_shift(session: AsyncSession, shift_id: int, *, lock: bool = False) -> Shift:
    stmt = select(Shift).where(Shift.id == shift_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    shift = (await session.execute(stmt)).scalar_one_or_none()
    if shift is None:
        raise NotFound("shift {shift_id} not found", field="shift_id", shift_id=shift_id)
    return shift


async def view(session: AsyncSession, shift: Shift) -> ShiftView:
    site = await session.get(Site, shift.site_id)
    assert site is not None  # a shift's site is deleted with it
    count = await session.scalar(
        select(func.count()).select_from(ShiftSignup).where(ShiftSignup.shift_id == shift.id)
    )
    return ShiftView(shift, site, int(count or 0))


def _check_times(starts_at: dt.datetime, ends_at: dt.datetime) -> None:
    if ends_at <= starts_at:
        raise Invalid("a shift ends after it starts", code="shift_ends_first", field="ends_at")
    if ends_at - starts_at > MAX_SHIFT:
        raise Invalid(
            "a shift lasts at most {hours} hours",
            code="shift_too_long",
            field="ends_at",
            hours=int(MAX_SHIFT.total_seconds() // 3600),
        )


async def _site_of_campaign(session: AsyncSession, site_id: int, campaign_id: int) -> Site:
    site = await session.get(Site, site_id)
    if site is None or site.campaign_id != campaign_id:
        raise Invalid(
            "site {site_id} is not a site of campaign {campaign_id}",
            code="unknown_site",
            field="site_id",
            site_id=site_id,
            campaign_id=campaign_id,
        )
    return site


async def create_shift(uow: UnitOfWork, data: ShiftIn) -> Shift:
    await repository.get_campaign(uow.session, data.campaign_id)
    await _site_of_campaign(uow.session, data.site_id, data.campaign_id)
    starts_at, ends_at = data.starts_at.astimezone(dt.UTC), data.ends_at.astimezone(dt.UTC)
    _check_times(starts_at, ends_at)
    shift = Shift(
        campaign_id=data.campaign_id,
        site_id=data.site_id,
        starts_at=starts_at,
        ends_at=ends_at,
        seats=data.seats,
        label=data.label,
    )
    uow.session.add(shift)
    await uow.session.flush()
    emit(
        uow,
        "shift.created",
        campaign_id=shift.campaign_id,
        data={"shift_id": shift.id, "site_id": shift.site_id},
    )
    return shift


async def update_shift(uow: UnitOfWork, shift_id: int, data: ShiftPatch) -> Shift:
    shift = await get_shift(uow.session, shift_id, lock=True)
    changes = data.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is None:
            raise Invalid("{key} cannot be null", field=key, key=key)
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC)
        setattr(shift, key, value)
    _check_times(shift.starts_at, shift.ends_at)
    if "starts_at" in changes or "ends_at" in changes:
        # Moved: none of its volunteers may end up on two shifts at once.
        signed = select(ShiftSignup.agent_id).where(ShiftSignup.shift_id == shift.id)
        for agent_id in (await uow.session.execute(signed)).scalars():
            await _refuse_overlap(uow.session, shift, agent_id)
    await uow.session.flush()
    emit(
        uow,
        "shift.updated",
        campaign_id=shift.campaign_id,
        data={"shift_id": shift.id, "site_id": shift.site_id, "changed": sorted(changes)},
    )
    return shift


async def delete_shift(uow: UnitOfWork, shift_id: int) -> None:
    shift = await get_shift(uow.session, shift_id, lock=True)
    gone = await uow.session.execute(
        delete(ShiftSignup).where(ShiftSignup.shift_id == shift.id).returning(ShiftSignup.agent_id)
    )
    agent_ids = sorted(gone.scalars())
    await uow.session.delete(shift)
    emit(
        uow,
        "shift.deleted",
        campaign_id=shift.campaign_id,
        data={"shift_id": shift.id, "site_id": shift.site_id, "agent_ids": agent_ids},
    )


async def list_shifts(
    session: AsyncSession,
    campaign_id: int | None,
    *,
    site_id: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[ShiftView]:
    """Shifts by start; ``since``/``until``: those still running at ``since`` and
    starting before ``until``."""
    counts = (
        select(ShiftSignup.shift_id, func.count().label("n"))
        .group_by(ShiftSignup.shift_id)
        .subquery()
    )
    stmt = (
        select(Shift, Site, counts.c.n)
        .join(Site, Site.id == Shift.site_id)
        .outerjoin(counts, counts.c.shift_id == Shift.id)
        .order_by(Shift.starts_at, Shift.site_id, Shift.id)
    )
    if campaign_id is not None:
        stmt = stmt.where(Shift.campaign_id == campaign_id)
    if site_id is not None:
        stmt = stmt.where(Shift.site_id == site_id)
    if since is not None:
        stmt = stmt.where(Shift.ends_at > since)
    if until is not None:
        stmt = stmt.where(Shift.starts_at < until)
    rows = (await session.execute(stmt)).all()
    return [ShiftView(shift, site, int(n or 0)) for shift, site, n in rows]


async def signed_shift_ids(session: AsyncSession, agent_id: int) -> set[int]:
    stmt = select(ShiftSignup.shift_id).where(ShiftSignup.agent_id == agent_id)
    return set((await session.execute(stmt)).scalars())


# --- sign-ups ----------------------------------------------------------------------------


async def _refuse_overlap(session: AsyncSession, shift: Shift, agent_id: int) -> None:
    stmt = (
        select(Shift)
        .join(ShiftSignup, ShiftSignup.shift_id == Shift.id)
        .where(
            ShiftSignup.agent_id == agent_id,
            Shift.id != shift.id,
            Shift.starts_at < shift.ends_at,
            Shift.ends_at > shift.starts_at,
        )
        .limit(1)
    )
    other = (await session.execute(stmt)).scalar_one_or_none()
    if other is not None:
        raise Conflict(
            "volunteer {agent_id} is already on shift {other_id}, which overlaps this one",
            code="shift_overlap",
            field="agent_id",
            agent_id=agent_id,
            other_id=other.id,
        )


async def _signup(session: AsyncSession, shift_id: int, agent_id: int) -> ShiftSignup | None:
    stmt = select(ShiftSignup).where(
        ShiftSignup.shift_id == shift_id, ShiftSignup.agent_id == agent_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _add(uow: UnitOfWork, shift: Shift, agent: Agent, source: str) -> ShiftSignup:
    """The checks every sign-up passes (the shift and the volunteer locked)."""
    if agent.campaign_id != shift.campaign_id:
        raise Invalid(
            "volunteer {agent_id} is not of the shift's campaign",
            code="other_campaign",
            field="agent_id",
            agent_id=agent.id,
        )
    count = await uow.session.scalar(
        select(func.count()).select_from(ShiftSignup).where(ShiftSignup.shift_id == shift.id)
    )
    if int(count or 0) >= shift.seats:
        raise Conflict(
            "shift {shift_id} is full ({seats} seats)",
            code="shift_full",
            field="shift_id",
            shift_id=shift.id,
            seats=shift.seats,
        )
    await _refuse_overlap(uow.session, shift, agent.id)
    signup = ShiftSignup(shift_id=shift.id, agent_id=agent.id, source=source)
    uow.session.add(signup)
    await uow.session.flush()
    return signup


async def sign_up(
    uow: UnitOfWork,
    shift_id: int,
    agent_id: int,
    *,
    source: str,
    actor: str,
    authorize: Authorize,
) -> tuple[ShiftSignup, bool]:
    """Sign the volunteer up (or find them signed up already: ``created`` is False)."""
    shift = await get_shift(uow.session, shift_id, lock=True)
    agent = await repository.get_agent(uow.session, agent_id, lock=True)
    authorize(shift, agent)
    existing = await _signup(uow.session, shift.id, agent.id)
    if existing is not None:
        return existing, False
    signup = await _add(uow, shift, agent, source)
    emit(
        uow,
        "shift.signup_added",
        campaign_id=shift.campaign_id,
        agent_id=agent.id,
        data={"shift_id": shift.id, "site_id": shift.site_id, "source": source, "actor": actor},
    )
    return signup, True


async def withdraw(
    uow: UnitOfWork, shift_id: int, agent_id: int, *, actor: str, authorize: Authorize
) -> bool:
    """Take the volunteer off the shift; False when they were not on it."""
    shift = await get_shift(uow.session, shift_id, lock=True)
    agent = await repository.get_agent(uow.session, agent_id, lock=True)
    authorize(shift, agent)
    existing = await _signup(uow.session, shift.id, agent.id)
    if existing is None:
        return False
    await uow.session.delete(existing)
    emit(
        uow,
        "shift.signup_removed",
        campaign_id=shift.campaign_id,
        agent_id=agent.id,
        data={"shift_id": shift.id, "site_id": shift.site_id, "actor": actor},
    )
    return True


# --- attendance --------------------------------------------------------------------------


@dataclass(frozen=True)
class Attendee:
    agent: Agent
    source: str
    status: str  # expected, on_time, late, no_show
    checked_in_at: dt.datetime | None
    checked_out_at: dt.datetime | None
    logged_in: bool
    late_seconds: int | None

    def out(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent.id,
            "display_name": self.agent.display_name,
            "login": self.agent.login,
            "site_id": self.agent.site_id,
            "source": self.source,
            "status": self.status,
            "checked_in_at": self.checked_in_at,
            "checked_out_at": self.checked_out_at,
            "logged_in": self.logged_in,
            "late_seconds": self.late_seconds,
        }


def attendee(
    shift: Shift,
    agent: Agent,
    source: str,
    sessions: Sequence[tuple[dt.datetime, dt.datetime | None]],
    now: dt.datetime,
    grace: dt.timedelta,
) -> Attendee:
    """One volunteer's attendance from their sessions (started, ended or None), at ``now``.

    Only sessions overlapping the shift count: started before it ends (and before
    now), not ended before it starts."""
    overlapping = sorted(
        (start, end)
        for start, end in sessions
        if start < shift.ends_at and start <= now and (end is None or end > shift.starts_at)
    )
    deadline = shift.starts_at + grace
    if not overlapping:
        status = "no_show" if now >= deadline else "expected"
        return Attendee(agent, source, status, None, None, False, None)
    checked_in = overlapping[0][0]
    last_end = overlapping[-1][1]
    late = checked_in > deadline
    late_seconds = int((checked_in - shift.starts_at).total_seconds()) if late else None
    return Attendee(
        agent,
        source,
        "late" if late else "on_time",
        checked_in,
        last_end,
        last_end is None,
        late_seconds,
    )


@dataclass(frozen=True)
class Attendance:
    view: ShiftView
    now: dt.datetime
    grace: dt.timedelta
    attendees: list[Attendee]

    def out(self) -> dict[str, Any]:
        everyone = [a.out() for a in self.attendees]
        return {
            "shift": self.view.out(),
            "now": self.now,
            "late_grace_seconds": int(self.grace.total_seconds()),
            "started": self.now >= self.view.shift.starts_at,
            "ended": self.now >= self.view.shift.ends_at,
            "volunteers": everyone,
            "late": [a for a in everyone if a["status"] == "late"],
            "no_show": [a for a in everyone if a["status"] == "no_show"],
        }


async def attendance(
    session: AsyncSession, shift: Shift, now: dt.datetime, grace: dt.timedelta
) -> Attendance:
    """Who signed up to the shift and how they came, read from their ACD sessions."""
    signed = (
        await session.execute(
            select(Agent, ShiftSignup.source)
            .join(ShiftSignup, ShiftSignup.agent_id == Agent.id)
            .where(ShiftSignup.shift_id == shift.id)
            .order_by(func.lower(Agent.display_name), Agent.id)
        )
    ).all()
    agent_ids = [agent.id for agent, _ in signed]
    sessions: dict[int, list[tuple[dt.datetime, dt.datetime | None]]] = {a: [] for a in agent_ids}
    if agent_ids:
        rows = await session.execute(
            select(AgentSession.agent_id, AgentSession.started_at, AgentSession.ended_at).where(
                AgentSession.agent_id.in_(agent_ids),
                AgentSession.started_at < shift.ends_at,
                or_(AgentSession.ended_at.is_(None), AgentSession.ended_at > shift.starts_at),
            )
        )
        for agent_id, started_at, ended_at in rows.all():
            sessions[agent_id].append((started_at, ended_at))
    attendees = [
        attendee(shift, agent, source, sessions[agent.id], now, grace) for agent, source in signed
    ]
    return Attendance(await view(session, shift), now, grace, attendees)


# --- importing sign-ups ------------------------------------------------------------------


class SignupsRefused(RosterRefused):
    """A sign-up file with refused rows (or unreadable): nothing is signed up."""

    code = "signups_refused"


def _parse_start(text: str, zone: ZoneInfo) -> dt.datetime | None:
    """``2026-12-05 20:00`` (or ISO, or ``05/12/2026 20:00``) in the site's time, to UTC."""
    moment = None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        for pattern in ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S"):
            try:
                moment = dt.datetime.strptime(text.strip(), pattern)
                break
            except ValueError:
                continue
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


@dataclass
class _Campaign:
    """What rows are checked against: the campaign's volunteers, sites and shifts."""

    by_login: dict[str, Agent]
    by_email: dict[str, Agent]
    sites: dict[str, Site]
    shifts: dict[int, Shift]
    by_start: dict[tuple[int, dt.datetime], Shift]
    taken: dict[int, int]  # shift id -> seats taken (the file's rows included)
    signed: dict[int, list[Shift]]  # agent id -> their shifts (the file's rows included)


async def _campaign_state(session: AsyncSession, campaign_id: int) -> _Campaign:
    agents = list(
        (await session.execute(select(Agent).where(Agent.campaign_id == campaign_id))).scalars()
    )
    sites = list(
        (await session.execute(select(Site).where(Site.campaign_id == campaign_id))).scalars()
    )
    shifts = list(
        (await session.execute(select(Shift).where(Shift.campaign_id == campaign_id))).scalars()
    )
    by_id = {s.id: s for s in shifts}
    state = _Campaign(
        by_login={a.login.casefold(): a for a in agents},
        by_email={a.email.casefold(): a for a in agents if a.email},
        sites={s.name.casefold(): s for s in sites},
        shifts=by_id,
        by_start={(s.site_id, s.starts_at): s for s in shifts},
        taken={s.id: 0 for s in shifts},
        signed={},
    )
    signups = (
        await session.execute(
            select(ShiftSignup.shift_id, ShiftSignup.agent_id).where(
                ShiftSignup.shift_id.in_(list(by_id))
            )
        )
    ).all()
    for shift_id, agent_id in signups:
        state.taken[shift_id] += 1
        state.signed.setdefault(agent_id, []).append(by_id[shift_id])
    return state


def _check_signup_row(
    row: RosterRow, state: _Campaign
) -> tuple[Refusal | None, tuple[Shift, Agent] | None]:
    cells = row.cells

    def refuse(field: str, code: str, message: Message) -> tuple[Refusal, None]:
        return Refusal(row.line, field, code, message), None

    for key, value in cells.items():
        if value and looks_like_card_data(value):
            # The value is never repeated: it may be a card number.
            reason = Message("{field}: card numbers are refused in free text", field=key)
            return refuse(key, "card_number", reason)
    agent = None
    if cells.get("login"):
        agent = state.by_login.get(cells["login"].casefold())
        if agent is None:
            reason = Message("no volunteer with login '{login}'", login=cells["login"])
            return refuse("login", "unknown_volunteer", reason)
    elif cells.get("email"):
        agent = state.by_email.get(cells["email"].casefold())
        if agent is None:
            return refuse("email", "unknown_volunteer", Message("no volunteer with this e-mail"))
    else:
        return refuse("login", "missing_volunteer", Message("the login or e-mail is missing"))
    shift = None
    if cells.get("shift"):
        number = cells["shift"].strip()
        shift = state.shifts.get(int(number)) if number.isdigit() else None
        if shift is None:
            reason = Message("no shift '{number}' in this campaign", number=number)
            return refuse("shift", "unknown_shift", reason)
    elif cells.get("site") and cells.get("start"):
        site = state.sites.get(cells["site"].casefold())
        if site is None:
            reason = Message("no site named '{name}'", name=cells["site"])
            return refuse("site", "unknown_site", reason)
        start = _parse_start(cells["start"], ZoneInfo(site.timezone))
        if start is None:
            reason = Message("not a date and time: '{value}'", value=cells["start"])
            return refuse("start", "bad_value", reason)
        shift = state.by_start.get((site.id, start))
        if shift is None:
            reason = Message("no shift at {site} starting then", site=site.name)
            return refuse("start", "unknown_shift", reason)
    else:
        return refuse(
            "shift", "missing_shift", Message("the shift (or its site and start) is missing")
        )
    mine = state.signed.setdefault(agent.id, [])
    if any(s.id == shift.id for s in mine):
        return None, None  # already on it: nothing to do
    if state.taken[shift.id] >= shift.seats:
        reason = Message("shift {shift} is full ({seats} seats)", shift=shift.id, seats=shift.seats)
        return refuse("shift", "shift_full", reason)
    for other in mine:
        if other.starts_at < shift.ends_at and other.ends_at > shift.starts_at:
            reason = Message("overlaps shift {shift} of the same volunteer", shift=other.id)
            return refuse("shift", "shift_overlap", reason)
    state.taken[shift.id] += 1
    mine.append(shift)
    return None, (shift, agent)


async def import_signups(
    db: Database, campaign_id: int, data: bytes, *, actor: str
) -> tuple[int, int]:
    """Sign-ups from a CSV or XLSX file, all or nothing: (added, already signed up)."""
    try:
        rows = read_roster(data, SIGNUPS)
    except FileUnreadable as exc:
        raise SignupsRefused([], N_("nothing imported: {reason}"), exc.reason) from exc
    if not rows:
        raise SignupsRefused([], N_("nothing imported: the file has no sign-up"))
    async with db.unit_of_work() as uow:
        await repository.get_campaign(uow.session, campaign_id)
        # The campaign's shifts are locked: seats are counted under the lock.
        await uow.session.execute(
            select(Shift.id).where(Shift.campaign_id == campaign_id).with_for_update()
        )
        state = await _campaign_state(uow.session, campaign_id)
        refused: list[Refusal] = []
        adds: list[tuple[Shift, Agent]] = []
        for row in rows:
            refusal, item = _check_signup_row(row, state)
            if refusal is not None:
                refused.append(refusal)
            elif item is not None:
                adds.append(item)
        if refused:
            raise SignupsRefused(refused)
        for shift, agent in adds:
            uow.session.add(ShiftSignup(shift_id=shift.id, agent_id=agent.id, source="import"))
        await uow.session.flush()
        emit(
            uow,
            "shift.signups_imported",
            campaign_id=campaign_id,
            data={
                "signups": [[s.id, a.id] for s, a in adds],
                "actor": actor,
            },
        )
    return len(adds), len(rows) - len(adds)

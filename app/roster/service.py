"""The people of the show: partner sites, volunteers registered ahead of it, their PINs.

A roster import is all or nothing: every row is checked first (name, e-mail,
phone, site, duplicates in the file or already registered, card numbers in any
cell); one refused row refuses the file with the list of refused rows, and
nothing is written. A good file is written in one unit of work: the agents, their
logins and one ``roster.imported`` event.

PINs are generated, hashed (argon2, off the event loop) and shown once in the
answer; only the hash is kept. A PIN sheet re-issues PINs (``roster.pins_issued``,
the audit: who, which volunteers; never the PINs).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd import config, repository
from app.acd.models import Agent, Site
from app.acd.schemas import AgentIn
from app.auth.models import User
from app.auth.secrets import hash_secret
from app.auth.service import USER_CHANGED, Role, create_user, revoke_user
from app.cardguard import looks_like_card_data
from app.db import Database, UnitOfWork
from app.errors import Conflict, Invalid, NotFound
from app.i18n import N_, Message
from app.outbox import emit
from app.phone_numbers import normalise as normalise_phone
from app.roster.files import FileUnreadable, RosterRow, read_roster
from app.roster.schemas import SiteIn, SitePatch
from app.settings import settings_of

log = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 5 * 1024 * 1024
TRUE_WORDS = {"yes", "y", "true", "1", "x", "oui", "o", "vrai"}
FALSE_WORDS = {"", "no", "n", "false", "0", "non", "faux"}
Progress = Callable[[int, int], None]


# --- sites ---------------------------------------------------------------------------


async def create_site(uow: UnitOfWork, data: SiteIn) -> Site:
    await repository.get_campaign(uow.session, data.campaign_id)
    site = Site(**data.model_dump())
    await _flush_unique(uow, site)
    emit(uow, "site.created", campaign_id=site.campaign_id, data={"site_id": site.id})
    return site


async def update_site(uow: UnitOfWork, site_id: int, data: SitePatch) -> Site:
    site = await get_site(uow.session, site_id)
    changes = data.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is None:
            raise Invalid("{key} cannot be null", field=key, key=key)
        setattr(site, key, value)
    await _flush_unique(uow, site)
    emit(uow, "site.updated", campaign_id=site.campaign_id, data={"site_id": site.id})
    return site


async def _flush_unique(uow: UnitOfWork, row: Site) -> None:
    uow.session.add(row)
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "site {name} already exists", code="already_exists", field="name", name=row.name
        ) from exc


async def get_site(session: AsyncSession, site_id: int) -> Site:
    site = await session.get(Site, site_id)
    if site is None:
        raise NotFound("site {site_id} not found", field="site_id", site_id=site_id)
    return site


# --- logins and PINs -----------------------------------------------------------------


def new_pin(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def login_stem(name: str) -> str:
    """``Zoé Le Gall`` -> ``zoe.le.gall``: ASCII, dotted, short enough for a suffix."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    stem = re.sub(r"[^a-z0-9]+", ".", plain).strip(".")[:48]
    return stem or "volunteer"


async def _taken_logins(session: AsyncSession, campaign_id: int) -> set[str]:
    agents = select(Agent.login).where(Agent.campaign_id == campaign_id)
    users = select(User.username)
    taken = set((await session.execute(agents)).scalars())
    return taken | set((await session.execute(users)).scalars())


def _free_login(stem: str, taken: set[str]) -> str:
    login, n = stem, 1
    while login in taken:
        n += 1
        login = f"{stem}.{n}"
    taken.add(login)
    return login


@dataclass(frozen=True)
class IssuedPin:
    agent_id: int
    display_name: str
    site_id: int | None
    username: str
    pin: str


async def _hashes(pins: list[str], progress: Progress | None) -> list[str]:
    """argon2 hashes of the PINs, in a worker thread (the slow part of a big import)."""
    hashes = []
    for done, pin in enumerate(pins, start=1):
        hashes.append(await asyncio.to_thread(hash_secret, pin))
        if progress is not None:
            progress(done, len(pins))
    return hashes


# --- checking rows ----------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a row is refused: ``message`` is put into words in the answer's language
    (``str()``: English, for the command line)."""

    line: int
    field: str | None
    code: str
    message: Message

    def out(self, language: str = "en") -> dict[str, Any]:
        return {
            "line": self.line,
            "field": self.field,
            "code": self.code,
            "message": self.message.text(language),
        }


class RosterRefused(Invalid):
    """A roster file with refused rows (or unreadable): none of it is imported."""

    code = "roster_refused"

    def __init__(
        self,
        refusals: list[Refusal],
        message: str = N_("nothing imported: {count} refused row(s)"),
        reason: Message | str = "",
    ) -> None:
        super().__init__(message, field="file", count=len(refusals), reason=reason)
        self.refusals = refusals

    def body(self, language: str = "en") -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "rows": [r.out(language) for r in self.refusals],
        }


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,;|/]+", text.strip()) if w]


def _skills(text: str) -> dict[str, int]:
    """``pledges:1 vip:2`` or ``pledges, vip`` (level 1)."""
    skills = {}
    for word in _words(text):
        skill, _, level = word.partition(":")
        skills[skill.lower()] = int(level) if level.isdigit() else (1 if not level else 0)
    return skills


@dataclass
class _Checked:
    line: int
    agent: AgentIn
    login: str | None


async def check_rows(
    session: AsyncSession, campaign_id: int, rows: list[RosterRow]
) -> tuple[list[_Checked], list[Refusal]]:
    """Every row as an agent to create, or why it is refused (all rows are looked at)."""
    campaign = await repository.get_campaign(session, campaign_id)
    sites_stmt = select(Site).where(Site.campaign_id == campaign_id)
    sites = {s.name.casefold(): s.id for s in (await session.execute(sites_stmt)).scalars()}
    registered = select(Agent.email, Agent.phone).where(Agent.campaign_id == campaign_id)
    known_emails: dict[str, int] = {}
    known_phones: dict[str, int] = {}
    for email, phone in (await session.execute(registered)).all():
        if email:
            known_emails[email.casefold()] = 0
        if phone:
            known_phones[phone] = 0
    checked, refused = [], []
    for row in rows:
        refusal, item = _check_row(row, campaign.default_region, sites, known_emails, known_phones)
        if refusal is not None:
            refused.append(refusal)
        elif item is not None:
            checked.append(item)
    return checked, refused


def _check_row(
    row: RosterRow,
    region: str,
    sites: dict[str, int],
    known_emails: dict[str, int],
    known_phones: dict[str, int],
) -> tuple[Refusal | None, _Checked | None]:
    cells = row.cells

    def refuse(field: str | None, code: str, message: Message) -> tuple[Refusal, None]:
        return Refusal(row.line, field, code, message), None

    for key, value in cells.items():
        if value and looks_like_card_data(value):
            # The value is never repeated: it may be a card number.
            reason = Message("{field}: card numbers are refused in free text", field=key)
            return refuse(key, "card_number", reason)
    name = cells.get("name", "")
    if not name:
        return refuse("name", "missing_name", Message("the name is missing"))
    email = cells.get("email") or None
    phone = None
    if cells.get("phone"):
        phone = normalise_phone(cells["phone"], region).e164
        if phone is None:
            reason = Message("not a phone number: '{value}'", value=cells["phone"])
            return refuse("phone", "bad_phone", reason)
    site_id = None
    if cells.get("site"):
        site_id = sites.get(cells["site"].casefold())
        if site_id is None:
            reason = Message("no site named '{name}'", name=cells["site"])
            return refuse("site", "unknown_site", reason)
    trained_word = cells.get("trained", "").casefold()
    if trained_word not in TRUE_WORDS | FALSE_WORDS:
        reason = Message("trained is yes or no, not '{value}'", value=cells["trained"])
        return refuse("trained", "bad_value", reason)
    try:
        agent = AgentIn(
            campaign_id=0,
            login="pending",
            display_name=name,
            email=email,
            phone=phone,
            site_id=site_id,
            employer=cells.get("employer") or None,
            languages=[w.lower() for w in _words(cells.get("languages", ""))],
            skills=_skills(cells.get("skills", "")),
            trained=trained_word in TRUE_WORDS,
            notes=cells.get("notes") or None,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else None
        code = "bad_email" if field == "email" else "bad_value"
        return refuse(field, code, Message("{field}: {error}", field=field, error=error["msg"]))
    login = cells.get("login") or None
    if login is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", login):
        return refuse("login", "bad_value", Message("a login is letters, digits, dots and dashes"))
    if email is not None:
        first = known_emails.get(email.casefold())
        if first is not None:
            return refuse("email", "duplicate", _duplicate("email", first))
        known_emails[email.casefold()] = row.line
    if phone is not None:
        first = known_phones.get(phone)
        if first is not None:
            return refuse("phone", "duplicate", _duplicate("phone", first))
        known_phones[phone] = row.line
    return None, _Checked(row.line, agent, login)


def _duplicate(what: str, first_line: int) -> Message:
    if first_line == 0:
        if what == "email":
            return Message("a volunteer with this e-mail is already registered")
        return Message("a volunteer with this phone is already registered")
    if what == "email":
        return Message("same e-mail as line {line}", line=first_line)
    return Message("same phone as line {line}", line=first_line)


# --- registering ---------------------------------------------------------------------------


async def _register(
    uow: UnitOfWork,
    campaign_id: int,
    items: list[_Checked],
    hashes: list[str],
    pins: list[str],
) -> list[IssuedPin]:
    taken = await _taken_logins(uow.session, campaign_id)
    issued = []
    for item, secret_hash, pin in zip(items, hashes, pins, strict=True):
        if item.login is not None and item.login in taken:
            raise RosterRefused(
                [
                    Refusal(
                        item.line,
                        "login",
                        "duplicate",
                        Message("login {login} is taken", login=item.login),
                    )
                ]
            )
        login = item.login or _free_login(login_stem(item.agent.display_name), taken)
        taken.add(login)
        data = item.agent.model_copy(update={"campaign_id": campaign_id, "login": login})
        agent = await config.create_agent(uow, data)
        await create_user(
            uow,
            username=login,
            display_name=agent.display_name,
            role=Role.AGENT,
            secret=pin,
            secret_hash=secret_hash,
            campaign_id=campaign_id,
            agent_id=agent.id,
        )
        issued.append(IssuedPin(agent.id, agent.display_name, agent.site_id, login, pin))
    return issued


async def _refuse_registered(session: AsyncSession, data: AgentIn, region: str) -> None:
    """One volunteer per e-mail and per phone in a campaign, as the import checks."""
    phone = config.phone_e164(data.phone, region)
    for field, value, column in (
        ("email", data.email, func.lower(Agent.email)),
        ("phone", phone, Agent.phone),
    ):
        if value is None:
            continue
        wanted = value.lower() if field == "email" else value
        stmt = select(Agent.id).where(Agent.campaign_id == data.campaign_id, column == wanted)
        if (await session.execute(stmt.limit(1))).first() is not None:
            raise Conflict(
                "a volunteer with this {what} is already registered",
                code="duplicate",
                field=field,
                what=field,
            )


def _pin_digits(db: Database) -> int:
    return settings_of(db).pin_min_digits


async def register_one(db: Database, data: AgentIn, login: str | None) -> IssuedPin:
    """One volunteer (the admin page, the API): the agent, its login, a new PIN."""
    async with db.read() as session:
        campaign = await repository.get_campaign(session, data.campaign_id)
        await config.check_site(session, data.campaign_id, data.site_id)
        await _refuse_registered(session, data, campaign.default_region)
    pin = new_pin(_pin_digits(db))
    hashes = await _hashes([pin], None)
    async with db.unit_of_work() as uow:
        item = _Checked(0, data, login)
        try:
            (issued,) = await _register(uow, data.campaign_id, [item], hashes, [pin])
        except RosterRefused as exc:
            raise Conflict(
                "login {login} is taken", code="already_exists", field="login", login=login
            ) from exc
        emit(uow, "roster.registered", campaign_id=data.campaign_id, agent_id=issued.agent_id)
    return issued


async def import_roster(
    db: Database,
    campaign_id: int,
    data: bytes,
    *,
    actor: str,
    progress: Progress | None = None,
) -> list[IssuedPin]:
    """Import a roster file: every volunteer and their PIN, or ``RosterRefused``."""
    try:
        rows = read_roster(data)
    except FileUnreadable as exc:
        raise RosterRefused([], N_("nothing imported: {reason}"), exc.reason) from exc
    async with db.read() as session:
        checked, refused = await check_rows(session, campaign_id, rows)
    if refused:
        raise RosterRefused(refused)
    if not checked:
        raise RosterRefused([], N_("nothing imported: the file has no volunteer"))
    pins = [new_pin(_pin_digits(db)) for _ in checked]
    hashes = await _hashes(pins, progress)
    async with db.unit_of_work() as uow:
        issued = await _register(uow, campaign_id, checked, hashes, pins)
        emit(
            uow,
            "roster.imported",
            campaign_id=campaign_id,
            data={"volunteers": len(issued), "actor": actor},
        )
    log.info("roster of campaign %s: %d volunteers imported by %s", campaign_id, len(issued), actor)
    return issued


async def reissue_pins(
    db: Database, site_id: int, *, everyone: bool, actor: str
) -> list[IssuedPin]:
    """New PINs for a site's volunteers (those without a login, or all): for a sheet.

    Old PINs stop working and the volunteers' sessions end. Audited by the
    ``roster.pins_issued`` event (who asked, for whom; never the PINs)."""
    async with db.read() as session:
        site = await get_site(session, site_id)
        stmt = (
            select(Agent, User)
            .outerjoin(User, User.agent_id == Agent.id)
            .where(Agent.site_id == site_id)
            .order_by(func.lower(Agent.display_name), Agent.id)
        )
        rows = [(a, u) for a, u in (await session.execute(stmt)).all() if everyone or u is None]
    pins = [new_pin(_pin_digits(db)) for _ in rows]
    hashes = await _hashes(pins, None)
    issued = []
    async with db.unit_of_work() as uow:
        taken = await _taken_logins(uow.session, site.campaign_id)
        for (agent, user), secret_hash, pin in zip(rows, hashes, pins, strict=True):
            if user is None:
                username = agent.login if agent.login not in taken else None
                username = username or _free_login(login_stem(agent.display_name), taken)
                taken.add(username)
                await create_user(
                    uow,
                    username=username,
                    display_name=agent.display_name,
                    role=Role.AGENT,
                    secret=pin,
                    secret_hash=secret_hash,
                    campaign_id=agent.campaign_id,
                    agent_id=agent.id,
                )
            else:
                username = user.username
                row = await uow.session.get(User, user.id)
                assert row is not None
                row.secret_hash = secret_hash
                await revoke_user(uow, user.id)
                # Every process drops its cached logins of the user.
                emit(
                    uow,
                    USER_CHANGED,
                    campaign_id=user.campaign_id,
                    data={"user_id": user.id, "role": user.role, "active": user.active},
                )
            issued.append(IssuedPin(agent.id, agent.display_name, site_id, username, pin))
        emit(
            uow,
            "roster.pins_issued",
            campaign_id=site.campaign_id,
            data={"site_id": site_id, "agent_ids": [i.agent_id for i in issued], "actor": actor},
        )
    log.info("PIN sheet of site %s: %d PINs issued by %s", site_id, len(issued), actor)
    return issued

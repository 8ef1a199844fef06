"""Users, logins, sessions and their revocation."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import enum
import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, Campaign, Site
from app.auth.models import AuthSession, LoginThrottle, User, WsTokenUse
from app.auth.secrets import DUMMY_HASH, hash_secret, new_token, token_digest, verify_secret
from app.db import Database, UnitOfWork, utcnow
from app.errors import AppError, Conflict, Invalid, NotFound
from app.outbox import emit
from app.settings import settings_of

log = logging.getLogger(__name__)

WS_TOKEN_SECONDS = 60
# The first lock of a (name, address) pair; each further one in a row doubles, up to a day.
LOCK_FIRST = dt.timedelta(minutes=15)
LOCK_MAX = dt.timedelta(hours=24)
# A pair with no attempt for this long starts afresh (longer than the longest lock, so
# waiting a lock out never wipes the back-off).
FORGIVE_AFTER = dt.timedelta(hours=48)
USER_CHANGED = "auth.user_changed"
SESSION_REVOKED = "auth.revoked"


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ORGANISER = "organiser"
    ADMIN = "admin"


class TooManyAttempts(AppError):
    status_code = 429
    code = "too_many_attempts"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind a cookie, a bearer token or a socket token."""

    user_id: int
    username: str
    role: Role
    campaign_id: int | None
    agent_id: int | None
    session_id: int
    csrf_token: str
    via_cookie: bool
    expires_at: dt.datetime | None = None  # the session's end (None: not known)
    session_public_id: str = ""  # names the session in websocket tokens
    # A supervisor scoped to one partner centre (docs/roster.md); None: the campaign.
    site_id: int | None = None
    language: str | None = None  # the user's own setting (app/i18n)
    campaign_language: str | None = None  # their campaign's default language


def _pin_min_digits(uow: UnitOfWork, given: int | None) -> int:
    if given is not None:
        return given
    settings = settings_of(uow.db)
    return settings.pin_min_digits


def check_secret_strength(role: Role, secret: str, pin_min_digits: int = 6) -> None:
    if role == Role.AGENT:
        if not re.fullmatch(rf"[0-9]{{{pin_min_digits},8}}", secret):
            raise Invalid(
                "a volunteer PIN is {pin_min_digits} to 8 digits",
                field="secret",
                pin_min_digits=pin_min_digits,
            )
    elif len(secret) < 10:
        raise Invalid("a staff password has at least 10 characters", field="secret")


def _check_ties(
    role: Role, campaign_id: int | None, agent_id: int | None, site_id: int | None = None
) -> None:
    if role in (Role.AGENT, Role.SUPERVISOR) and campaign_id is None:
        raise Invalid("a {role} belongs to a campaign", field="campaign_id", role=role)
    if role == Role.AGENT and agent_id is None:
        raise Invalid("a volunteer login is tied to an agent", field="agent_id")
    if site_id is not None and role != Role.SUPERVISOR:
        raise Invalid("only a supervisor is scoped to a site", field="site_id")


async def _check_site(session: AsyncSession, campaign_id: int | None, site_id: int | None) -> None:
    if site_id is None:
        return
    site = await session.get(Site, site_id)
    if site is None or site.campaign_id != campaign_id:
        raise Invalid("site must be a site of the login's campaign", field="site_id")


async def _check_tied_rows(
    session: AsyncSession,
    campaign_id: int | None,
    agent_id: int | None,
    *,
    user_id: int | None = None,
    changed: frozenset[str] = frozenset({"campaign_id", "agent_id"}),
) -> None:
    """The campaign and agent a login names exist and agree: a login of one campaign
    never acts as another campaign's agent (it would steer that agent's calls and see
    its callers). ``changed`` names the fields being set, so the refusal names the one
    at fault."""
    if campaign_id is not None and await session.get(Campaign, campaign_id) is None:
        raise Invalid(
            "campaign {campaign_id} not found", field="campaign_id", campaign_id=campaign_id
        )
    if agent_id is None:
        return
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise Invalid("agent {agent_id} not found", field="agent_id", agent_id=agent_id)
    if agent.campaign_id != campaign_id:
        raise Invalid(
            "agent {agent_id} belongs to another campaign than the login's",
            code="agent_of_another_campaign",
            field="agent_id" if "agent_id" in changed else "campaign_id",
            agent_id=agent_id,
        )
    other = await session.execute(
        select(User.id).where(User.agent_id == agent_id, User.id != (user_id or -1))
    )
    if other.first() is not None:
        raise Conflict(
            "another user already acts as this agent", code="already_exists", field="agent_id"
        )


async def create_user(
    uow: UnitOfWork,
    *,
    username: str,
    display_name: str,
    role: Role,
    secret: str,
    campaign_id: int | None = None,
    agent_id: int | None = None,
    pin_min_digits: int | None = None,
    site_id: int | None = None,
    secret_hash: str | None = None,
) -> User:
    """A new login. ``secret_hash``: the secret hashed already (off the event loop, as
    the roster import does for hundreds of PINs at once)."""
    check_secret_strength(role, secret, _pin_min_digits(uow, pin_min_digits))
    _check_ties(role, campaign_id, agent_id, site_id)
    await _check_tied_rows(uow.session, campaign_id, agent_id)
    await _check_site(uow.session, campaign_id, site_id)
    user = User(
        username=username,
        display_name=display_name,
        role=role.value,
        secret_hash=secret_hash or hash_secret(secret),
        campaign_id=campaign_id,
        agent_id=agent_id,
        site_id=site_id,
    )
    uow.session.add(user)
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "user {username} already exists",
            code="already_exists",
            field="username",
            username=username,
        ) from exc
    emit(uow, "user.created", campaign_id=campaign_id, data={"user_id": user.id, "role": role})
    return user


async def update_user(
    uow: UnitOfWork, user_id: int, changes: dict[str, Any], *, pin_min_digits: int | None = None
) -> User:
    """Change a user (``display_name``, ``role``, ``campaign_id``, ``agent_id``,
    ``active``, ``secret``); every process drops its cached logins of the user."""
    user = await uow.session.get(User, user_id)
    if user is None:
        raise NotFound("user {user_id} not found", field="user_id", user_id=user_id)
    role = Role(changes.get("role", user.role))
    campaign_id = changes.get("campaign_id", user.campaign_id)
    agent_id = changes.get("agent_id", user.agent_id)
    site_id = changes.get("site_id", user.site_id)
    _check_ties(role, campaign_id, agent_id, site_id)
    if "site_id" in changes or "campaign_id" in changes:
        await _check_site(uow.session, campaign_id, site_id)
    if "campaign_id" in changes or "agent_id" in changes:
        await _check_tied_rows(
            uow.session,
            campaign_id,
            agent_id,
            user_id=user.id,
            changed=frozenset(changes) & {"campaign_id", "agent_id"},
        )
    secret = changes.get("secret")
    if secret is not None:
        check_secret_strength(role, secret, _pin_min_digits(uow, pin_min_digits))
        user.secret_hash = await asyncio.to_thread(hash_secret, secret)
    user.role, user.campaign_id, user.agent_id = role.value, campaign_id, agent_id
    user.site_id = site_id
    if "display_name" in changes:
        user.display_name = changes["display_name"]
    if "active" in changes:
        user.active = bool(changes["active"])
    if "language" in changes:
        user.language = changes["language"]
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "another user already acts as this agent", code="already_exists", field="agent_id"
        ) from exc
    emit(
        uow,
        USER_CHANGED,
        campaign_id=user.campaign_id,
        data={"user_id": user.id, "role": user.role, "active": user.active},
    )
    if not user.active:
        await revoke_user(uow, user.id)  # and closes the user's screens
    return user


# --- logins ------------------------------------------------------------------------------


def lock_duration(lockouts: int) -> dt.timedelta:
    """How long the ``lockouts``-th lock in a row lasts: 15 min, 30 min, 1 h ... 1 day."""
    doublings = min(max(lockouts - 1, 0), 16)  # past a day already; keeps the number small
    return min(LOCK_FIRST * (1 << doublings), LOCK_MAX)


def _insert(uow: UnitOfWork) -> Any:
    return pg_insert if uow.db.is_postgres else sqlite_insert


async def _take_attempt(
    uow: UnitOfWork, username: str, client: str, max_failures: int, now: dt.datetime
) -> tuple[int, int] | None:
    """Count one check against (name, address) before the secret is checked.

    One statement, so concurrent logins (any number of processes) cannot both read
    "4 failures" and both go on: the row is locked by the first, and the condition is
    checked again on the row it left. Returns (attempts, lockouts), or None when
    the pair is locked or its round's checks are all taken.
    """
    t = LoginThrottle.__table__.c
    forgiven = t.last_at < now - FORGIVE_AFTER
    stmt = _insert(uow)(LoginThrottle).values(
        username=username, client=client, attempts=1, lockouts=0, locked_until=None, last_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.username, t.client],
        set_={
            # A lock that has run out, or a long quiet spell, starts a new round.
            "attempts": case((or_(t.locked_until.is_not(None), forgiven), 1), else_=t.attempts + 1),
            "lockouts": case((forgiven, 0), else_=t.lockouts),
            "locked_until": None,
            "last_at": now,
        },
        where=or_(
            t.locked_until <= now,
            forgiven,
            and_(t.locked_until.is_(None), t.attempts < max_failures),
        ),
    ).returning(t.attempts, t.lockouts)
    row = (await uow.session.execute(stmt)).first()
    return (int(row[0]), int(row[1])) if row else None


async def _locked_until(session: AsyncSession, username: str, client: str) -> dt.datetime | None:
    stmt = select(LoginThrottle.locked_until).where(
        LoginThrottle.username == username, LoginThrottle.client == client
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _failed(
    uow: UnitOfWork,
    username: str,
    client: str,
    attempts: int,
    lockouts: int,
    max_failures: int,
    now: dt.datetime,
) -> None:
    """A wrong secret: the round's last check locks the pair, for longer each time."""
    if attempts < max_failures:
        return
    t = LoginThrottle.__table__.c
    lock = lock_duration(lockouts + 1)
    await uow.session.execute(
        update(LoginThrottle)
        .where(t.username == username, t.client == client, t.locked_until.is_(None))
        .values(lockouts=lockouts + 1, locked_until=now + lock)
    )
    # Many of these for one name from many addresses is a guesser with many addresses.
    log.warning(
        "logins for %r from %s locked for %d min (%d wrong in a row, lock %d)",
        username,
        client,
        lock.total_seconds() // 60,
        max_failures,
        lockouts + 1,
    )
    # Rows of names nobody tried for days (typos, sprayed names) are kept no longer.
    await uow.session.execute(
        delete(LoginThrottle).where(
            t.last_at < now - FORGIVE_AFTER,
            or_(t.locked_until.is_(None), t.locked_until < now),
        )
    )


async def login(
    uow: UnitOfWork,
    *,
    username: str,
    secret: str,
    campaign_id: int | None,
    client: str,
    kind: str,
    hours: float,
    max_failures: int,
    now: dt.datetime | None = None,
) -> tuple[str, Principal] | None:
    """Check the name and secret; returns a new session token and who it is.

    Every check is counted against the pair (name, client address) first, in one
    conditional upsert (``_take_attempt``): past ``max_failures`` wrong secrets in a
    round the pair is refused with 429 whatever the secret, for 15 minutes, then
    twice as long after each further locked round, up to a day. A success clears
    the pair. A wrong name or secret returns None with the count kept in the unit
    of work (so the caller commits it). Volunteers must name their campaign.
    """
    now = now or utcnow()
    session = uow.session
    # A mistyped campaign number is a slip, not a guess: said as such and not counted
    # (campaign numbers are handed out with the time slots; naming one reveals nothing).
    if campaign_id is not None and await session.get(Campaign, campaign_id) is None:
        raise Invalid(
            "there is no campaign {campaign_id}: check the number given with your time slot",
            field="campaign_id",
            code="unknown_campaign",
            campaign_id=campaign_id,
        )
    taken = await _take_attempt(uow, username, client, max_failures, now)
    if taken is None:
        until = await _locked_until(session, username, client)
        wait = max(1, -(-int(((until or now + LOCK_FIRST) - now).total_seconds()) // 60))
        raise TooManyAttempts(
            "too many failed logins for this name from this address; try again in {wait} min",
            field="username",
            wait=wait,
        )
    attempts, lockouts = taken
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    # argon2 off the event loop; a wrong name costs as much as a wrong secret.
    ok = await asyncio.to_thread(verify_secret, user.secret_hash if user else DUMMY_HASH, secret)
    if ok and user is not None and user.role == Role.AGENT and campaign_id is None and user.active:
        # The right PIN without the campaign number: told only once the PIN is right
        # (so it says nothing of a name to a guesser), and the attempt taken above is
        # rolled back with the refusal, so it does not count toward the lockout.
        raise Invalid(
            "volunteers sign in with their campaign number too",
            field="campaign_id",
            code="campaign_required",
        )
    if user is not None and user.role == Role.AGENT and user.campaign_id != campaign_id:
        ok = False
    if user is None or not ok or not user.active:
        await _failed(uow, username, client, attempts, lockouts, max_failures, now)
        return None
    await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.username == username, LoginThrottle.client == client
        )
    )
    token = new_token()
    row = AuthSession(
        token_sha256=token_digest(token),
        public_id=secrets.token_urlsafe(32),
        user_id=user.id,
        kind=kind,
        csrf_token=new_token(),
        created_at=now,
        expires_at=now + dt.timedelta(hours=hours),
    )
    session.add(row)
    await session.flush()
    return token, _principal(user, row)


# --- sessions ----------------------------------------------------------------------------


def _principal(user: User, row: AuthSession, campaign_language: str | None = None) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        campaign_id=user.campaign_id,
        agent_id=user.agent_id,
        session_id=row.id,
        csrf_token=row.csrf_token,
        via_cookie=row.kind == "cookie",
        expires_at=row.expires_at,
        session_public_id=row.public_id,
        site_id=user.site_id,
        language=user.language,
        campaign_language=campaign_language,
    )


def _live_session(now: dt.datetime) -> Any:
    return (
        select(User, AuthSession, Campaign.language)
        .join(AuthSession, AuthSession.user_id == User.id)
        .outerjoin(Campaign, Campaign.id == User.campaign_id)
        .where(
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
            User.active.is_(True),
        )
    )


async def principal_for_session(session: AsyncSession, session_id: int) -> Principal | None:
    """The principal of a live session (not expired, not revoked, user active)."""
    stmt = _live_session(utcnow()).where(AuthSession.id == session_id)
    row = (await session.execute(stmt)).first()
    return _principal(row[0], row[1], row[2]) if row else None


async def principal_for_digest(
    session: AsyncSession, digest: str, now: dt.datetime | None = None
) -> Principal | None:
    """The principal of the live session whose token has this SHA-256 digest (one query)."""
    stmt = _live_session(now or utcnow()).where(AuthSession.token_sha256 == digest)
    row = (await session.execute(stmt)).first()
    return _principal(row[0], row[1], row[2]) if row else None


async def principal_for_token(session: AsyncSession, token: str) -> Principal | None:
    return await principal_for_digest(session, token_digest(token))


async def revoke(uow: UnitOfWork, session_id: int) -> None:
    row = await uow.session.get(AuthSession, session_id)
    if row is None or row.revoked_at is not None:
        return
    row.revoked_at = utcnow()
    user = await uow.session.get(User, row.user_id)
    # Closes the session's screens (app/realtime/hub.py) and drops it from every
    # process's principal cache (app/auth/cache.py).
    emit(
        uow,
        SESSION_REVOKED,
        campaign_id=user.campaign_id if user else None,
        agent_id=user.agent_id if user else None,
        data={"session_id": session_id, "user_id": row.user_id},
    )


async def revoke_user(uow: UnitOfWork, user_id: int) -> int:
    stmt = select(AuthSession.id).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    ids = list((await uow.session.execute(stmt)).scalars())
    for session_id in ids:
        await revoke(uow, session_id)
    return len(ids)


# --- one-handshake websocket tokens ------------------------------------------------------


@dataclass(frozen=True)
class WsClaims:
    session_public_id: str
    jti: str  # this token's own random id, spent by its first handshake
    expires_at: dt.datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(secret_key: str, payload: str) -> str:
    return _b64(hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).digest())


def issue_ws_token(secret_key: str, session_public_id: str, now: dt.datetime) -> str:
    """A signed token for one websocket handshake: the session's public id, a random
    token id and an expiry. No database write: the handshake spends the token id."""
    claims = {
        "sid": session_public_id,
        "jti": secrets.token_hex(16),
        "exp": int(now.timestamp()) + WS_TOKEN_SECONDS,
    }
    payload = _b64(json.dumps(claims).encode())
    return f"{payload}.{_sign(secret_key, payload)}"


def read_ws_token(secret_key: str, token: str, now: dt.datetime) -> WsClaims | None:
    """The claims of a well-signed, unexpired token, else None (spent or not)."""
    payload, _, signature = token.partition(".")
    if not signature or not hmac.compare_digest(signature, _sign(secret_key, payload)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        sid, jti, expires = str(data["sid"]), str(data["jti"]), int(data["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires < now.timestamp() or not sid or not re.fullmatch(r"[0-9a-f]{32}", jti):
        return None
    return WsClaims(sid, jti, dt.datetime.fromtimestamp(expires, dt.UTC))


async def consume_ws_token(
    db: Database, secret_key: str, token: str, now: dt.datetime | None = None
) -> Principal | None:
    """Spend a websocket token: the principal of its live session, on its first use only.

    Spending is one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on the token id:
    of any number of handshakes with one token, in any number of processes, exactly
    one inserts the row (the unique key decides, not a read before the write).
    """
    now = now or utcnow()
    claims = read_ws_token(secret_key, token, now)
    if claims is None:
        return None
    async with db.unit_of_work() as uow:
        table = WsTokenUse.__table__
        spend = (
            _insert(uow)(WsTokenUse)
            .values(jti=claims.jti, expires_at=claims.expires_at)
            .on_conflict_do_nothing(index_elements=[table.c.jti])
            .returning(table.c.jti)
        )
        if (await uow.session.execute(spend)).first() is None:
            return None  # spent already
        # A spent token older than its expiry is refused by its signature anyway.
        if secrets.randbelow(100) == 0:
            await purge_spent_ws_tokens(uow, now)
        stmt = _live_session(now).where(AuthSession.public_id == claims.session_public_id)
        row = (await uow.session.execute(stmt)).first()
        return _principal(row[0], row[1], row[2]) if row else None


async def purge_spent_ws_tokens(uow: UnitOfWork, now: dt.datetime) -> None:
    """Forget spent tokens that have expired (their signature refuses them now)."""
    await uow.session.execute(delete(WsTokenUse).where(WsTokenUse.expires_at < now))

"""Users, logins, sessions and their revocation."""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.auth.models import AuthSession, LoginFailure, User
from app.auth.secrets import DUMMY_HASH, hash_secret, new_token, token_digest, verify_secret
from app.db import UnitOfWork, utcnow
from app.errors import AppError, Conflict, Invalid
from app.realtime.outbox import emit

FAILURE_WINDOW = dt.timedelta(minutes=15)
CLIENT_MAX_FAILURES = 50
WS_TOKEN_SECONDS = 60


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


_PIN = re.compile(r"^[0-9]{4,8}$")


def check_secret_strength(role: Role, secret: str) -> None:
    if role == Role.AGENT:
        if not _PIN.match(secret):
            raise Invalid("a volunteer PIN is 4 to 8 digits", field="secret")
    elif len(secret) < 10:
        raise Invalid("a staff password has at least 10 characters", field="secret")


async def create_user(
    uow: UnitOfWork,
    *,
    username: str,
    display_name: str,
    role: Role,
    secret: str,
    campaign_id: int | None = None,
    agent_id: int | None = None,
) -> User:
    check_secret_strength(role, secret)
    if role in (Role.AGENT, Role.SUPERVISOR) and campaign_id is None:
        raise Invalid(f"a {role} belongs to a campaign", field="campaign_id")
    if role == Role.AGENT and agent_id is None:
        raise Invalid("a volunteer login is tied to an agent", field="agent_id")
    user = User(
        username=username,
        display_name=display_name,
        role=role.value,
        secret_hash=hash_secret(secret),
        campaign_id=campaign_id,
        agent_id=agent_id,
    )
    uow.session.add(user)
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"user {username} already exists", code="already_exists", field="username"
        ) from exc
    emit(uow, "user.created", campaign_id=campaign_id, data={"user_id": user.id, "role": role})
    return user


async def _recent_failures(
    session: AsyncSession, column: InstrumentedAttribute[str], value: str
) -> int:
    since = utcnow() - FAILURE_WINDOW
    stmt = select(func.count()).where(column == value, LoginFailure.at >= since)
    return int((await session.execute(stmt)).scalar_one())


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
) -> tuple[str, Principal] | None:
    """Check the name and secret; returns a new session token and who it is.

    A wrong name or secret returns None and records the failure (so the caller
    commits it). Volunteers must name their campaign. Failures are counted per
    name and per client address; past the limit the answer is 429 whatever the
    secret.
    """
    session = uow.session
    if (
        await _recent_failures(session, LoginFailure.username, username) >= max_failures
        or await _recent_failures(session, LoginFailure.client, client) >= CLIENT_MAX_FAILURES
    ):
        raise TooManyAttempts("too many failed logins; wait 15 minutes", field="username")
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    ok = verify_secret(user.secret_hash if user else DUMMY_HASH, secret)
    if user is not None and user.role == Role.AGENT and user.campaign_id != campaign_id:
        ok = False
    if user is None or not ok or not user.active:
        session.add(LoginFailure(username=username, client=client, at=utcnow()))
        return None
    token = new_token()
    row = AuthSession(
        token_sha256=token_digest(token),
        user_id=user.id,
        kind=kind,
        csrf_token=new_token(),
        created_at=utcnow(),
        expires_at=utcnow() + dt.timedelta(hours=hours),
    )
    session.add(row)
    await session.flush()
    return token, _principal(user, row)


def _principal(user: User, row: AuthSession) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        campaign_id=user.campaign_id,
        agent_id=user.agent_id,
        session_id=row.id,
        csrf_token=row.csrf_token,
        via_cookie=row.kind == "cookie",
    )


async def principal_for_session(session: AsyncSession, session_id: int) -> Principal | None:
    """The principal of a live session (not expired, not revoked, user active)."""
    stmt = (
        select(User, AuthSession)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(
            AuthSession.id == session_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > utcnow(),
            User.active.is_(True),
        )
    )
    row = (await session.execute(stmt)).first()
    return _principal(row[0], row[1]) if row else None


async def principal_for_token(session: AsyncSession, token: str) -> Principal | None:
    stmt = select(AuthSession.id).where(AuthSession.token_sha256 == token_digest(token))
    session_id = (await session.execute(stmt)).scalar_one_or_none()
    if session_id is None:
        return None
    return await principal_for_session(session, session_id)


async def revoke(uow: UnitOfWork, session_id: int) -> None:
    row = await uow.session.get(AuthSession, session_id)
    if row is None or row.revoked_at is not None:
        return
    row.revoked_at = utcnow()
    user = await uow.session.get(User, row.user_id)
    emit(
        uow,
        "auth.revoked",
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


# --- short-lived websocket tokens ------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_ws_token(secret_key: str, principal: Principal, now: dt.datetime) -> str:
    """A token for one websocket handshake: the session id and an expiry, signed."""
    payload = _b64(
        json.dumps(
            {"sid": principal.session_id, "exp": int(now.timestamp()) + WS_TOKEN_SECONDS}
        ).encode()
    )
    signature = _b64(hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def read_ws_token(secret_key: str, token: str, now: dt.datetime) -> int | None:
    """The session id in a valid, unexpired token, else None."""
    payload, _, signature = token.partition(".")
    expected = _b64(hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        session_id, expires = int(data["sid"]), int(data["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    return session_id if expires >= now.timestamp() else None

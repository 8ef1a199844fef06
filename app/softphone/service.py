"""Softphone credentials: issued per login session through the telephony port, and
withdrawn at logout, revocation or expiry.

A volunteer without a seat row is bridged at ``agent:<id>`` (the ``bridge``
command's ``seat``); the platform reaches that seat at the endpoint ``agent-<id>``,
which is what the volunteer's browser registers as. A volunteer signed in at a
seat row has a desk phone there: calls ring on it, and no softphone is issued.

Nothing of the credentials is stored here. The user name is derived from the
login session (an HMAC of its id under the server's secret key: unguessable,
different for every session, and found again at logout without a table); the
password is random at every request and only the platform keeps it, through
``provision_softphone`` (a new one replaces the session's previous one).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from app.acd.models import Agent
from app.auth.models import AuthSession, User
from app.auth.service import SESSION_REVOKED, Principal, Role
from app.background import BackgroundTask
from app.db import Database, utcnow
from app.errors import AppError, Conflict, Forbidden, NotFound
from app.i18n import N_
from app.settings import Settings
from app.telephony.port import TelephonyPlatform, softphone_endpoint

log = logging.getLogger(__name__)

# How often this process withdraws softphones whose credentials or session ran out.
EXPIRY_SWEEP_SECONDS = 30.0


class SoftphoneUnavailable(AppError):
    status_code = 503
    code = "softphone_unavailable"


@dataclass(frozen=True)
class Credentials:
    ws_url: str
    sip_uri: str
    endpoint: str
    username: str
    password: str
    expires_at: dt.datetime
    ice_servers: list[dict[str, str]]


def username_for_session(secret_key: str, session_id: int) -> str:
    digest = hmac.new(
        secret_key.encode(), f"softphone-user:{session_id}".encode(), hashlib.sha256
    ).hexdigest()
    return f"sp{digest[:30]}"


def sip_domain(settings: Settings) -> str:
    return settings.softphone_sip_domain or urlsplit(settings.softphone_ws_url).hostname or ""


def ice_servers(settings: Settings) -> list[dict[str, str]]:
    return [{"urls": u.strip()} for u in settings.softphone_ice_servers.split(",") if u.strip()]


class Softphones(BackgroundTask):
    """Issues and withdraws one process's softphone credentials (``app.state.softphones``)."""

    def __init__(self, settings: Settings, platform: TelephonyPlatform | None) -> None:
        super().__init__()
        self.settings = settings
        self.platform = platform
        # (endpoint, username) -> end, for what this process issued: the expiry sweep.
        self._issued: dict[tuple[str, str], dt.datetime] = {}
        self._db: Database | None = None

    @property
    def offered(self) -> bool:
        return bool(self.settings.softphone_ws_url)

    async def issue(self, db: Database, principal: Principal) -> Credentials:
        """Credentials for the volunteer of this login session, at their own seat."""
        if principal.role != Role.AGENT or principal.agent_id is None:
            raise Forbidden("softphone credentials are for a volunteer's session")
        if not self.offered:
            raise NotFound(
                "no softphone on this hotline: calls ring on desk phones", code="softphone_off"
            )
        async with db.read() as session:
            agent = await session.get(Agent, principal.agent_id)
        if agent is None:
            raise NotFound("agent {agent_id} not found", agent_id=principal.agent_id)
        if agent.seat_id is not None:
            raise Conflict(
                "you are signed in at a seat with a desk phone: calls ring on it",
                code="at_desk_phone",
            )
        now = utcnow()
        expires_at = now + dt.timedelta(hours=self.settings.softphone_hours)
        if principal.expires_at is not None:
            expires_at = min(expires_at, principal.expires_at)
        endpoint = softphone_endpoint(agent.id)
        username = username_for_session(self.settings.secret_key, principal.session_id)
        password = secrets.token_urlsafe(24)
        if self.platform is not None:
            try:
                await self.platform.provision_softphone(endpoint, username, password)
            except Exception as exc:
                log.warning("softphone for %s not provisioned: %r", endpoint, exc)
                raise SoftphoneUnavailable(
                    N_("the telephone system cannot take the softphone now; try again shortly")
                ) from exc
        self._issued[(endpoint, username)] = expires_at
        domain = sip_domain(self.settings)
        return Credentials(
            ws_url=self.settings.softphone_ws_url,
            sip_uri=f"sip:{endpoint}@{domain}",
            endpoint=endpoint,
            username=username,
            password=password,
            expires_at=expires_at,
            ice_servers=ice_servers(self.settings),
        )

    async def revoke(self, endpoint: str, username: str) -> None:
        self._issued.pop((endpoint, username), None)
        if self.platform is None:
            return
        try:
            await self.platform.revoke_softphone(endpoint, username)
        except Exception:
            # The credentials still end with their session's: said, not raised into a logout.
            log.exception("softphone %s of %s not withdrawn", username, endpoint)

    async def on_events(self, events: list[Any]) -> None:
        """``db.on_events``: a login session ended (logout, revocation, user switched
        off) withdraws its softphone, in the process that committed it."""
        if not self.offered:
            return
        for event in events:
            if event.type != SESSION_REVOKED or event.agent_id is None:
                continue
            session_id = (event.data or {}).get("session_id")
            if isinstance(session_id, int):
                username = username_for_session(self.settings.secret_key, session_id)
                await self.revoke(softphone_endpoint(event.agent_id), username)

    async def revoke_expired(self, now: dt.datetime | None = None) -> int:
        """Withdraw what this process issued that has run out; how many."""
        now = now or utcnow()
        ended = [key for key, end in self._issued.items() if end <= now]
        for endpoint, username in ended:
            await self.revoke(endpoint, username)
        return len(ended)

    async def revoke_ended_sessions(
        self, db: Database, since: dt.datetime, now: dt.datetime | None = None
    ) -> int:
        """Withdraw the softphones of the volunteers' login sessions that ran out in
        (``since``, ``now``], whichever process issued them (read from the sessions
        table, so a restart forgets none); how many sessions."""
        now = now or utcnow()
        stmt = (
            select(AuthSession.id, User.agent_id)
            .join(User, User.id == AuthSession.user_id)
            .where(
                AuthSession.expires_at > since,
                AuthSession.expires_at <= now,
                AuthSession.revoked_at.is_(None),  # a revoked one went at its revocation
                User.agent_id.is_not(None),
            )
        )
        async with db.read() as session:
            ended = (await session.execute(stmt)).all()
        for session_id, agent_id in ended:
            if agent_id is None:
                continue  # not a volunteer's (the query keeps none; said for the types)
            username = username_for_session(self.settings.secret_key, session_id)
            await self.revoke(softphone_endpoint(agent_id), username)
        return len(ended)

    def start(self, db: Database) -> None:
        if self.offered:
            self._db = db
            self._launch(self._sweep, "softphone-expiry")

    async def _sweep(self) -> None:
        assert self._db is not None
        # At start, the sessions that ended while no process swept: back as far as a
        # softphone's longest life (any older one had run out already).
        since = utcnow() - dt.timedelta(hours=self.settings.softphone_hours)
        while True:
            now = utcnow()
            await self.revoke_ended_sessions(self._db, since, now)
            await self.revoke_expired(now)
            since = now
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)

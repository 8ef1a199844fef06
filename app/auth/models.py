"""Users, their login sessions, login throttles and spent websocket tokens."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    # Argon2 hash of the password (staff) or the short PIN (volunteers).
    secret_hash: Mapped[str] = mapped_column(String(200))
    # Volunteers and supervisors belong to one campaign; organisers and admins may not.
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=True
    )
    agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    # A supervisor scoped to one partner centre sees and steers its volunteers and
    # seats only (docs/roster.md); None: the whole campaign.
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL"), nullable=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The language the user reads (``fr``, ``en``); None: their browser's, else the
    # campaign's (app/i18n/negotiation.py).
    language: Mapped[str | None] = mapped_column(String(8), nullable=True, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthSession(Base):
    """A login: the cookie of a page or a bearer token of the API.

    Only a hash of the token is stored, so a database dump logs nobody in.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # How a websocket token names the session: random, so it cannot be guessed from
    # the sequential ``id`` (which a signed token once carried).
    public_id: Mapped[str] = mapped_column(String(43), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # cookie | bearer
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_auth_sessions_user", "user_id"),)


class LoginThrottle(Base):
    """Failed logins for one name from one client address, and its lockout.

    Keyed by both, so a stranger cannot lock a known name out from elsewhere and one
    busy address (a NAT) cannot lock everyone out. ``attempts`` counts the checks
    of the current round, taken *before* the secret is checked (see
    ``app.auth.service.login``); ``lockouts`` is how many rounds ended locked in a
    row, which doubles the next lock.
    """

    __tablename__ = "login_throttles"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_login_throttles_last_at", "last_at"),)


class WsTokenUse(Base):
    """A websocket token that has opened a socket: it opens no other."""

    __tablename__ = "ws_token_uses"

    jti: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_ws_token_uses_expires_at", "expires_at"),)

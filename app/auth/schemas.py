"""Bodies of the login and user API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.auth.service import Role
from app.cardguard import CardGuarded

Language = Literal["fr", "en"]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


class LoginIn(CardGuarded):
    model_config = ConfigDict(extra="forbid")
    username: Username
    secret: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    campaign_id: int | None = None
    mode: Literal["cookie", "bearer"] = "cookie"


class UserIn(CardGuarded):
    model_config = ConfigDict(extra="forbid")
    username: Username
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Role
    secret: Annotated[str, StringConstraints(min_length=4, max_length=200)]
    campaign_id: int | None = None
    agent_id: int | None = None
    # A supervisor scoped to one site of the campaign (docs/roster.md).
    site_id: int | None = None


class UserPatch(CardGuarded):
    """Fields to change; those left out stay. Every process drops the user's cached
    logins at once; their sessions stay open with the new role."""

    model_config = ConfigDict(extra="forbid")
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    role: Role | None = None
    secret: Annotated[str, StringConstraints(min_length=4, max_length=200)] | None = None
    campaign_id: int | None = None
    agent_id: int | None = None
    site_id: int | None = None
    active: bool | None = None
    language: Language | None = Field(
        default=None, description="the language the user reads; null: their browser's"
    )


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: str
    campaign_id: int | None
    agent_id: int | None
    site_id: int | None
    active: bool
    language: str | None = None


class MeOut(BaseModel):
    user_id: int
    username: str
    role: str
    campaign_id: int | None
    agent_id: int | None
    site_id: int | None = None
    csrf_token: str
    language: str | None = Field(default=None, description="the user's own language setting")


class LoginOut(MeOut):
    token: str | None = None
    expires_at: dt.datetime


class WsTokenOut(BaseModel):
    token: str
    expires_in: int

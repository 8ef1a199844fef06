"""Login, logout, who am I, websocket tokens, users and revocation."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from app.acd.models import Agent
from app.auth import service
from app.auth.addresses import client_address
from app.auth.deps import (
    SESSION_COOKIE,
    check_campaign,
    check_site,
    current_principal,
    require,
)
from app.auth.models import AuthSession, User
from app.auth.schemas import LoginIn, LoginOut, MeOut, UserIn, UserOut, UserPatch, WsTokenOut
from app.auth.service import Principal, Role
from app.db import Database, utcnow
from app.deps import get_app_settings, get_db
from app.errors import Invalid, NotFound, Unauthorized, error_responses
from app.settings import Settings

router = APIRouter(tags=["auth"])
DB = Annotated[Database, Depends(get_db)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]


def _me(principal: Principal) -> MeOut:
    return MeOut(
        user_id=principal.user_id,
        username=principal.username,
        role=principal.role,
        campaign_id=principal.campaign_id,
        agent_id=principal.agent_id,
        site_id=principal.site_id,
        csrf_token=principal.csrf_token,
        language=principal.language,
    )


@router.post("/auth/login", response_model=LoginOut, responses=error_responses(429))
async def auth_login(
    body: LoginIn, request: Request, response: Response, db: DB, settings: AppSettings
) -> LoginOut:
    client = client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        settings.trusted_proxies,
    )
    async with db.unit_of_work() as uow:
        result = await service.login(
            uow,
            username=body.username,
            secret=body.secret,
            campaign_id=body.campaign_id,
            client=client,
            kind=body.mode,
            hours=settings.session_hours,
            max_failures=settings.login_max_failures,
        )
    if result is None:  # the failure is committed and counts towards the limit
        raise Unauthorized("wrong name or secret", field="username", code="bad_credentials")
    token, principal = result
    expires_at = utcnow() + dt.timedelta(hours=settings.session_hours)
    if body.mode == "cookie":
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(settings.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=settings.cookie_secure,
            path="/",
        )
    return LoginOut(
        **_me(principal).model_dump(),
        token=token if body.mode == "bearer" else None,
        expires_at=expires_at,
    )


@router.post("/auth/logout", status_code=204)
async def auth_logout(
    response: Response, db: DB, principal: Annotated[Principal, Depends(current_principal)]
) -> Response:
    async with db.unit_of_work() as uow:
        await service.revoke(uow, principal.session_id)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response


@router.get("/auth/me", response_model=MeOut)
async def auth_me(principal: Annotated[Principal, Depends(current_principal)]) -> MeOut:
    return _me(principal)


@router.post("/auth/ws-token", response_model=WsTokenOut)
async def auth_ws_token(
    settings: AppSettings, principal: Annotated[Principal, Depends(current_principal)]
) -> WsTokenOut:
    token = service.issue_ws_token(settings.secret_key, principal.session_public_id, utcnow())
    return WsTokenOut(token=token, expires_in=service.WS_TOKEN_SECONDS)


@router.post("/users", status_code=201, response_model=UserOut)
async def create_user(body: UserIn, db: DB, _: Annotated[Principal, Depends(require())]) -> User:
    async with db.unit_of_work() as uow:
        return await service.create_user(
            uow,
            username=body.username,
            display_name=body.display_name,
            role=body.role,
            secret=body.secret,
            campaign_id=body.campaign_id,
            agent_id=body.agent_id,
            site_id=body.site_id,
        )


@router.patch("/users/{user_id}", response_model=UserOut, summary="Change a user")
async def update_user(
    user_id: int, body: UserPatch, db: DB, _: Annotated[Principal, Depends(require())]
) -> User:
    changes = body.model_dump(exclude_unset=True)
    for field in ("display_name", "role", "secret", "active"):
        if field in changes and changes[field] is None:
            raise Invalid("{name} cannot be null", field=field, name=field)
    async with db.unit_of_work() as uow:
        return await service.update_user(uow, user_id, changes)


@router.get("/users", response_model=list[UserOut])
async def list_users(db: DB, _: Annotated[Principal, Depends(require())]) -> list[User]:
    async with db.read() as session:
        return list((await session.execute(select(User).order_by(User.id))).scalars())


@router.post("/users/{user_id}/revoke", summary="Log a user out everywhere")
async def revoke_user(
    user_id: int, db: DB, principal: Annotated[Principal, Depends(require(Role.SUPERVISOR))]
) -> dict[str, int]:
    async with db.unit_of_work() as uow:
        user = await uow.session.get(User, user_id)
        if user is None:
            raise NotFound("user {user_id} not found", field="user_id", user_id=user_id)
        if principal.role != Role.ADMIN:
            check_campaign(principal, user.campaign_id or -1)
            if principal.site_id is not None:
                # A site-scoped supervisor ends only its own site's volunteers' sessions.
                agent = await uow.session.get(Agent, user.agent_id) if user.agent_id else None
                check_site(principal, agent.site_id if agent else None)
        revoked = await service.revoke_user(uow, user_id)
    return {"revoked_sessions": revoked}


@router.get("/auth/sessions", summary="Live sessions (admin)")
async def list_sessions(
    db: DB, _: Annotated[Principal, Depends(require())]
) -> list[dict[str, object]]:
    async with db.read() as session:
        stmt = select(AuthSession).where(
            AuthSession.revoked_at.is_(None), AuthSession.expires_at > utcnow()
        )
        rows = (await session.execute(stmt)).scalars()
        return [
            {"id": r.id, "user_id": r.user_id, "kind": r.kind, "expires_at": r.expires_at}
            for r in rows
        ]

"""Who is calling, and whether their role may: FastAPI dependencies.

The API takes a bearer token; pages use an HttpOnly SameSite cookie, and then
every state-changing request must also carry the session's CSRF token in the
``X-CSRF-Token`` header (a page script reads it from ``/auth/me``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from app.auth.cache import PrincipalCache
from app.auth.secrets import token_digest
from app.auth.service import Principal, Role, principal_for_digest
from app.db import Database
from app.deps import get_db
from app.errors import Forbidden, Unauthorized

SESSION_COOKIE = "pl_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def current_principal(
    request: Request, db: Annotated[Database, Depends(get_db)]
) -> Principal:
    token = bearer_token(request)
    via_cookie = token is None
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthorized("log in first", code="not_authenticated")
    principal = await _principal_for(request, db, token_digest(token))
    if principal is None:
        raise Unauthorized("the session has expired or was revoked", code="session_invalid")
    # The reply's language follows the user's setting, then their campaign's (app/errors.py).
    request.state.user_language = principal.language
    request.state.campaign_language = principal.campaign_language
    csrf_needed = via_cookie and request.method not in SAFE_METHODS
    if csrf_needed and request.headers.get(CSRF_HEADER) != principal.csrf_token:
        raise Forbidden("missing or wrong CSRF token", field=CSRF_HEADER, code="csrf")
    return principal


async def _principal_for(request: Request, db: Database, digest: str) -> Principal | None:
    """From the process's cache when fresh, else from the database (then cached)."""
    cache: PrincipalCache | None = getattr(request.app.state, "principal_cache", None)
    if cache is not None:
        principal = cache.get(digest)
        if principal is not None:
            return principal
    generation = cache.generation if cache is not None else 0
    async with db.read() as session:
        principal = await principal_for_digest(session, digest)
    if principal is not None and cache is not None:
        cache.put(digest, principal, generation=generation)
    return principal


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting the given roles (admins always)."""
    allowed = {Role.ADMIN, *roles}

    async def _check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden("a {role} may not do this", role=principal.role)
        return principal

    return _check


def check_campaign(principal: Principal, campaign_id: int) -> None:
    """Supervisors and volunteers act within their own campaign only."""
    if principal.role in (Role.ADMIN, Role.ORGANISER):
        return
    if principal.campaign_id != campaign_id:
        raise Forbidden("this belongs to another campaign")


def check_agent(principal: Principal, agent_id: int, campaign_id: int) -> None:
    """A volunteer acts on their own agent; a supervisor on their campaign's agents."""
    if principal.role == Role.AGENT:
        if principal.agent_id != agent_id:
            raise Forbidden("volunteers act on their own session only")
        return
    if principal.role == Role.ORGANISER:
        raise Forbidden("organisers do not act on agents")
    check_campaign(principal, campaign_id)


def site_scope(principal: Principal) -> int | None:
    """The site a supervisor is scoped to (docs/roster.md); None: the whole campaign."""
    return principal.site_id if principal.role == Role.SUPERVISOR else None


def check_site(principal: Principal, site_id: int | None) -> None:
    """A site-scoped supervisor sees and steers its own site's volunteers and seats."""
    scope = site_scope(principal)
    if scope is not None and site_id != scope:
        raise Forbidden("this belongs to another site", code="other_site")

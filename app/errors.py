"""Typed errors and their JSON form ``{code, message, field}``.

Every refusal the API gives has this shape, so screens and integrators can act on
``code`` and show ``message``; ``field`` names the input at fault when there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.i18n import N_, translate
from app.i18n.negotiation import request_language
from app.i18n.validation import validation_message

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.responses import JSONResponse
    from starlette.routing import BaseRoute, Route

# The web framework is imported by the functions that answer requests, not here: a
# process that only raises and catches these errors (the command line, e.g.
# ``pledgeline export``) then starts without it (6 MB and 0.15 s of CPU less).

log = logging.getLogger(__name__)


class AppError(Exception):
    """A refusal. ``message`` is its message id: English text with ``{placeholders}``
    filled from ``params``, translated at the boundary (app/i18n); ``code`` and
    ``field`` are the stable contract and never translated."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None, **params: object
    ):
        self.message_id = message
        self.params = params
        # The English text (logs, the CLI, websocket refusals); the same as the reply's.
        self.message = translate("en", message, params)
        super().__init__(self.message)
        self.field = field
        if code is not None:
            self.code = code


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Invalid(AppError):
    status_code = 422
    code = "invalid"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class ErrorOut(BaseModel):
    """Every refusal's body (some add a key of their own, e.g. a rules file's ``problems``)."""

    code: str = Field(description="what went wrong, for programs: `not_found`, `card_number`...")
    message: str = Field(description="what went wrong, for people")
    field: str | None = Field(description="the input at fault (`note`, `items.0.amount_minor`)")


# The refusals the API documents, each once, with its body. The routers take them in
# app/main.py: a route's own ``responses=`` only adds a description or a refinement.
_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the body is not valid JSON (`malformed_json`), or a request the route cannot take",
    401: "no login, or a session that expired or was revoked; a webhook's signature is wrong",
    403: "the login's role or campaign may not do this; a cookie without its CSRF token",
    404: "no such record (or one outside the caller's reach)",
    409: "the record is not in a state that allows this, or the change clashes with another",
    413: "the body is larger than the route takes",
    422: "a field is missing, malformed, out of range or holds a card number; `field` says which",
    429: "too many failed logins for this name from this address: wait `Retry-After` seconds",
    503: "the database cannot be reached (`database_unreachable`, with `Retry-After`)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these refusals, each with the ``{code, message, field}`` body."""
    return {
        status: {"model": ErrorOut, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


# What any route of the API may answer besides its success.
API_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "field": field}


def _field_of(loc: Sequence[Any]) -> str | None:
    # Drop the "body"/"query"/"path" prefix and pydantic's union tags.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def database_unreachable(exc: BaseException) -> bool:
    """Whether a database error means "cannot reach the database" (not a bad query):
    a failure to connect, a connection cut, the server refusing connections."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or exc.statement is None):
        return True  # no statement: it failed while connecting
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError | ConnectionError):
            return True
        if type(cause).__name__ in _UNREACHABLE_DRIVER_ERRORS:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


# asyncpg's names for "the connection is gone / was refused" (named, not imported:
# the SQLite build needs no asyncpg).
_UNREACHABLE_DRIVER_ERRORS = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "PostgresConnectionError",
        "TooManyConnectionsError",
        "AdminShutdownError",
        "CrashShutdownError",
    }
)


def translated_body(
    request: Request,
    code: str,
    message_id: str,
    field: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return error_body(code, translate(request_language(request), message_id, params), field)


def refused_file_response(request: Request, exc: AppError) -> JSONResponse:
    """422 for a refused file: the error's own body (its problems, line by line) with
    its message and each problem's reason in the request's language, as every other
    refusal has it (``body(language)`` puts the reasons into words)."""
    from starlette.responses import JSONResponse

    language = request_language(request)
    body: dict[str, Any] = exc.body(language)  # type: ignore[attr-defined]
    body["message"] = translate(language, exc.message_id, exc.params)
    return JSONResponse(body, status_code=422)


def _unreachable(request: Request) -> JSONResponse:
    from starlette.responses import JSONResponse

    return JSONResponse(
        translated_body(
            request, "database_unreachable", "the database cannot be reached; try again shortly"
        ),
        503,
        headers={"Retry-After": "1"},
    )


# Starlette's own refusals (an unknown path, a method the path does not take).
HTTP_MESSAGES = (N_("Not Found"), N_("Method Not Allowed"))


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import JSONResponse

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        body = translated_body(request, exc.code, exc.message_id, exc.field, exc.params)
        return JSONResponse(body, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid input"}
        if first.get("type") == "json_invalid":
            body = translated_body(request, "malformed_json", "the body is not valid JSON")
            return JSONResponse(body, 400)
        field = _field_of(first.get("loc", ()))
        text = validation_message(request_language(request), first)
        message = f"{field}: {text}" if field else text
        return JSONResponse(error_body("invalid", message, field), 422)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if database_unreachable(exc):
            return _unreachable(request)
        log.error("database error", exc_info=exc)
        body = translated_body(request, "internal_error", "the server could not do this")
        return JSONResponse(body, 500)

    @app.exception_handler(OSError)
    async def _network(request: Request, exc: OSError) -> JSONResponse:
        # Unwrapped: a connection to the database refused or cut outside SQLAlchemy.
        log.error("network error: %s", exc)
        return _unreachable(request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
        body = translated_body(request, code, str(exc.detail))
        return JSONResponse(body, exc.status_code, headers=headers)


def _allowed_methods(request: Request, named: str) -> str:
    """Every method of the resource the path names, for a 405's ``Allow`` (RFC 9110).

    The router names only the methods of the first route on the path, and a path
    such as ``/campaigns/{id}`` has one route per method: the resource is the first
    route's path template (``/pledges/export.csv`` is not ``/pledges/{reference}``),
    and its methods those of every route with that template.
    """
    from starlette.routing import Match

    methods = {m.strip() for m in named.split(",") if m.strip()}
    template = None
    for route in _routes(request.app.router.routes):
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            template = template or route.path
            if route.path == template:
                methods |= route.methods
    return ", ".join(sorted(methods))


def _routes(routes: Sequence[BaseRoute]) -> Iterator[Route]:
    from starlette.routing import Route

    for route in routes:
        if isinstance(route, Route):
            yield route
        # FastAPI keeps an included router's routes behind a wrapper of its own.
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)

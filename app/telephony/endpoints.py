"""The telephony webhook (events in) and the command feed (commands out, by polling)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from app import signing
from app.db import Database
from app.deps import get_app_settings, get_db, read_limited_body
from app.errors import AppError, Invalid, error_body, error_responses
from app.settings import Settings
from app.telephony import commands, inbound
from app.telephony.schemas import EVENT_TYPES, TelephonyEvent

router = APIRouter(prefix="/telephony", tags=["telephony"])
_events = TypeAdapter[Any](TelephonyEvent)


def _parse(raw: bytes) -> Any:
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AppError("the body is not valid JSON", code="malformed_json") from exc
    if not isinstance(payload, dict):
        raise Invalid("the body must be a JSON object")
    kind = payload.get("type")
    if kind not in EVENT_TYPES:
        raise Invalid(
            "unknown event type {kind!r}; expected one of {choices}",
            field="type",
            code="unknown_event_type",
            kind=kind,
            choices=", ".join(EVENT_TYPES),
        )
    try:
        return _events.validate_python(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"][1:]) or None
        raise Invalid("{name}: {problem}", field=field, name=field, problem=first["msg"]) from exc


@router.post(
    "/events",
    summary="Receive an event from the telephony platform",
    responses=error_responses(413),
)
async def telephony_event(
    request: Request,
    db: Annotated[Database, Depends(get_db)],
    settings: Annotated[Settings, Depends(get_app_settings)],
) -> JSONResponse:
    raw = await read_limited_body(request, settings.max_body_bytes)
    signing.verify(
        settings.telephony_secret,
        raw,
        request.headers,
        window_seconds=settings.signature_window_seconds,
    )
    event = _parse(raw)
    status, answer = await inbound.handle(db, event, raw)
    return JSONResponse(answer if status == 200 else error_body(**answer), status)


@router.get("/commands", summary="Read commands for the platform, oldest first")
async def telephony_commands(
    request: Request,
    db: Annotated[Database, Depends(get_db)],
    settings: Annotated[Settings, Depends(get_app_settings)],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    query = request.url.query.encode()
    # Signed and timestamped like an event: a captured poll cannot be replayed later.
    signing.verify(
        settings.telephony_secret,
        query,
        request.headers,
        window_seconds=settings.signature_window_seconds,
    )
    async with db.read() as session:
        # SQLite commits one writer at a time: ids become visible in order there.
        grace = settings.telephony_command_gap_grace_seconds if db.is_postgres else 0.0
        rows = await commands.read_after(
            session, after, limit, gap_grace=dt.timedelta(seconds=grace)
        )
    items = [commands.as_message(row) for row in rows]
    return {"commands": items, "next_after": items[-1]["id"] if items else after}

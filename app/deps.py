"""Request dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from app.db import Database
from app.errors import PayloadTooLarge
from app.settings import Settings

# Dependencies are ``async def`` even where they do not await: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread hop per request for an attribute read.


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The raw body (for a webhook's signature), refused (413) past ``limit`` bytes
    without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("body larger than {limit} bytes", limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("body larger than {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)

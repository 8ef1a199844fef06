"""The pages: ``/`` (index), ``/login``, ``/agent``, ``/supervisor`` and ``/static/...``.

The pages are static HTML; their scripts (plain JS modules, no build step) ask
``/auth/me`` who is signed in, take a one-minute token from ``/auth/ws-token`` and
open the screen's websocket. Everything they load comes from ``/static/``: no CDN,
no external fonts. A strict Content-Security-Policy keeps it that way.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

PAGES = {
    "/": "index.html",
    "/login": "login.html",
    "/agent": "agent.html",
    "/supervisor": "supervisor.html",
}

router = APIRouter(tags=["pages"], include_in_schema=False)


def _file(path: Path) -> FileResponse:
    return FileResponse(
        path, media_type=MEDIA_TYPES[path.suffix.lower()], headers=dict(SECURITY_HEADERS)
    )


def _page(name: str) -> FileResponse:
    return _file(STATIC_DIR / name)


@router.get("/")
async def index_page() -> FileResponse:
    return _page(PAGES["/"])


@router.get("/login")
async def login_page() -> FileResponse:
    return _page(PAGES["/login"])


@router.get("/agent")
async def agent_page() -> FileResponse:
    return _page(PAGES["/agent"])


@router.get("/supervisor")
async def supervisor_page() -> FileResponse:
    return _page(PAGES["/supervisor"])


def resolve_static(name: str) -> Path | None:
    """The file under ``static/`` that ``name`` names, or None (outside, hidden, unknown type)."""
    if not name or "\\" in name or "\x00" in name:
        return None
    parts = name.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        return None
    if path.suffix.lower() not in MEDIA_TYPES:
        return None
    return path


@router.get("/static/{name:path}")
async def static_asset(name: str) -> FileResponse:
    path = resolve_static(name)
    if path is None:
        raise NotFound(f"no asset {name!r}", field="path")
    return _file(path)

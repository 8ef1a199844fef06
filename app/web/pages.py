"""The pages: ``/`` (index), ``/login``, ``/agent``, ``/supervisor``, ``/organiser``,
the public tote board ``/board``, and ``/static/...``.

The pages are static HTML; their scripts (plain JS modules, no build step) ask
``/auth/me`` who is signed in, take a one-minute token from ``/auth/ws-token`` and
open the screen's websocket. Everything they load comes from ``/static/``: no CDN,
no external fonts. A strict Content-Security-Policy keeps it that way.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from app.deps import get_app_settings
from app.errors import NotFound
from app.i18n.html import translate_page
from app.i18n.negotiation import request_language

STATIC_DIR = Path(__file__).resolve().parent / "static"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".wav": "audio/wav",
}

CONTENT_SECURITY_POLICY = [
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
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")

SECURITY_HEADERS = {
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
    "/organiser": "organiser.html",
    "/board": "board.html",
    "/board/embed": "board-embed.html",
}

router = APIRouter(tags=["pages"], include_in_schema=False)


def content_security_policy(host: str | None, softphone_ws_url: str = "") -> str:
    """The pages' policy. ``connect-src`` names the page's own websocket origin as well:
    not every browser lets ``'self'`` cover ``ws:``/``wss:``; and, on the volunteer
    page, the PBX's websocket its softphone registers on (``PLEDGELINE_SOFTPHONE_WS_URL``)."""
    pbx = _socket_origin(softphone_ws_url)
    if not host or not _HOST.match(host):
        if not pbx:
            return "; ".join(CONTENT_SECURITY_POLICY)
        sockets = f"connect-src 'self' {pbx}"
    else:
        sockets = f"connect-src 'self' ws://{host} wss://{host}" + (f" {pbx}" if pbx else "")
    return "; ".join(sockets if d.startswith("connect-src") else d for d in CONTENT_SECURITY_POLICY)


def _socket_origin(url: str) -> str:
    """``wss://host:port`` of a websocket URL, or "" when it is none (or not plain)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc or not _HOST.match(parts.netloc):
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _file(path: Path, host: str | None = None) -> FileResponse:
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": content_security_policy(host)}
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lower()], headers=headers)


_HTML_LANG = re.compile(r'<html lang="[A-Za-z-]*"')


@lru_cache(maxsize=64)
def _translated(name: str, language: str, modified_ns: int) -> bytes:
    """The page in ``language``: its texts translated (app/i18n/html.py) and ``<html
    lang>`` set. Cached per file version (``modified_ns``), so an edited page is read
    again."""
    page = (STATIC_DIR / name).read_text(encoding="utf-8")
    page = _HTML_LANG.sub(f'<html lang="{language}"', translate_page(page, language), count=1)
    return page.encode()


def _page(
    name: str, request: Request, softphone_ws_url: str = "", *, frameable: bool = False
) -> Response:
    """The page in the caller's language (``Accept-Language``; app/i18n/negotiation.py),
    whose script then loads the catalogue of ``<html lang>`` for what it writes."""
    language = request_language(request)
    html = _translated(name, language, (STATIC_DIR / name).stat().st_mtime_ns)
    policy = content_security_policy(request.headers.get("host"), softphone_ws_url)
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": policy,
        "Content-Language": language,
        "Vary": "Accept-Language",
    }
    if frameable:
        # Any site may frame it (the charity's own): a read-only page with nothing
        # to click, so nothing to trick a visitor into.
        del headers["X-Frame-Options"]
        headers["Content-Security-Policy"] = policy.replace(
            "frame-ancestors 'none'", "frame-ancestors *"
        )
    return Response(html, media_type=MEDIA_TYPES[".html"], headers=headers)


@router.get("/")
async def index_page(request: Request) -> Response:
    return _page(PAGES["/"], request)


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _page(PAGES["/login"], request)


@router.get("/agent")
async def agent_page(request: Request) -> Response:
    settings = await get_app_settings(request)
    return _page(PAGES["/agent"], request, settings.softphone_ws_url)


@router.get("/supervisor")
async def supervisor_page(request: Request) -> Response:
    return _page(PAGES["/supervisor"], request)


@router.get("/organiser")
async def organiser_page(request: Request) -> Response:
    return _page(PAGES["/organiser"], request)


@router.get("/board")
async def board_page(request: Request) -> Response:
    """The public tote board (no login); its figures are pushed by ``/board/stream``
    (app/pledges/board_stream.py)."""
    return _page(PAGES["/board"], request)


@router.get("/board/embed")
async def board_embed_page(request: Request) -> Response:
    """The tote board's compact form, for the charity's site to put in a frame."""
    return _page(PAGES["/board/embed"], request, frameable=True)


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
        raise NotFound("no asset {name!r}", field="path", name=name)
    return _file(path)

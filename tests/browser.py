"""Helpers for the browser tests and the screenshot script.

``running_hotline`` starts a real uvicorn process (``python -m uvicorn --factory
app.main:create_app``) on a free port and a fresh SQLite file, migrated by Alembic
and seeded with the demo campaign; ``launch_chromium`` starts the system Chromium
(``/usr/bin/chromium``, never a downloaded browser) headless through Playwright.

This module does not import pytest: ``bench/screenshots.py`` uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app import signing
from app.cti.directory_server import DirectoryProcess
from app.db import Database, make_engine
from app.migrate import upgrade_async
from app.seed import DEMO_NUMBER, seed_demo

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("PLEDGELINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
]
SECRET = "browser-telephony-Gt5yB1mQ7wLc3kVr9xNd"
VIEWPORT = {"width": 1280, "height": 800}
# The browser tests and the screenshots run as a French user would (docs/i18n.md): the
# pages are served in French (Accept-Language) and Chromium formats in fr-FR. A test of
# the English screens passes ``locale="en-GB"`` to ``context_options``.
LOCALE = "fr-FR"
TIMEZONE = "Europe/Paris"


def context_options(locale: str = LOCALE, **more: Any) -> dict[str, Any]:
    """``browser.new_context(**context_options())``: the viewport, locale, time zone and
    Accept-Language (``fr-FR,fr`` by default) the browser tests share."""
    language = locale.split("-")[0]
    options: dict[str, Any] = {
        "viewport": VIEWPORT,
        "locale": locale,
        "timezone_id": TIMEZONE,
        "extra_http_headers": {"Accept-Language": f"{locale},{language};q=0.9"},
    }
    options.update(more)
    return options


# The demo logins (app/seed.py).
AGENT = ("agent", "123456")
SUPERVISOR = ("supervisor", "supervisor-demo")
ORGANISER = ("organiser", "organiser-demo")
ADMIN = ("admin", "admin-demo-pass")
AGENT_NAME = "Camille (démo)"


def chromium_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        return f"the playwright package is not installed ({exc})"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        hint = f" (chromium on PATH: {found})" if found else ""
        return f"no Chromium at {CHROMIUM}{hint}; install Debian's chromium package"
    return None


# A softphone's page: a fake microphone and camera, allowed without asking, and
# audio that plays without a click.
FAKE_MEDIA = (
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)


async def launch_chromium(playwright: Any, extra_args: tuple[str, ...] = ()) -> Any:
    """The system Chromium, headless. Never ``playwright install``."""
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Hotline:
    """A running server, and what a test needs to drive it from outside."""

    base_url: str
    database_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    campaign_id: int
    http: httpx.AsyncClient
    _admin_token: str | None = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def incoming(self, call_id: str, caller: str | None = "+33612345678") -> int:
        """A call through the signed telephony webhook; returns the call's id."""
        body = json.dumps(
            {
                "event_id": f"evt-{uuid.uuid4().hex}",
                "type": "call.incoming",
                "call_id": call_id,
                "caller": caller,
                "dialled": DEMO_NUMBER,
            }
        ).encode()
        response = await self.http.post(
            "/telephony/events",
            content=body,
            headers={
                "Content-Type": "application/json",
                **signing.signed_headers(SECRET, body),
            },
        )
        assert response.status_code == 200, response.text
        call_id_: int = response.json()["call"]["id"]
        return call_id_

    async def telephony(self, event_type: str, call_id: str, **fields: Any) -> Any:
        """Another signed telephony event for a call (``seat.answered``, ``call.hangup``...)."""
        event = {"event_id": f"evt-{uuid.uuid4().hex}", "type": event_type, "call_id": call_id}
        body = json.dumps({**event, **fields}).encode()
        response = await self.http.post(
            "/telephony/events",
            content=body,
            headers={"Content-Type": "application/json", **signing.signed_headers(SECRET, body)},
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def admin_headers(self) -> dict[str, str]:
        if self._admin_token is None:
            r = await self.http.post(
                "/auth/login", json={"username": ADMIN[0], "secret": ADMIN[1], "mode": "bearer"}
            )
            assert r.status_code == 200, r.text
            self._admin_token = r.json()["token"]
        return {"Authorization": f"Bearer {self._admin_token}"}

    async def get(self, path: str) -> Any:
        r = await self.http.get(path, headers=await self.admin_headers())
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    async def post(
        self, path: str, body: Mapping[str, Any] | None = None, *, status: int = 200
    ) -> Any:
        r = await self.http.post(path, json=dict(body or {}), headers=await self.admin_headers())
        assert r.status_code == status, f"POST {path}: {r.status_code} {r.text}"
        return r.json()

    async def volunteer_login(self, display_name: str, pin: str = "246810") -> tuple[str, str]:
        """A volunteer login (username, PIN) for one of the seeded agents."""
        agent_id = await self.agent_id(display_name)
        username = "web-" + display_name.lower().replace(" ", "-")
        await self.post(
            "/users",
            {
                "username": username,
                "display_name": display_name,
                "role": "agent",
                "secret": pin,
                "campaign_id": self.campaign_id,
                "agent_id": agent_id,
            },
            status=201,
        )
        return username, pin

    def server_errors(self) -> list[str]:
        """Tracebacks and ERROR lines in the server's log."""
        return error_records(self.log_text())

    async def agent_id(self, display_name: str = AGENT_NAME) -> int:
        agents = await self.get(f"/agents?campaign_id={self.campaign_id}")
        for agent in agents:
            if agent["display_name"] == display_name:
                found: int = agent["id"]
                return found
        raise AssertionError(f"no agent {display_name!r}")

    async def wait_for(self, path: str, key: str, value: Any, timeout: float = 10.0) -> Any:
        """Poll ``GET path`` until ``body[key] == value``."""
        deadline = time.monotonic() + timeout
        while True:
            body = await self.get(path)
            if body.get(key) == value:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {key} is {body.get(key)!r}, not {value!r}")
            await asyncio.sleep(0.1)


def error_records(text: str) -> list[str]:
    """The server log's errors: an ERROR line or a bare traceback with all that follows
    it (chained tracebacks included) up to the next INFO/WARNING/ERROR line."""
    records: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(("INFO", "WARNING", "DEBUG")):
            current = None
        elif line.startswith("ERROR") or line.startswith("Task exception"):
            current = [line]
            records.append(current)
        elif current is not None:
            current.append(line)
        elif line.startswith("Traceback"):
            current = [line]
            records.append(current)
    return ["\n".join(r) for r in records]


async def _prepare_database(url: str) -> int:
    await upgrade_async(url)
    db = Database(make_engine(url))
    try:
        return await seed_demo(db)
    finally:
        await db.dispose()


async def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        await asyncio.to_thread(proc.wait, grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 5)


def _fresh_database(workdir: Path | None) -> tuple[Path, str]:
    """``workdir`` (a new temporary folder by default) and a SQLite URL there, any old file gone."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="pledgeline-browser-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_file = workdir / "pledgeline.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        db_file.with_name(db_file.name + suffix).unlink(missing_ok=True)
    return workdir, f"sqlite+aiosqlite:///{db_file}"


def _spawn_server(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "app.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C on the runner reaches it only through us
        )


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


async def _wait_ready(
    base_url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout}s:\n{_tail(log)}")


@contextlib.asynccontextmanager
async def running_hotline(
    workdir: Path | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    ready_timeout: float = 30.0,
) -> AsyncIterator[Hotline]:
    """A uvicorn process on a fresh, migrated, demo-seeded SQLite file; stopped on exit.

    The built-in directory runs as a process of its own for the screen pops.
    Simulation is off unless ``settings`` says ``simulate=True``.
    """
    workdir, database_url = _fresh_database(workdir)
    campaign_id = await _prepare_database(database_url)
    with DirectoryProcess(faults=False) as directory:
        async with _running_server(
            workdir,
            database_url,
            campaign_id,
            {"directory_url": directory.base_url, **(settings or {})},
            ready_timeout,
        ) as hotline:
            yield hotline


@contextlib.asynccontextmanager
async def _running_server(
    workdir: Path,
    database_url: str,
    campaign_id: int,
    settings: Mapping[str, Any],
    ready_timeout: float,
) -> AsyncIterator[Hotline]:
    for _attempt in range(3):
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLEDGELINE_")}
        values: dict[str, Any] = {
            "database_url": database_url,
            "telephony_secret": SECRET,
            "allowed_origins": f"{base_url},http://localhost:{port}",
            "simulate": False,
            "timer_poll_seconds": 0.1,
            "dispatch_sweep_seconds": 0.5,
            **settings,
        }
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[f"PLEDGELINE_{key.upper()}"] = text
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        log_path = workdir / f"server-{port}.log"
        proc = _spawn_server(port, env, log_path)
        try:
            await _wait_ready(base_url, proc, log_path, ready_timeout)
        except RuntimeError:
            await _stop(proc)
            if "address already in use" in _tail(log_path, 100_000).lower():
                continue
            raise
        break
    else:
        raise RuntimeError("no free port for the server")
    client = httpx.AsyncClient(base_url=base_url, timeout=10.0)
    try:
        yield Hotline(base_url, database_url, proc, log_path, campaign_id, client)
    finally:
        await client.aclose()
        await _stop(proc)


async def sign_in(
    page: Any, base_url: str, username: str, secret: str, campaign_id: int | None = None
) -> None:
    """Through the sign-in form, as a person would; waits for the page of the role.

    The form's fields are found by their ids, so it works in either language."""
    await page.goto(f"{base_url}/login")
    await page.locator("#username").fill(username)
    await page.locator("#secret").fill(secret)
    if campaign_id is not None:
        await page.locator("#campaign").fill(str(campaign_id))
    await page.locator("#login-btn").click()
    await page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)


# A page script recording the page's websockets (window.__sockets) and the types of
# the messages each one received (window.__received: [socket index, type]), so a
# test can cut a socket and see what came back.
RECORD_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__received = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const index = window.__sockets.push(this) - 1;
      this.addEventListener("message", (event) => {
        try {
          window.__received.push([index, JSON.parse(event.data).type]);
        } catch (err) {
          window.__received.push([index, "?"]);
        }
      });
    }
  };
})();
"""

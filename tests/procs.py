"""Real server processes for tests and benchmarks.

``running_servers`` starts N uvicorn processes (``python -m uvicorn --factory
app.main:create_app``) on free ports against one database, waits until each one
answers ``/readyz``, and stops them all (SIGTERM, then SIGKILL after a grace
period) however the block ends. Each server logs to its own file so a test can
look for tracebacks afterwards. ``fresh_pg_database`` creates a migrated
PostgreSQL database and drops it afterwards.

This module does not import pytest or the test fixtures: ``bench/routing.py``
uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.cli import SERVER_HTTP, SERVER_LOOP

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "PLEDGELINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Real-looking secrets (32+ bytes), as a production server needs (app/settings.py).
DEFAULT_SECRET = "test-telephony-Zq4mW8rT2vXb6nYc1pLk9sHd"
SECRET_KEY = "test-session-key-Hn3sV7bQ1xKm5tRw9cZp2fLd"
PAYMENT_WEBHOOK_SECRET = "test-payment-hook-Pw6kN2dS8jFq4hVx0bTm7rCy"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(
    database_url: str, secret: str, settings: Mapping[str, Any], root: Path = ROOT
) -> dict[str, str]:
    """The environment of a server: ours, less any ``PLEDGELINE_*`` leaking in, plus settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEDGELINE_")}
    env["PLEDGELINE_DATABASE_URL"] = database_url
    env["PLEDGELINE_TELEPHONY_SECRET"] = secret
    env["PLEDGELINE_SECRET_KEY"] = SECRET_KEY
    env["PLEDGELINE_PAYMENT_WEBHOOK_SECRET"] = PAYMENT_WEBHOOK_SECRET
    for key, value in settings.items():
        env[f"PLEDGELINE_{key.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    # ``-m uvicorn`` puts the working directory first on sys.path, ahead of the
    # editable install: ``root`` decides which ``app`` package the server runs.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


@dataclass
class ServerProcess:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    wrapped: bool = False
    started_at: float = field(default_factory=time.monotonic)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def python_pids(self) -> list[int]:
        """The server's Python process ids (the wrapper's children when wrapped)."""
        if not self.wrapped:
            return [self.proc.pid]
        try:
            import psutil

            children = psutil.Process(self.proc.pid).children(recursive=True)
        except Exception:
            return [self.proc.pid]
        pids = [c.pid for c in children if "python" in (c.name() or "").lower()]
        return pids or [self.proc.pid]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def errors(self) -> list[str]:
        """Tracebacks and ERROR lines the server logged."""
        text = self.log_text()
        blocks: list[str] = []
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Traceback") or " ERROR" in line or line.startswith("ERROR"):
                blocks.append("\n".join(lines[i : i + 40]))
        return blocks


def _spawn(
    command: list[str], cwd: Path, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C on the runner reaches it only through us
        )


async def _wait_ready(server: ServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"server on port {server.port} exited with {server.proc.returncode}:\n"
                    + server.log_text()[-4000:]
                )
            try:
                response = await client.get("/readyz")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            await asyncio.sleep(0.1)
    raise RuntimeError(
        f"server on port {server.port} not ready after {timeout}s ({last}):\n"
        + server.log_text()[-4000:]
    )


async def start_server(
    database_url: str,
    *,
    secret: str = DEFAULT_SECRET,
    settings: Mapping[str, Any] | None = None,
    log_dir: Path | None = None,
    wrapper: Sequence[str] = (),
    log_level: str = "warning",
    ready_timeout: float = 30.0,
    root: Path = ROOT,
) -> ServerProcess:
    """One uvicorn process on a free port, ready (``/readyz`` answers 200) on return.

    ``wrapper`` prefixes the command line (``["py-spy", "record", ..., "--"]``);
    ``root`` is the source tree whose ``app`` package runs (this repository).
    """
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="pledgeline-srv-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(database_url, secret, {"log_level": log_level, **(settings or {})}, root)
    for _attempt in range(3):
        port = free_port()
        log_path = log_dir / f"server-{port}.log"
        command = [
            *wrapper,
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
            log_level,
            "--loop",
            SERVER_LOOP,
            "--http",
            SERVER_HTTP,
            "--no-access-log",
            # Longer than the clients' keep-alive expiry, so an idle connection is never
            # closed by the server just as a client reuses it (a ReadError on the client).
            "--timeout-keep-alive",
            "30",
        ]
        proc = _spawn(command, root, env, log_path)
        server = ServerProcess(port, proc, log_path, wrapped=bool(wrapper))
        try:
            await _wait_ready(server, ready_timeout)
        except RuntimeError:
            await stop_server(server)
            if "address already in use" in server.log_text().lower():
                continue  # someone took the port between our probe and the bind
            raise
        return server
    raise RuntimeError("no free port found for the server")


async def stop_server(server: ServerProcess, grace: float = 15.0) -> int | None:
    """SIGTERM (uvicorn shuts down gracefully, lifespan included), SIGKILL after ``grace``.

    A wrapped server (a profiler) gets more time: the wrapper writes its output after.
    """
    proc = server.proc
    if server.wrapped:
        grace = max(grace, 120.0)
    if proc.poll() is None:
        targets = server.python_pids()
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, grace)
        except subprocess.TimeoutExpired:
            for pid in {*targets, proc.pid}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 5)
    return proc.returncode


def kill_server(server: ServerProcess) -> None:
    """SIGKILL, as a crash would: no shutdown of any kind, its sockets closed by the
    kernel (wait for ``server.proc`` to see it gone)."""
    for pid in server.python_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def running_servers(
    database_url: str, count: int, **kwargs: Any
) -> AsyncIterator[list[ServerProcess]]:
    """``count`` servers on one database, started one after another, all stopped on exit."""
    servers: list[ServerProcess] = []
    try:
        for _ in range(count):
            servers.append(await start_server(database_url, **kwargs))
        yield servers
    finally:
        await asyncio.gather(*(stop_server(s) for s in servers), return_exceptions=True)


# --- PostgreSQL databases -----------------------------------------------------------


def pg_dsn(url: str) -> str:
    """A SQLAlchemy URL as a plain libpq/asyncpg DSN."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _db_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


async def pg_unreachable(admin_url: str = PG_ADMIN_URL) -> str | None:
    """Why the server cannot be reached, or None when it can."""
    try:
        conn = await asyncpg.connect(pg_dsn(admin_url), timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(pg_dsn(admin_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def migrate(database_url: str, root: Path = ROOT) -> None:
    """Alembic to head, run by the source tree ``root`` (in a child process)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from app.migrate import upgrade; upgrade(sys.argv[1])",
        database_url,
        cwd=root,
        env=server_env(database_url, DEFAULT_SECRET, {}, root),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"migration failed:\n{output.decode(errors='replace')[-4000:]}")


async def run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    """``pledgeline ARGS...`` as a process on ``database_url`` (no other PLEDGELINE_*
    setting of the test run leaks in): exit code, stdout, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEDGELINE_")}
    env["PLEDGELINE_DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


ADMIN_USERNAME = "procs-admin"
ADMIN_SECRET = "procs-admin-password"


async def bootstrap_admin(database_url: str, root: Path = ROOT) -> tuple[str, str] | None:
    """Create an admin user with ``pledgeline user add``; its (username, secret).

    None when the source tree has no users yet (no ``user`` command): its API is open.
    """
    # app.main first: it imports every model, which the user's foreign keys need
    # (``pledgeline user add`` alone fails with NoReferencedTableError: campaigns).
    script = "import sys, app.main; from app.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        "user",
        "add",
        ADMIN_USERNAME,
        "--role",
        "admin",
        "--secret",
        ADMIN_SECRET,
        cwd=root,
        env=server_env(database_url, DEFAULT_SECRET, {}, root),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    if proc.returncode == 0:
        return ADMIN_USERNAME, ADMIN_SECRET
    if "invalid choice: 'user'" in text:
        return None
    raise RuntimeError(f"could not create the admin user:\n{text[-4000:]}")


async def bearer_token(base_url: str, username: str, secret: str) -> str:
    """Log in through the API (bearer mode) and return the token."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            "/auth/login", json={"username": username, "secret": secret, "mode": "bearer"}
        )
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.text}")
    token: str = response.json()["token"]
    return token


@contextlib.asynccontextmanager
async def fresh_pg_database(
    prefix: str = "pledgeline_mp", admin_url: str = PG_ADMIN_URL, root: Path = ROOT
) -> AsyncIterator[str]:
    """A new database migrated to head (its ``postgresql+asyncpg://`` URL), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        url = _db_url(admin_url, name)
        await migrate(url, root)
        yield url
    finally:
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

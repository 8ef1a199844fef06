"""A PostgreSQL server of a test's own, which the test may stop and start.

Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``) build a cluster
in a temporary folder (``initdb``, trust authentication, no fsync: it is thrown
away) and run it on a free port, listening on 127.0.0.1 and on a socket in that
folder; the machine's own server is left alone. ``initdb`` refuses to run as root,
so under root the cluster belongs to the ``postgres`` user and every command runs
through ``runuser -u postgres --``.

This module does not import pytest: ``unavailable()`` says why no server can be
made here, and the test decides whether that is a skip or a failure.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.procs import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(found[0]).parent if found else None


def _as_postgres() -> list[str] | None:
    """The prefix that runs a command as the cluster's owner ([] when we are not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


def unavailable() -> str | None:
    """Why this machine cannot run a PostgreSQL of a test's own; None when it can."""
    if _bin_dir() is None:
        return "no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt install postgresql)"
    if _as_postgres() is None:
        return "running as root with no 'postgres' user or no runuser to run initdb as"
    return None


class OwnPostgres:
    def __init__(self) -> None:
        bin_dir, prefix = _bin_dir(), _as_postgres()
        if bin_dir is None or prefix is None:
            raise RuntimeError(unavailable())
        self._bin, self._prefix = bin_dir, prefix
        self.folder = Path(tempfile.mkdtemp(prefix="pledgeline-own-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, user="postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._prefix, str(self._bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                + (self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "")
            )

    def _init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip

    def _start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def _stop(self) -> None:
        # Fast: sessions are cut at once, as when a database server restarts.
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    async def create(self) -> None:
        await asyncio.to_thread(self._init)
        for attempt in range(3):
            try:
                await self.start()
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                self.port = free_port()  # taken between our probe and the server's bind

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop)

    async def destroy(self) -> None:
        """Stop the server if it runs (immediately) and remove its folder."""

        def _destroy() -> None:
            if (self.data / "postmaster.pid").exists():
                subprocess.run(
                    [*self._prefix, str(self._bin / "pg_ctl"), "-D", str(self.data),
                     "-m", "immediate", "-w", "stop"],
                    capture_output=True, timeout=60,
                )  # fmt: skip
            shutil.rmtree(self.folder, ignore_errors=True)

        await asyncio.to_thread(_destroy)

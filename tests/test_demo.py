"""``pledgeline demo`` as a newcomer runs it: one command, calls flow, screen pops
come from the built-in directory it starts.

A real process on a fresh SQLite file and free ports; the test reads the database
the demo writes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.procs import free_port

ROOT = Path(__file__).resolve().parent.parent


def pop_statuses(db_path: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
            return [row[0] for row in conn.execute("SELECT status FROM screen_pops")]
    except sqlite3.OperationalError:
        return []  # not migrated yet


@dataclass
class Demo:
    """A running ``pledgeline demo`` process, its database file and its log."""

    proc: subprocess.Popen[bytes]
    port: int
    directory_port: int
    db_path: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_demo(tmp_path: Path, **settings: str) -> Iterator[Demo]:
    """``pledgeline demo`` on a fresh SQLite file and free ports, with these extra
    environment settings; stopped (SIGTERM, then SIGKILL) at the end."""
    port, directory_port = free_port(), free_port()
    db_path = tmp_path / "demo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEDGELINE_")}
    env.update(
        PLEDGELINE_DATABASE_URL=f"sqlite+aiosqlite:///{db_path}",
        PLEDGELINE_DIRECTORY_URL=f"http://127.0.0.1:{directory_port}",
        **settings,
    )
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "demo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Demo(proc, port, directory_port, db_path, log_path)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_demo_starts_the_directory_and_pops_come_from_it(tmp_path: Path) -> None:
    with running_demo(tmp_path) as demo:
        deadline = time.monotonic() + 90
        answered: list[str] = []
        while time.monotonic() < deadline and not answered:
            assert demo.proc.poll() is None, demo.log()
            answered = [s for s in pop_statuses(demo.db_path) if s in ("found", "not_found")]
            time.sleep(0.5)
        output = demo.log()
        assert answered, f"no screen pop answered by the directory:\n{output[-3000:]}"
        directory = f"http://127.0.0.1:{demo.directory_port}"
        assert f"Built-in directory at {directory}" in output
        health = httpx.get(f"{directory}/healthz", timeout=5).json()
        assert health["service"] == "pledgeline-directory"
        assert httpx.get(f"http://127.0.0.1:{demo.port}/healthz", timeout=5).status_code == 200


def test_directory_serve_command(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "directory", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/lookup", params={"number": "+33123456789"}, timeout=2
                )
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert answer.status_code == 200
        assert answer.json()["name"] == {"first": "Marie", "last": "Dupont"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def surge_events(db_path: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute(
                "SELECT DISTINCT type FROM events WHERE type IN"
                " ('queue.surge_started', 'agent.paged', 'call.expected_wait',"
                " 'callback.offered', 'callback.requested')"
            )
            return [row[0] for row in rows]
    except sqlite3.OperationalError:
        return []  # not migrated yet


def test_demo_appeal_spike_puts_the_queue_in_surge_and_pages_standby(tmp_path: Path) -> None:
    """The simulated appeal (the first starts with the process) crosses the demo queue's
    surge thresholds; the shipped rule pages the demo volunteer, who is on standby;
    waiting callers hear their expected wait and, in the surge, are offered a callback
    (the demo's rules), which the simulated callers here all accept."""
    settings = {
        "PLEDGELINE_SURGE_CHECK_SECONDS": "1",
        # A stronger appeal than the default, so a loaded machine still sees a queue.
        "PLEDGELINE_SIM_SPIKE_FACTOR": "8",
        "PLEDGELINE_SIM_SPIKE_SECONDS": "60",
        "PLEDGELINE_SIM_CALLBACK_ACCEPT": "1",
    }
    with running_demo(tmp_path, **settings) as demo:
        deadline = time.monotonic() + 120
        seen: list[str] = []
        expected = {
            "queue.surge_started",
            "agent.paged",
            "call.expected_wait",
            "callback.offered",
            "callback.requested",
        }
        while time.monotonic() < deadline and not expected <= set(seen):
            assert demo.proc.poll() is None, demo.log()
            seen = surge_events(demo.db_path)
            time.sleep(0.5)
        output = demo.log()
        assert "queue.surge_started" in seen, f"no surge in the demo:\n{output[-3000:]}"
        assert "agent.paged" in seen, f"nobody paged:\n{output[-3000:]}"
        assert expected <= set(seen), f"missing {expected - set(seen)}:\n{output[-3000:]}"

"""Fan-out benchmark: N volunteer screens and M supervisor dashboards on one server process.

``pledgeline bench fanout --json [key=value ...]`` prints one JSON object.

What runs:

* one real uvicorn process (``tests/procs.py``) on a fresh database (PostgreSQL by
  default, dropped afterwards; ``db=sqlite`` for a temporary SQLite file);
* the load client, a separate process (``python -m bench.fanout_client client``)
  holding all N agent and M supervisor websockets (asyncio + ``websockets``),
  behaving as auto-answering volunteer screens and read-only dashboards;
* calls arrive through the signed telephony webhook (``POST /telephony/events``,
  ``call.incoming``) sent by this process at exactly ``rate`` calls a second; the
  volunteer's ``hangup`` ends each conversation, so no caller-side hang-up is sent;
* then, in the same run, the raw ceiling: a bare ``websockets`` broadcast server
  (``python -m bench.fanout_client bare``) with the same number of sockets held by
  the same client, first at the app's total message rate, then as fast as it drains.

Set-up shortcut (not measured): logging 2,000 volunteers in through ``/auth/login``
costs an argon2 verification each, so the users and their ``auth_sessions`` rows are
inserted directly (one precomputed hash reused), and the websocket tokens are signed
by the load client with ``issue_ws_token`` and the secret key given to the server.

Options (``key=value``): ``agents`` (2000), ``supervisors`` (50), ``rate`` calls/s
(100), ``duration`` measured seconds (30), ``warmup`` seconds (5), ``db`` (pg or
sqlite), ``talk`` seconds min-max (2-5), ``wrap`` seconds before end_wrap_up (0),
``compression`` (deflate, as browsers negotiate with uvicorn; or none),
``ceiling_s`` seconds per bare phase (5), ``pool`` (server DB pool size),
``profile`` (a directory: py-spy record of the server over the measured window),
``keep`` (a directory: the server, client and bare-server logs are copied there),
``app_root`` (the source tree the server runs, default this repository: to try a change),
``connect_concurrency`` (16 screens setting up at once), ``connect_timeout`` (120 s),
``pg_url`` (admin URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from app import signing
from bench.fanout_client import raise_nofile, until
from bench.stats import percentiles
from tests import procs

ROOT = Path(__file__).resolve().parent.parent

DIALLED = "+33800000077"
TELEPHONY_SECRET = "fanout-bench-telephony-Yb8rM4wP0kJz"
SECRET_KEY = "fanout-bench-secret-key-" + uuid.uuid4().hex
TARGETS = {"agents": 2000, "supervisors": 50, "rate": 100, "offer_p99_ms": 100, "rss_mib": 1024}


@dataclass
class Options:
    agents: int
    supervisors: int
    rate: float
    duration: float
    warmup: float
    kind: str
    talk: tuple[float, float]
    wrap: float
    compression: str | None
    ceiling_seconds: float
    pool: int | None
    profile: Path | None
    admin_url: str
    connect_concurrency: int
    connect_timeout: float
    keep: Path | None
    root: Path

    @classmethod
    def parse(cls, options: dict[str, str]) -> Options:
        known = {
            "agents", "supervisors", "rate", "duration", "warmup", "db", "talk", "wrap",
            "compression", "ceiling_s", "pool", "profile", "pg_url", "connect_concurrency",
            "connect_timeout", "keep", "app_root",
        }  # fmt: skip
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; known: {sorted(known)}")
        kind = "sqlite" if options.get("db", "pg").startswith("sqlite") else "postgresql"
        low, _, high = options.get("talk", "2-5").partition("-")
        compression = options.get("compression", "deflate")
        profile = options.get("profile")
        if profile:
            Path(profile).mkdir(parents=True, exist_ok=True)
        return cls(
            agents=int(options.get("agents", "2000")),
            supervisors=int(options.get("supervisors", "50")),
            rate=float(options.get("rate", "100")),
            duration=float(options.get("duration", "30")),
            warmup=float(options.get("warmup", "5")),
            kind=kind,
            talk=(float(low), float(high or low)),
            wrap=float(options.get("wrap", "0")),
            compression=None if compression in ("none", "") else compression,
            ceiling_seconds=float(options.get("ceiling_s", "5")),
            pool=int(options["pool"]) if "pool" in options else None,
            profile=Path(profile).resolve() if profile else None,
            admin_url=options.get("pg_url", procs.PG_ADMIN_URL),
            connect_concurrency=int(options.get("connect_concurrency", "16")),
            connect_timeout=float(options.get("connect_timeout", "120")),
            keep=Path(options["keep"]).resolve() if options.get("keep") else None,
            root=Path(options.get("app_root", str(procs.ROOT))).resolve(),
        )


_T0 = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr (stdout carries the one JSON object)."""
    print(f"[fanout {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- set-up ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _database(o: Options) -> AsyncIterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="pledgeline-fanout-") as tmp:
        if o.kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp}/fanout.db"
            await procs.migrate(url, o.root)
            yield url, Path(tmp)
        else:
            problem = await procs.pg_unreachable(o.admin_url)
            if problem:
                raise RuntimeError(f"PostgreSQL at {o.admin_url} unreachable: {problem}")
            async with procs.fresh_pg_database("pledgeline_fanout", o.admin_url, o.root) as url:
                yield url, Path(tmp)


async def seed(url: str, agents: int, supervisors: int) -> dict[str, Any]:
    """One campaign, one queue, ``agents`` volunteers and ``supervisors`` supervisors.

    Campaign and queue go through ``app.acd.config``; agents (validated by ``AgentIn``),
    users and their login sessions are inserted in bulk (one precomputed argon2 hash for
    all): set-up only.
    """
    import app.main  # noqa: F401  (every model, for the foreign keys)
    from app.acd import config
    from app.acd.models import Agent
    from app.acd.schemas import AgentIn, CampaignIn, QueueIn
    from app.auth.models import AuthSession, User
    from app.auth.secrets import hash_secret, new_token, token_digest
    from app.db import Database, make_engine, utcnow

    db = Database(make_engine(url))
    secret_hash = hash_secret("123456")
    now = utcnow()
    expires = now + dt.timedelta(hours=12)
    try:
        async with db.unit_of_work() as uow:
            campaign = await config.create_campaign(
                uow, CampaignIn(name="Fan-out telethon", dialled_numbers=[DIALLED])
            )
            # One queue, no skill filter: the router's cost stays out of the fan-out's way.
            await config.create_queue(
                uow,
                QueueIn(
                    campaign_id=campaign.id,
                    name="pledges",
                    wrapup_seconds=60,
                    ring_timeout_seconds=15,
                    auto_answer=True,
                ),
            )
            # 2,000 ``config.create_agent`` calls (a savepoint and four round trips each)
            # take half a minute: the same rows, validated by the same schema, in bulk.
            agents_rows = [
                Agent(
                    **AgentIn(
                        campaign_id=campaign.id,
                        login=f"fan{n:05d}",
                        display_name=f"Fan-out volunteer {n:05d}",
                        languages=["fr"],
                    ).model_dump(exclude={"skills"})
                )
                for n in range(agents)
            ]
            uow.session.add_all(agents_rows)
            await uow.session.flush()
            agent_ids = [a.id for a in agents_rows]
        async with db.unit_of_work() as uow:
            users = [
                User(
                    username=f"fan{n:05d}",
                    display_name=f"Fan-out volunteer {n:05d}",
                    role="agent",
                    secret_hash=secret_hash,
                    campaign_id=campaign.id,
                    agent_id=agent_id,
                    active=True,
                    created_at=now,
                )
                for n, agent_id in enumerate(agent_ids)
            ] + [
                User(
                    username=f"fansup{n:03d}",
                    display_name=f"Fan-out supervisor {n:03d}",
                    role="supervisor",
                    secret_hash=secret_hash,
                    campaign_id=campaign.id,
                    active=True,
                    created_at=now,
                )
                for n in range(supervisors)
            ]
            uow.session.add_all(users)
            await uow.session.flush()
            sessions = [
                AuthSession(
                    token_sha256=token_digest(new_token()),
                    public_id=new_token(),  # what the load client's websocket tokens name
                    user_id=user.id,
                    kind="bearer",
                    csrf_token=new_token(),
                    created_at=now,
                    expires_at=expires,
                )
                for user in users
            ]
            uow.session.add_all(sessions)
            await uow.session.flush()
            session_ids = [s.public_id for s in sessions]
    finally:
        await db.dispose()
    return {
        "campaign_id": campaign.id,
        "agents": [[a, s] for a, s in zip(agent_ids, session_ids[:agents], strict=True)],
        "supervisors": session_ids[agents:],
    }


# --- helper processes -----------------------------------------------------------------------


class Child:
    """A helper process spoken to in JSON lines (stdin commands, stdout answers)."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(
        cls, args: list[str], log_path: Path, module: str = "bench.fanout_client"
    ) -> Child:
        env = {**os.environ}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        log = log_path.open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *args,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=1 << 26,
                start_new_session=True,
            )
        finally:
            log.close()
        child = cls(proc, log_path)
        await child.answer(timeout=60)
        return child

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def answer(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"helper {self.pid} exited:\n{self.log_tail()}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def ask(self, timeout: float = 300, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.answer(timeout)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.ask(timeout=20, cmd="exit")
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


# --- the call driver ----------------------------------------------------------------------------


class CallDriver:
    """Signed ``call.incoming`` webhooks, due at exactly ``rate`` a second (open loop).

    A scheduler queues each call at its due time; ``connections`` workers, each on
    one keep-alive HTTP/1.1 connection (plain asyncio streams: a few microseconds of
    client CPU a request, where an ``httpx`` pool with a thousand waiters ends up
    hogging this process), POST them in order. When the server answers slower than
    calls are due, calls wait in the queue: ``late_ms`` says by how much, and those
    still queued when the window ends are counted as ``not_sent``.
    """

    def __init__(self, port: int, rate: float, connections: int = 64) -> None:
        self.port = port
        self.rate = rate
        self.connections = connections
        self.prefix = f"fan{uuid.uuid4().hex[:6]}"
        self.measuring = False
        self.due: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
        self.scheduled = 0
        self.sent = 0
        self.sent_in_window = 0
        self.not_sent = 0
        self.status: Counter[str] = Counter()
        self.latency_ms: list[float] = []
        self.late_ms: list[float] = []
        self.workers: list[asyncio.Task[None]] = []

    async def run(self, stop_at: float) -> None:
        self.workers = [asyncio.create_task(self._worker()) for _ in range(self.connections)]
        started = time.monotonic()
        i = 0
        while True:
            due = started + i / self.rate
            if due >= stop_at:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.due.put_nowait((i, due))
            self.scheduled += 1
            i += 1

    def request(self, i: int) -> bytes:
        body = json.dumps(
            {
                "event_id": f"{self.prefix}-e{i}",
                "type": "call.incoming",
                "call_id": f"{self.prefix}-c{i}",
                "caller": f"06{i % 100000000:08d}",
                "dialled": DIALLED,
            }
        ).encode()
        signature = "".join(
            f"{name}: {value}\r\n"
            for name, value in signing.signed_headers(TELEPHONY_SECRET, body).items()
        )
        head = (
            f"POST /telephony/events HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{signature}\r\n"
        )
        return head.encode() + body

    async def _worker(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while True:
                i, due = await self.due.get()
                in_window = self.measuring
                started = time.monotonic()
                self.late_ms.append(max(0.0, started - due) * 1000)
                self.sent += 1
                if in_window:
                    self.sent_in_window += 1
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    assert reader is not None
                    writer.write(self.request(i))
                    status_line = await asyncio.wait_for(reader.readline(), 60)
                    length = 0
                    keep_alive = True
                    while True:
                        line = await reader.readline()
                        if line in (b"\r\n", b""):
                            break
                        name, _, value = line.decode("latin-1").partition(":")
                        if name.lower() == "content-length":
                            length = int(value)
                        elif name.lower() == "connection" and "close" in value.lower():
                            keep_alive = False
                    await reader.readexactly(length)
                    self.status[status_line.split(b" ", 2)[1].decode()] += 1
                    if not keep_alive:
                        writer.close()
                        writer = None
                except (OSError, asyncio.IncompleteReadError, TimeoutError, IndexError) as exc:
                    self.status[type(exc).__name__] += 1
                    if writer is not None:
                        writer.close()
                    writer = None
                if in_window:
                    self.latency_ms.append((time.monotonic() - started) * 1000)
        finally:
            if writer is not None:
                writer.close()

    def drop_pending(self) -> int:
        """Calls due but still waiting for a free connection: never sent."""
        while not self.due.empty():
            self.due.get_nowait()
            self.not_sent += 1
        return self.not_sent

    async def close(self) -> None:
        """Drop calls still waiting to be sent, let those in flight finish (30 s at most)."""
        self.drop_pending()
        await until(lambda: self.sent <= sum(self.status.values()), 30, 0.05)
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)


# --- measuring the processes --------------------------------------------------------------------


def _cpu(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _postgres_cpu(database: str | None) -> float:
    """CPU of the PostgreSQL backends serving ``database`` (by process title)."""
    if database is None:
        return 0.0
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        if not (proc.info["name"] or "").startswith("postgres"):
            continue
        if f" {database} " not in " ".join(proc.info["cmdline"] or []) + " ":
            continue
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "softirq", 0.0) + getattr(t, "irq", 0.0)


class Meter:
    """Resident memory of the server (max over the run) and CPU over the measured window."""

    def __init__(self, server_pid: int, client_pid: int, database: str | None) -> None:
        self.server = psutil.Process(server_pid)
        self.client = psutil.Process(client_pid)
        self.database = database
        self.rss_max = 0
        self.rss_first = 0
        self.client_rss_max = 0
        self.marks: dict[str, dict[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.rss_first = self.server.memory_info().rss
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.rss_max = max(self.rss_max, self.server.memory_info().rss)
                self.client_rss_max = max(self.client_rss_max, self.client.memory_info().rss)
            await asyncio.sleep(0.25)

    def mark(self, name: str) -> None:
        self.marks[name] = {
            "server": _cpu([self.server.pid]),
            "client": _cpu([self.client.pid]),
            "postgres": _postgres_cpu(self.database),
            "bench": time.process_time(),
            "machine": _machine_busy(),
            "t": time.monotonic(),
        }

    def cores(self, start: str, stop: str) -> dict[str, float]:
        a, b = self.marks[start], self.marks[stop]
        seconds = b["t"] - a["t"]
        cores = {k: round((b[k] - a[k]) / seconds, 2) for k in a if k != "t"}
        ours = sum(v for k, v in cores.items() if k != "machine")
        cores["other"] = round(max(0.0, cores["machine"] - ours), 2)
        return cores

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _profile(o: Options, pid: int) -> None:
    """py-spy attached to the server for the measured window (raw collapsed stacks)."""
    if o.profile is None:
        return
    venv_spy = Path(sys.executable).parent / "py-spy"
    proc = await asyncio.create_subprocess_exec(
        str(venv_spy) if venv_spy.exists() else "py-spy",
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(o.duration))),
        "--rate",
        "100",
        "--nonblocking",
        "--format",
        "raw",
        "-o",
        str(o.profile / f"fanout-{o.kind}-server.txt"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


IDLE_FRAMES = ("select (selectors.py", "_run_once (asyncio", "Condition.wait (threading.py")


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Inclusive share of samples by function (py-spy raw stacks), idle loop left out."""
    total = 0
    functions: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    if not path.exists():
        return {"samples": 0}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(f.startswith(IDLE_FRAMES) for f in frames[-2:]):
            continue
        total += count
        leaves[frames[-1].split(":")[0]] += count
        seen: set[str] = set()
        for frame in frames:
            name, _, location = frame.partition(" (")
            key = f"{name} ({location.split(':', 1)[0]})"
            if key not in seen:
                seen.add(key)
                functions[key] += count

    def share(counter: Counter[str], n: int) -> dict[str, float]:
        return {k: round(100 * v / total, 1) for k, v in counter.most_common(n)} if total else {}

    return {
        "samples": total,
        "inclusive_pct": share(functions, top),
        "self_pct": share(leaves, 15),
    }


async def _call_states(url: str) -> dict[str, int]:
    sql = "SELECT state, count(*) FROM calls GROUP BY state"
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]

        def _read() -> dict[str, int]:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                return {state: n for state, n in conn.execute(sql)}

        return await asyncio.to_thread(_read)
    conn = await asyncpg.connect(procs.pg_dsn(url))
    try:
        return {row[0]: row[1] for row in await conn.fetch(sql)}
    finally:
        await conn.close()


def _keep_logs(tmp: Path, keep: Path) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    for path in tmp.rglob("*.log"):
        shutil.copy(path, keep / path.name)


# --- the run ------------------------------------------------------------------------------------


def _ms(stats: dict[str, Any], key: str = "p99") -> float | None:
    value = stats.get(key)
    return None if value is None else float(value)


async def _bare_ceiling(
    o: Options, client: Child, tmp: Path, app_rate: float, template: dict[str, Any]
) -> dict[str, Any]:
    """The raw ceiling: the same sockets on a bare ``websockets`` server, the app's pattern."""
    port = procs.free_port()
    bare = await Child.start(["bare", str(port), o.compression or "none"], tmp / "bare.log")
    sockets = o.agents + o.supervisors
    per_event = o.supervisors + (1 if o.agents else 0)
    try:
        opened = await client.ask(
            timeout=120,
            cmd="connect_bare",
            url=f"ws://127.0.0.1:{port}/",
            agents=o.agents,
            supervisors=o.supervisors,
            connect_timeout=90,
        )
        await bare.ask(cmd="wait", count=sockets, timeout=30)
        say(f"bare server: {opened}")
        bare_pid = bare.pid
        c0 = {"bare": _cpu([bare_pid]), "client": _cpu([client.pid]), "t": time.monotonic()}
        events_per_s = max(1.0, app_rate / per_event)
        matched = await bare.ask(
            cmd="run", phase="m", rate=events_per_s, seconds=o.ceiling_seconds, template=template
        )
        c1 = {"bare": _cpu([bare_pid]), "client": _cpu([client.pid]), "t": time.monotonic()}
        full = await bare.ask(
            cmd="run", phase="x", rate=None, seconds=o.ceiling_seconds, template=template
        )
        say(f"bare phases sent: {matched} / {full}")
        c2 = {"bare": _cpu([bare_pid]), "client": _cpu([client.pid]), "t": time.monotonic()}
        await asyncio.sleep(0.5)
        received = await client.ask(cmd="bare_report")
        await client.ask(cmd="close", timeout=60)
    finally:
        await bare.stop()

    def _cores(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: round((b[k] - a[k]) / (b["t"] - a["t"]), 2) for k in ("bare", "client")}

    m, x = received.get("m", {}), received.get("x", {})
    return {
        "method": (
            f"plain websockets server (separate process) and the same {o.agents}+"
            f"{o.supervisors} sockets held by the same load client; each event is one JSON "
            "message (an app agent.state event as template, new 'at' each) sent with "
            "websockets.broadcast() to one volunteer socket in turn and every supervisor "
            f"socket, as the app does; compression={o.compression or 'none'}; phase 1 at the "
            "app's measured total message rate, phase 2 as fast as the sockets drain; "
            f"{o.ceiling_seconds:g} s each; messages/s counted at the client"
        ),
        "sockets_opened": opened.get("opened"),
        "matched_rate": {
            "target_messages_per_s": round(events_per_s * per_event, 1),
            "messages_per_s": m.get("messages_per_s"),
            "delivery_ms": m.get("delivery_ms"),
            "message_bytes": m.get("mean_bytes"),
            "sent": matched,
            "cpu_cores": _cores(c0, c1),
        },
        "max_rate": {
            "messages_per_s": x.get("messages_per_s"),
            "delivery_ms": x.get("delivery_ms"),
            "sent": full,
            "cpu_cores": _cores(c1, c2),
        },
    }


async def _app_phase(o: Options, url: str, tmp: Path, client: Child) -> dict[str, Any]:
    """The server under load: connect every screen, drive calls, measure, stop the server."""
    settings: dict[str, Any] = {"secret_key": SECRET_KEY, "heartbeat_seconds": 15}
    if o.pool is not None:
        settings["db_pool_size"] = o.pool
    server = await procs.start_server(
        url, secret=TELEPHONY_SECRET, settings=settings, log_dir=tmp / "logs", root=o.root
    )
    driver: CallDriver | None = None
    say(f"server pid {server.pid} ready on port {server.port}")
    meter = Meter(server.pid, client.pid, url.rsplit("/", 1)[1] if o.kind != "sqlite" else None)
    meter.start()
    try:
        cpu_before_connect = _cpu([server.pid])
        connected = await client.ask(
            timeout=2 * o.connect_timeout + 30,
            cmd="connect_app",
            url=f"ws://127.0.0.1:{server.port}",
            connect_timeout=o.connect_timeout,
        )
        rss_connected = psutil.Process(server.pid).memory_info().rss
        connected["server_cpu_s"] = round(_cpu([server.pid]) - cpu_before_connect, 1)
        say(f"screens connected: {connected}")
        driver = CallDriver(server.port, o.rate)
        t_measure = time.monotonic() + o.warmup
        t_stop = t_measure + o.duration
        driving = asyncio.create_task(driver.run(t_stop))
        await asyncio.sleep(max(0.0, t_measure - time.monotonic()))
        await client.ask(cmd="measure")
        driver.measuring = True
        say(f"measuring {o.duration:g}s at {o.rate:g} calls/s")
        meter.mark("start")
        profiling = asyncio.create_task(_profile(o, server.pid))
        await asyncio.sleep(max(0.0, t_stop - time.monotonic()))
        driver.measuring = False
        window = await client.ask(cmd="stop")
        await driving
        not_sent_at_stop = driver.drop_pending()
        say(f"window: {window.get('messages_per_s')} msg/s, offers {window['offer_delivery_ms']}")
        meter.mark("stop")
        errors_in_window = len(server.errors())
        await profiling
        # Let the calls in flight finish (talk time + a margin), then count.
        await asyncio.sleep(o.talk[1] + o.wrap + 2)
        totals = await client.ask(cmd="totals")
        say(f"drained; totals {totals['totals']}")
        calls_by_state = await _call_states(url)
        # The server goes first (uvicorn closes the sockets): 2,000 volunteers leaving
        # one by one would each run a presence transaction first.
        await client.ask(cmd="detach")
    finally:
        if driver is not None:
            await driver.close()
        await meter.stop()
        await procs.stop_server(server)
        say("server stopped")
    await client.ask(timeout=120, cmd="close")
    return {
        "server_errors": server.errors(),
        "server_errors_by_window_end": errors_in_window,
        "not_sent_at_stop": not_sent_at_stop,
        "connected": connected,
        "rss_connected": rss_connected,
        "driver": driver,
        "meter": meter,
        "window": window,
        "totals": totals,
        "calls_by_state": calls_by_state,
        "rate": window.get("messages_per_s") or 0.0,
        "template": json.loads(totals["sample_event"]) if totals.get("sample_event") else {},
    }


async def _run(o: Options) -> dict[str, Any]:
    raise_nofile()
    date = dt.date.today().isoformat()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    t_begin = time.monotonic()
    async with _database(o) as (url, tmp):
        client: Child | None = None
        try:
            t0 = time.monotonic()
            seeded = await seed(url, o.agents, o.supervisors)
            seed_s = time.monotonic() - t0
            say(f"seeded {o.agents} agents, {o.supervisors} supervisors in {seed_s:.1f}s")
            config_path = tmp / "client.json"
            config_path.write_text(
                json.dumps(
                    {
                        "secret_key": SECRET_KEY,
                        "agents": seeded["agents"],
                        "supervisors": seeded["supervisors"],
                        "talk": list(o.talk),
                        "wrap": o.wrap,
                        "heartbeat": 15.0,
                        "compression": o.compression,
                        "connect_concurrency": o.connect_concurrency,
                    }
                )
            )
            client = await Child.start(["client", str(config_path)], tmp / "client.log")
            app = await _app_phase(o, url, tmp, client)
            bare = await _bare_ceiling(o, client, tmp, app["rate"], app["template"])
        finally:
            if client is not None:
                await client.stop()
            if o.keep is not None:
                _keep_logs(tmp, o.keep)
        client_log_tail = client.log_tail()
    total_s = time.monotonic() - t_begin

    window, totals, driver, meter = app["window"], app["totals"], app["driver"], app["meter"]
    server_errors = app["server_errors"]
    app_rate = app["rate"]
    offer = window["offer_delivery_ms"]
    sup = window["supervisor_event_ms"]
    stats_age = window["stats_age_ms"]
    bare_matched = bare["matched_rate"]["delivery_ms"] or {}
    bare_max_rate = bare["max_rate"]["messages_per_s"]
    rss_max_mib = round(meter.rss_max / 2**20, 1)
    cores = meter.cores("start", "stop")
    sent = driver.sent_in_window
    keep_up = bool(sent and offer.get("n", 0) >= 0.9 * sent)
    figures: dict[str, Any] = {
        "benchmark": "fanout",
        "date": date,
        "database": o.kind,
        "agents": o.agents,
        "supervisors": o.supervisors,
        "rate": o.rate,
        "duration_s": o.duration,
        "warmup_s": o.warmup,
        "talk_s": list(o.talk),
        "compression": o.compression or "none",
        "app_root": None if o.root == procs.ROOT else str(o.root),
        "drive": "signed webhook POST /telephony/events (call.incoming) at an exact rate, "
        "open loop, from the bench process; the volunteer's hangup ends each call",
        "setup_shortcut": "users + auth_sessions rows inserted directly with one precomputed "
        "argon2 hash, websocket tokens signed by the load client with issue_ws_token and "
        "the server's secret key (set-up only, no /auth/login)",
        "offer_delivery_ms": {
            **offer,
            "definition": "agent socket receipt (time.time()) - call.offered 'at' "
            "(server clock, stamped when the event is written, just before commit)",
        },
        "dashboard_staleness_ms": {
            "events": sup,
            "stats_age": stats_age,
            "stats_interval": window["stats_interval_ms"],
            "definition": "events: supervisor socket receipt - event 'at'; stats_age: receipt "
            "- 'at' of the 1 s stats message (stamped after its snapshot is computed); "
            "stats_interval: gap between two stats messages on one socket",
        },
        "agent_event_delivery_ms": window["agent_event_ms"],
        "command_rtt_ms": window["command_rtt_ms"],
        "messages_per_s": window["messages_per_s"],
        "messages_by_socket_kind": window["messages_by_socket_kind"],
        "messages_by_type": window["messages_by_type"],
        "bytes_per_s": window["bytes_per_s"],
        "mean_event_bytes": window["mean_event_bytes"],
        "calls_sent_in_window": sent,
        "calls_sent_per_s": round(sent / o.duration, 1),
        "offers_received_in_window": offer.get("n", 0),
        "webhook_ms": percentiles(driver.latency_ms, (50, 99)),
        "webhook_status": dict(driver.status),
        "calls_due_not_sent": driver.not_sent,
        "calls_due_but_queued_at_window_end": app["not_sent_at_stop"],
        "webhook_send_late_ms": percentiles(driver.late_ms, (50, 99)),
        "calls_sent_total": driver.sent,
        "client_totals": totals["totals"],
        "distinct_calls_offered": totals["distinct_calls_offered"],
        "calls_by_state_after_drain": app["calls_by_state"],
        "closed_sockets": totals["close_codes"],
        "client_errors": totals["errors"],
        "client_error_samples": totals["error_samples"][:5],
        "commands_unanswered": totals["pending_commands"],
        "server_log_errors": len(server_errors),
        "server_log_errors_by_window_end": app["server_errors_by_window_end"],
        "server_log_errors_sample": [e[:400] for e in server_errors[:3]],
        "server_rss_mib": {
            "max": rss_max_mib,
            "start": round(meter.rss_first / 2**20, 1),
            "sockets_connected": round(app["rss_connected"] / 2**20, 1),
        },
        "client_rss_max_mib": round(meter.client_rss_max / 2**20, 1),
        "cpu_cores": cores,
        "server_cpu_ms_per_call_sent": (
            round(cores["server"] * 1000 * o.duration / sent, 2) if sent else None
        ),
        "connect": app["connected"],
        "seed_s": round(seed_s, 1),
        "raw_ceiling": bare,
        "ratio": {
            "app_messages_per_s_over_bare_max": (
                round(app_rate / bare_max_rate, 3) if bare_max_rate else None
            ),
            "app_offer_p99_over_bare_p99": (
                round(_ms(offer) / _ms(bare_matched), 1)
                if _ms(offer) and _ms(bare_matched)
                else None
            ),
            "app_dashboard_event_p99_over_bare_p99": (
                round(_ms(sup) / _ms(bare_matched), 1) if _ms(sup) and _ms(bare_matched) else None
            ),
        },
        "targets": {
            # A p99 over a handful of offers says nothing: it counts only when the
            # offers kept up with the calls sent (90 % of them offered in the window).
            "offers_keep_up": keep_up,
            "offer_p99_le_100ms": bool(keep_up and _ms(offer) is not None and _ms(offer) <= 100),
            "server_rss_le_1GiB": bool(rss_max_mib is not None and rss_max_mib <= 1024),
            "rate_reached": bool(sent >= 0.98 * o.rate * o.duration),
            "at_target_size": o.agents >= 2000 and o.supervisors >= 50 and o.rate >= 100,
        },
        "total_run_s": round(total_s, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "note": "cpu_cores.other is what other processes on the machine used during the window",
        },
    }
    if o.profile is not None:
        figures["profile"] = {
            "dir": str(o.profile),
            "top": summarise_profile(o.profile / f"fanout-{o.kind}-server.txt"),
        }
    if not window.get("messages"):
        figures["client_log_tail"] = client_log_tail
    return figures


def run(options: dict[str, str]) -> dict[str, Any]:
    parsed = Options.parse(options)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(_run(parsed))
    return uvloop.run(_run(parsed))

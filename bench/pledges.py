"""Pledges benchmark: durable intake over HTTP, and the export of a million pledges.

``pledgeline bench pledges --json [key=value ...]`` runs, on a database of its own:

1. **The raw ceiling**: single-row committed INSERTs per second over the bare
   driver (asyncpg on PostgreSQL, sqlite3 on SQLite), as ``bench/routing.py``
   measures it: what the database and the disk allow before any application code.
2. **Intake**: real uvicorn servers; closed-loop clients POST ``/pledges`` (a
   full donor form, a distinct ``Idempotency-Key`` each) for ``duration`` seconds
   after ``warmup``, over keep-alive connections of ``bench/http1.py`` (httpx cost
   the load client about as much CPU as a pledge costs a server; the client's own
   CPU a pledge is reported). A pledge counts once its 201 arrived, i.e. once it
   was committed: PostgreSQL runs with ``synchronous_commit`` on (checked and
   reported), SQLite in WAL with the server's ``synchronous`` mode. Afterwards the
   pledges table is counted: every acknowledged pledge must be there.
3. **Export**: ``export_rows`` pledges (default 1,000,000) are bulk-loaded into a
   second campaign (``COPY`` on PostgreSQL, ``executemany`` on SQLite), then
   ``pledgeline export`` writes them to a file in a process of its own, whose
   wall time and peak RSS (``wait4`` rusage) are the figures. The file is checked
   (rows counted, CSV parsed by the standard reader in streaming).

Options (all ``key=value``):

``db``                 postgresql (default) or sqlite
``servers``            server processes (default 2 on PostgreSQL, 1 on SQLite)
``duration``           measured intake seconds (default 15); ``warmup`` before (default 3)
``concurrency``        intake requests in flight (default 32)
``export_rows``        pledges to export (default 1000000; 0 skips the export)
``formats``            export formats, comma-separated (default ``csv``; ``csv,xlsx``)
``ceiling_s``          seconds of the bare-driver test (default 3)
``ceiling_connections``  asyncpg connections in it (default 8)
``pool``               PLEDGELINE_DB_POOL_SIZE of each server (default: the server default)
``sqlite_synchronous`` FULL or NORMAL for the server (default: the server's default)
``pg_url``             admin URL (default $PLEDGELINE_TEST_PG_URL or postgres@127.0.0.1)
``profile``            a directory: ``py-spy record`` each server over the measured window
``app_root``           the source tree the servers run (default: this repository), for
                       a before/after comparison (the database is migrated by this one)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.http1 import Http1Pool, HttpError, json_body
from bench.routing import pg_ceiling, sqlite_ceiling
from bench.stats import cpu_seconds, percentiles, profile_servers
from tests import procs

ROOT = Path(__file__).resolve().parent.parent

SECRET = "bench-pledges-telephony-Wc7jK1pZ5sHy"
FIRST = ("Alice", "Bruno", "Chloé", "David", "Élise", "François", "Gaëlle", "Hugo", "Inès")
LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand")
CITIES = (("75011", "Paris", "75"), ("69003", "Lyon", "69"), ("13001", "Marseille", "13"))
AMOUNTS = (1000, 2000, 2500, 5000, 10000, 15000, 20000)
STATUSES = ("promised", "promised", "link_sent", "paid", "paid", "partially_paid", "cancelled")


@dataclass
class Options:
    kind: str
    servers: int
    duration: float
    warmup: float
    concurrency: int
    export_rows: int
    formats: tuple[str, ...]
    ceiling_seconds: float
    ceiling_connections: int
    admin_url: str
    settings: dict[str, Any]
    profile: Path | None = None
    app_root: Path = ROOT

    @classmethod
    def parse(cls, options: dict[str, str]) -> Options:
        known = {
            "db", "servers", "duration", "warmup", "concurrency", "export_rows", "formats",
            "ceiling_s", "ceiling_connections", "pool", "sqlite_synchronous", "pg_url",
            "profile", "app_root",
        }  # fmt: skip
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; known: {sorted(known)}")
        kind = "sqlite" if options.get("db", "postgresql").startswith("sqlite") else "postgresql"
        servers = int(options.get("servers", "1" if kind == "sqlite" else "2"))
        if kind == "sqlite" and servers != 1:
            raise ValueError("SQLite runs in one process: servers=1")
        formats = tuple(f for f in options.get("formats", "csv").split(",") if f)
        if not set(formats) <= {"csv", "xlsx"}:
            raise ValueError("formats: csv and/or xlsx")
        settings: dict[str, Any] = {}
        if "pool" in options:
            settings["db_pool_size"] = int(options["pool"])
        if "sqlite_synchronous" in options:
            settings["sqlite_synchronous"] = options["sqlite_synchronous"].upper()
        profile = Path(options["profile"]).resolve() if options.get("profile") else None
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
        return cls(
            kind=kind,
            servers=servers,
            duration=float(options.get("duration", "15")),
            warmup=float(options.get("warmup", "3")),
            concurrency=int(options.get("concurrency", "32")),
            export_rows=int(options.get("export_rows", "1000000")),
            formats=formats,
            ceiling_seconds=float(options.get("ceiling_s", "3")),
            ceiling_connections=int(options.get("ceiling_connections", "8")),
            admin_url=options.get("pg_url", procs.PG_ADMIN_URL),
            settings=settings,
            profile=profile,
            app_root=Path(options.get("app_root", str(ROOT))).resolve(),
        )


@contextlib.asynccontextmanager
async def _database(o: Options) -> AsyncIterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="pledgeline-bench-pledges-") as tmp:
        if o.kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            await procs.migrate(url)
            yield url, Path(tmp)
        else:
            async with procs.fresh_pg_database("pledgeline_bench", o.admin_url) as url:
                yield url, Path(tmp)


# --- intake over HTTP -------------------------------------------------------------------


def _donor(n: int) -> dict[str, Any]:
    rng = random.Random(n)
    postcode, city, _ = rng.choice(CITIES)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return {
        "first_name": first,
        "last_name": last,
        "address": f"{rng.randint(1, 120)} rue de la République",
        "postcode": postcode,
        "city": city,
        "email": f"{first.lower()}.{last.lower()}{n}@example.org",
        "phone": f"06 12 34 {rng.randint(10, 99)} {rng.randint(10, 99)}",
        "amount_minor": rng.choice(AMOUNTS),
        "consent_tax_receipt": True,
        "note": "pledged after the evening appeal",
    }


async def _admin_clients(
    o: Options, url: str, bases: list[str]
) -> tuple[list[httpx.AsyncClient], list[Http1Pool]]:
    """An admin's clients for each server: httpx for the set-up, keep-alive pools of
    the cheap client for the measured intake."""
    admin = await procs.bootstrap_admin(url)
    assert admin is not None
    token = await procs.bearer_token(bases[0], *admin)
    headers = {"Authorization": f"Bearer {token}"}
    clients = [httpx.AsyncClient(base_url=base, headers=headers, timeout=30) for base in bases]
    pools = [
        Http1Pool(
            base,
            connections=o.concurrency,
            timeout=30,
            headers={**headers, "Content-Type": "application/json"},
        )
        for base in bases
    ]
    return clients, pools


async def _setup(client: httpx.AsyncClient, name: str, agents: int) -> tuple[int, list[int]]:
    r = await client.post("/campaigns", json={"name": name, "dialled_numbers": []})
    r.raise_for_status()
    campaign_id: int = r.json()["id"]
    agent_ids = []
    for n in range(agents):
        a = await client.post(
            "/agents",
            json={
                "campaign_id": campaign_id,
                "login": f"{name.split()[0].lower()}-{n}",
                "display_name": f"Volunteer {n:02d}",
                "partner_org": "Lions Club" if n % 2 else "Rotary",
            },
        )
        a.raise_for_status()
        agent_ids.append(a.json()["id"])
    return campaign_id, agent_ids


async def _intake(
    o: Options, clients: list[Http1Pool], campaign_id: int, server_pids: list[int]
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    acknowledged = 0
    counter = itertools.count()
    start = time.monotonic()
    t_measure = start + o.warmup
    t_stop = t_measure + o.duration

    async def _worker(w: int) -> None:
        nonlocal acknowledged
        client = clients[w % len(clients)]
        while time.monotonic() < t_stop:
            n = next(counter)
            body = {"campaign_id": campaign_id, **_donor(n)}
            sent = time.monotonic()
            try:
                r = await client.request(
                    "POST",
                    "/pledges",
                    body=json_body(body),
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                status = str(r.status_code)
            except HttpError as exc:
                status = type(exc).__name__
            done = time.monotonic()
            if status == "201":
                acknowledged += 1
                if sent >= t_measure and done <= t_stop:
                    latencies.append((done - sent) * 1000)
            else:
                errors[status] = errors.get(status, 0) + 1

    async def _cpu_window() -> tuple[float, float]:
        """The servers' and this load client's CPU seconds over the measured window."""
        await asyncio.sleep(max(0.0, t_measure - time.monotonic()))
        before, client_before = cpu_seconds(server_pids), cpu_seconds([os.getpid()])
        if o.profile is not None:
            await profile_servers(o.profile, o.kind, t_stop - time.monotonic(), server_pids)
        await asyncio.sleep(max(0.0, t_stop - time.monotonic()))
        return (
            cpu_seconds(server_pids) - before,
            cpu_seconds([os.getpid()]) - client_before,
        )

    cpu_task = asyncio.create_task(_cpu_window())
    await asyncio.gather(*(_worker(w) for w in range(o.concurrency)))
    server_cpu, client_cpu = await cpu_task
    return {
        "pledges_per_s": round(len(latencies) / o.duration, 1),
        "server_cpu_ms_per_pledge": round(server_cpu * 1000 / len(latencies), 1)
        if latencies
        else None,
        "server_cpu_cores": round(server_cpu / o.duration, 2),
        "load_client_cpu_ms_per_pledge": round(client_cpu * 1000 / len(latencies), 2)
        if latencies
        else None,
        "latency_ms": percentiles(latencies),
        "acknowledged_total": acknowledged,
        "errors": errors,
    }


async def _pg_setting(url: str, name: str) -> str:
    conn = await asyncpg.connect(procs.pg_dsn(url))
    try:
        value: str = await conn.fetchval(f"SHOW {name}")
        return value
    finally:
        await conn.close()


async def _count(o: Options, url: str, campaign_id: int) -> int:
    query = "SELECT count(*) FROM pledges WHERE campaign_id = "
    if o.kind == "postgresql":
        conn = await asyncpg.connect(procs.pg_dsn(url))
        try:
            count: int = await conn.fetchval(query + "$1", campaign_id)
            return count
        finally:
            await conn.close()
    path = url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute(query + "?", (campaign_id,)).fetchone()[0])


# --- bulk seeding for the export ---------------------------------------------------------

SEED_COLUMNS = (
    "reference", "campaign_id", "agent_id", "queue_id", "first_name", "last_name", "address",
    "postcode", "city", "country", "email", "phone", "phone_e164", "departement",
    "amount_minor", "currency", "frequency", "channel", "consent_contact",
    "consent_tax_receipt", "flagged_for_review", "time_slot", "note", "status",
    "paid_minor", "created_at", "updated_at", "paid_at",
)  # fmt: skip
SLOTS = ("Morning show", "Afternoon", "Prime time", "Late night")


def _seed_rows(
    campaign_id: int, agent_ids: list[int], count: int, start: dt.datetime
) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(1)
    for n in range(count):
        postcode, city, dep = CITIES[n % len(CITIES)]
        first, last = FIRST[n % len(FIRST)], LAST[n % len(LAST)]
        amount = AMOUNTS[n % len(AMOUNTS)]
        status = STATUSES[n % len(STATUSES)]
        paid = amount if status == "paid" else amount // 2 if status == "partially_paid" else 0
        at = start + dt.timedelta(milliseconds=n * 250)
        phone = f"+336{rng.randint(10_000_000, 99_999_999)}"
        yield (
            f"X{n:010d}",
            campaign_id,
            agent_ids[n % len(agent_ids)],
            None,
            first,
            last,
            f"{n % 120 + 1} rue de la République",
            postcode,
            city,
            "FR",
            f"donor{n}@example.org",
            phone,
            phone,
            dep,
            amount,
            "EUR",
            "one_off",
            "web_link",
            True,
            n % 3 == 0,
            False,
            SLOTS[(n // 3600) % len(SLOTS)],
            "=1+1 appeal" if n % 1000 == 0 else "",  # a formula now and then: neutralised
            status,
            paid,
            at,
            at,
            at if paid else None,
        )


async def seed_pledges(url: str, campaign_id: int, agent_ids: list[int], count: int) -> float:
    """``count`` pledges bulk-loaded into ``campaign_id``; the seconds it took."""
    start = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)
    started = time.monotonic()
    if not url.startswith("sqlite"):
        conn = await asyncpg.connect(procs.pg_dsn(url))
        try:
            rows = _seed_rows(campaign_id, agent_ids, count, start)
            while batch := list(itertools.islice(rows, 100_000)):
                await conn.copy_records_to_table("pledges", records=batch, columns=SEED_COLUMNS)
            await conn.execute("ANALYZE pledges")
        finally:
            await conn.close()
    else:

        def _sqlite() -> None:
            path = url.split("///", 1)[1]
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("BEGIN")
                marks = ", ".join("?" for _ in SEED_COLUMNS)
                sql = f"INSERT INTO pledges ({', '.join(SEED_COLUMNS)}) VALUES ({marks})"
                fmt = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores naive UTC on SQLite

                def _rows() -> Iterator[tuple[Any, ...]]:
                    for row in _seed_rows(campaign_id, agent_ids, count, start):
                        yield tuple(
                            v.astimezone(dt.UTC).strftime(fmt) if isinstance(v, dt.datetime) else v
                            for v in row
                        )

                db.executemany(sql, _rows())
                db.execute("COMMIT")
                db.execute("ANALYZE")

        await asyncio.to_thread(_sqlite)
    return time.monotonic() - started


# --- the run ------------------------------------------------------------------------------------


async def _run(o: Options) -> dict[str, Any]:
    if o.kind == "postgresql":
        problem = await procs.pg_unreachable(o.admin_url)
        if problem:
            raise RuntimeError(f"PostgreSQL at {o.admin_url} unreachable: {problem}")
    figures: dict[str, Any] = {"benchmark": "pledges", "db": o.kind}
    async with _database(o) as (url, tmp):
        if o.kind == "postgresql":
            ceiling = await pg_ceiling(url, o.ceiling_seconds, o.ceiling_connections)
            ceiling_method = (
                f"asyncpg, {o.ceiling_connections} connections, autocommit single-row INSERT"
            )
            figures["synchronous_commit"] = await _pg_setting(url, "synchronous_commit")
        else:
            ceiling = await asyncio.to_thread(sqlite_ceiling, tmp, o.ceiling_seconds)
            ceiling_method = "sqlite3, WAL, synchronous=FULL, one connection, BEGIN/INSERT/COMMIT"
            figures["sqlite"] = {
                "journal_mode": "WAL",
                "synchronous": o.settings.get("sqlite_synchronous", "server default"),
            }

        async with contextlib.AsyncExitStack() as stack:
            servers = []
            for _ in range(o.servers):
                server = await procs.start_server(
                    url, secret=SECRET, settings=o.settings, log_dir=tmp / "logs", root=o.app_root
                )
                servers.append(server)
                stack.push_async_callback(procs.stop_server, server)
            clients, pools = await _admin_clients(o, url, [s.base_url for s in servers])
            for pool in pools:
                stack.push_async_callback(pool.aclose)
            for client in clients:
                stack.push_async_callback(client.aclose)
            intake_campaign, _ = await _setup(clients[0], "Intake bench", 0)
            pids = [pid for s in servers for pid in s.python_pids()]
            intake = await _intake(o, pools, intake_campaign, pids)
            export_campaign, agent_ids = await _setup(clients[0], "Export bench", 20)
            errors = [e for s in servers for e in s.errors()]
        stored = await _count(o, url, intake_campaign)
        intake["stored_total"] = stored
        intake["all_acknowledged_stored"] = stored >= intake["acknowledged_total"]
        intake["server_errors"] = len(errors)
        figures["servers"] = o.servers
        figures["concurrency"] = o.concurrency
        figures["intake"] = intake
        figures["raw_ceiling"] = {"inserts_per_s": round(ceiling, 1), "method": ceiling_method}
        figures["intake_to_ceiling_ratio"] = (
            round(intake["pledges_per_s"] / ceiling, 3) if ceiling else None
        )

        if o.export_rows:
            seed_seconds = await seed_pledges(url, export_campaign, agent_ids, o.export_rows)
            exports: dict[str, Any] = {
                "rows": o.export_rows,
                "seed_seconds": round(seed_seconds, 1),
            }
            # bench.export runs and reads the exports (imported here: it imports
            # this module's seeding).
            from bench.export import count_rows, export_command, measure_export

            for fmt in o.formats:
                out = tmp / f"export.{fmt}"
                command = export_command(fmt, export_campaign, out)
                result = await asyncio.to_thread(measure_export, url, ROOT, command, out)
                count = await asyncio.to_thread(count_rows, out)
                result["rows_in_file"] = count
                result["rows_per_s"] = round(count / result["seconds"])
                exports[fmt] = result
                out.unlink()
            figures["export"] = exports
    figures["machine"] = {"cpus": os.cpu_count()}
    return figures


def run(options: dict[str, str]) -> dict[str, Any]:
    return asyncio.run(_run(Options.parse(options)))

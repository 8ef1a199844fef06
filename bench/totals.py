"""Pledge totals benchmark: what the live figures cost as a campaign grows.

``pledgeline bench totals --json [key=value ...]`` seeds ``rows`` pledges into a
fresh database (SQLite file and/or PostgreSQL, migrated by Alembic), then times,
in the same run:

* ``overall``: the figures behind ``totals.updated`` (once a second per campaign
  with pledges coming in) and the public ``/board/totals`` (polled once a second
  by each studio screen), read from the running counters; compared with
  ``overall_by_query``, the same figures aggregated from every pledge;
* ``board``: the whole ``/board/totals`` computation (overall + latest pledge);
* ``breakdown``: the organiser's ``GET /pledges/totals`` (overall and six
  groupings: slot, hour, queue, agent, partner, département).

Each is run ``repeats`` times in its own read transaction; figures are
milliseconds (nearest-rank percentiles from ``bench/stats.py``).

Options: ``db`` (sqlite, postgresql or both; default both), ``rows`` (default
100000), ``repeats`` (default 30), ``pg_url`` (admin URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from sqlalchemy import insert

from app.acd.models import Agent, Campaign, Queue
from app.db import Database, make_engine
from app.pledges import rollups, totals
from app.pledges.models import Pledge
from bench.stats import percentiles
from tests import procs

POSTCODES = ("75011", "69003", "13008", "20000", "20200", "97100", "59000", "33000", "67000")
AMOUNTS = (1000, 2000, 2500, 5000, 10000, 1500)
STATUSES = ("promised", "link_sent", "paid", "partially_paid", "promised", "cancelled")
SLOTS = ("Opening", "Prime time", "Late show", None)
CHUNK = 10_000


@contextlib.asynccontextmanager
async def _database(kind: str, admin_url: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="pledgeline-bench-totals-") as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            await procs.migrate(url)
            yield url
    else:
        async with procs.fresh_pg_database("pledgeline_bench_totals", admin_url) as url:
            yield url


def _rows(
    campaign_id: int, queue_id: int, agent_ids: list[int], count: int
) -> Iterator[dict[str, Any]]:
    partners = ("Lions", "Rotary", None)
    start = dt.datetime(2026, 12, 5, 18, 0, tzinfo=dt.UTC)
    for n in range(count):
        amount = AMOUNTS[n % len(AMOUNTS)]
        status = STATUSES[n % len(STATUSES)]
        postcode = POSTCODES[n % len(POSTCODES)]
        at = start + dt.timedelta(milliseconds=n * 200)
        yield {
            "reference": f"B{n:09d}",
            "campaign_id": campaign_id,
            "agent_id": agent_ids[n % len(agent_ids)],
            "partner_org": partners[(n % len(agent_ids)) % 3],
            "queue_id": queue_id,
            "first_name": "Bench",
            "last_name": f"Donor {n}",
            "address": "1 rue de la République",
            "postcode": postcode,
            "city": "Ville",
            "country": "FR",
            "email": f"donor{n}@example.org",
            "phone": "",
            "departement": totals_departement(postcode),
            "amount_minor": amount,
            "currency": "EUR",
            "frequency": "one_off",
            "channel": "web_link",
            "consent_contact": False,
            "consent_tax_receipt": False,
            "flagged_for_review": False,
            "time_slot": SLOTS[(n // 5000) % len(SLOTS)],
            "note": "",
            "status": status,
            "cancel_reason": "fake" if status == "cancelled" else None,
            "paid_minor": amount
            if status == "paid"
            else amount // 2
            if status == "partially_paid"
            else 0,
            "created_at": at,
            "updated_at": at,
        }


def totals_departement(postcode: str) -> str | None:
    from app.pledges.service import departement

    return departement(postcode)


async def _seed(db: Database, rows: int) -> tuple[int, float]:
    async with db.unit_of_work() as uow:
        campaign = Campaign(name="Bench totals", dialled_numbers=[])
        uow.session.add(campaign)
        await uow.session.flush()
        queue = Queue(campaign_id=campaign.id, name="pledges")
        agents = [
            Agent(
                campaign_id=campaign.id,
                login=f"a{i}",
                display_name=f"Agent {i}",
                partner_org=("Lions", "Rotary", None)[i % 3],
            )
            for i in range(50)
        ]
        uow.session.add_all([queue, *agents])
        await uow.session.flush()
        campaign_id, queue_id, agent_ids = campaign.id, queue.id, [a.id for a in agents]
    started = time.monotonic()
    source = _rows(campaign_id, queue_id, agent_ids, rows)
    while True:
        chunk = [row for _, row in zip(range(CHUNK), source, strict=False)]
        if not chunk:
            break
        async with db.unit_of_work() as uow:
            await uow.session.execute(insert(Pledge), chunk)
    # The running roll-ups the app keeps as it saves, rebuilt once for the bulk load.
    async with db.unit_of_work() as uow:
        await rollups.rebuild(uow, campaign_id)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE")
    return campaign_id, time.monotonic() - started


async def _time(
    db: Database, repeats: int, work: Callable[[Any], Awaitable[Any]]
) -> dict[str, Any]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        async with db.read() as session:
            await work(session)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


async def _one(kind: str, rows: int, repeats: int, admin_url: str) -> dict[str, Any]:
    async with _database(kind, admin_url) as url:
        db = Database(make_engine(url))
        try:
            campaign_id, seed_s = await _seed(db, rows)
            async with db.read() as session:
                check = await totals.overall(session, campaign_id)
            return {
                "rows": rows,
                "seed_s": round(seed_s, 1),
                "counted": check["count"],
                "overall_ms": await _time(db, repeats, lambda s: totals.overall(s, campaign_id)),
                "overall_by_query_ms": await _time(
                    db, repeats, lambda s: totals.overall_by_query(s, campaign_id)
                ),
                "board_ms": await _time(db, repeats, lambda s: totals.board(s, campaign_id)),
                "breakdown_ms": await _time(
                    db, repeats, lambda s: totals.campaign_totals(s, campaign_id)
                ),
            }
        finally:
            await db.dispose()


async def _run(options: dict[str, str]) -> dict[str, Any]:
    kinds = {"both": ["sqlite", "postgresql"]}.get(
        options.get("db", "both"), [options.get("db", "both")]
    )
    rows = int(options.get("rows", "100000"))
    repeats = int(options.get("repeats", "30"))
    admin_url = options.get("pg_url", procs.PG_ADMIN_URL)
    figures: dict[str, Any] = {"benchmark": "totals", "rows": rows, "repeats": repeats}
    for kind in kinds:
        figures[kind] = await _one(kind, rows, repeats, admin_url)
    return figures


def run(options: dict[str, str]) -> dict[str, Any]:
    return asyncio.run(_run(options))

"""The routing benchmark's transaction counts (bench/dbstats.py) on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bench.dbstats import DbCounters, PgActivity, per_call
from tests import procs


@pytest.mark.pg_only
async def test_counts_the_transactions_of_its_database_only(pg_database: str) -> None:
    name = pg_database.rsplit("/", 1)[1]
    activity = await PgActivity.open(
        procs.pg_dsn(procs.PG_ADMIN_URL), procs.pg_dsn(pg_database), name
    )
    try:
        before = await activity.read()
        conn = await asyncpg.connect(procs.pg_dsn(pg_database))
        for _ in range(5):
            await conn.execute("SELECT 1")  # autocommit: a transaction each
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("SELECT 1")
        await transaction.rollback()
        await conn.close()  # a backend publishes its counters when it ends
        after = before
        for _ in range(300):  # a guard against a hang, not a timing
            after = await activity.read()
            if after.transactions - before.transactions >= 6 and after.rollbacks > before.rollbacks:
                break
            await asyncio.sleep(0.1)
        assert after.transactions - before.transactions >= 6
        assert after.rollbacks - before.rollbacks >= 1
        # Statements are counted only where the server preloads pg_stat_statements.
        unavailable = activity.statements_source.startswith("unavailable")
        assert (after.statements is None) == unavailable
    finally:
        await activity.close()


def test_per_call_divides_by_the_calls_completed() -> None:
    figures = per_call(DbCounters(100, 10, None), DbCounters(160, 25, None), 4)
    assert figures == {
        "db_transactions": 60,
        "db_rollbacks": 15,
        "db_transactions_per_call": 15.0,
        "db_statements": None,
        "statements_per_call": None,
    }
    counted = per_call(DbCounters(0, 0, 1000), DbCounters(30, 0, 1090), 3)
    assert (counted["statements_per_call"], counted["db_transactions_per_call"]) == (30.0, 10.0)
    assert (
        per_call(DbCounters(0, 0, None), DbCounters(5, 0, None), 0)["db_transactions_per_call"]
        is None
    )

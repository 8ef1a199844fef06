"""What PostgreSQL counted for one database over a window: transactions, statements.

The servers do not count their own statements, so the benchmark reads the
database's counters before and after its measured window:

* ``pg_stat_database`` (always there): ``xact_commit + xact_rollback`` of the
  bench database. Backends publish their counts at most once a second while busy,
  so each end of a window is off by up to about a second of transactions; over a
  60-second window that is under 2 %, and the two ends largely cancel.
* ``pg_stat_statements`` (only when the server preloads it: ``SHOW
  shared_preload_libraries``; the server's configuration is never changed here):
  the sum of ``calls`` of the bench database's statements. The extension is
  created in the bench database, which is dropped afterwards.

Reads go through a connection to the admin database, so they are not counted in
the bench database's transactions; the statement counter is read from the bench
database (the view lives there), one statement per reading, which is negligible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass
class DbCounters:
    transactions: int
    rollbacks: int
    statements: int | None


class PgActivity:
    """Counters of one database, read at the marks of a window."""

    def __init__(self, admin: asyncpg.Connection, bench: asyncpg.Connection | None, name: str):
        self.admin = admin
        self.bench = bench  # None: no pg_stat_statements
        self.name = name
        self.statements_source = "pg_stat_statements"

    @classmethod
    async def open(cls, admin_dsn: str, bench_dsn: str, name: str) -> PgActivity:
        admin = await asyncpg.connect(admin_dsn)
        preload = str(await admin.fetchval("SHOW shared_preload_libraries"))
        bench: asyncpg.Connection | None = None
        reason = "pg_stat_statements"
        if "pg_stat_statements" in [part.strip() for part in preload.split(",")]:
            bench = await asyncpg.connect(bench_dsn)
            try:
                await bench.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            except asyncpg.PostgresError as exc:
                await bench.close()
                bench = None
                reason = f"unavailable: CREATE EXTENSION pg_stat_statements failed ({exc})"
        else:
            reason = (
                "unavailable: pg_stat_statements is not in shared_preload_libraries "
                f"({preload or 'empty'}); server configuration left alone"
            )
        activity = cls(admin, bench, name)
        activity.statements_source = reason
        return activity

    async def read(self) -> DbCounters:
        row = await self.admin.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1",
            self.name,
        )
        statements = None
        if self.bench is not None:
            statements = int(
                await self.bench.fetchval(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                    "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
                    self.name,
                )
            )
        commits, rollbacks = (int(row[0]), int(row[1])) if row else (0, 0)
        return DbCounters(commits + rollbacks, rollbacks, statements)

    async def close(self) -> None:
        await self.admin.close()
        if self.bench is not None:
            await self.bench.close()


def per_call(before: DbCounters, after: DbCounters, calls: int) -> dict[str, Any]:
    """Transactions (and statements, when counted) per completed call over a window."""
    transactions = after.transactions - before.transactions
    statements = (
        after.statements - before.statements
        if after.statements is not None and before.statements is not None
        else None
    )
    return {
        "db_transactions": transactions,
        "db_rollbacks": after.rollbacks - before.rollbacks,
        "db_transactions_per_call": round(transactions / calls, 2) if calls else None,
        "db_statements": statements,
        "statements_per_call": (
            round(statements / calls, 2) if calls and statements is not None else None
        ),
    }

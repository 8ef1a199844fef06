"""app/sqlite_driver.py: SQLite statements through the app's engine, one trip each to
the connection's thread, with every row, count and key as the stock driver gives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import make_engine
from app.sqlite_driver import FIRST_ROWS, OneTripConnection

MANY = FIRST_ROWS * 3 + 7  # rows enough for several trips


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}", pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT NOT NULL)"))
        await conn.execute(
            text("INSERT INTO t (id, label) VALUES (:id, :label)"),
            [{"id": n, "label": f"row {n}"} for n in range(1, MANY + 1)],
        )
    yield engine
    await engine.dispose()


async def _driver(conn: AsyncConnection) -> OneTripConnection:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, OneTripConnection)
    return driver


async def test_a_statement_and_its_rows_are_one_trip(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        driver = await _driver(conn)
        await conn.execute(text("SELECT 1"))  # the transaction has begun
        before = driver.trips
        inserted = await conn.execute(
            text("INSERT INTO t (label) VALUES ('new') RETURNING id, label")
        )
        assert inserted.all() == [(MANY + 1, "new")]
        # Open, execute, fetch and close: four trips with aiosqlite's own cursor.
        assert driver.trips - before == 1


async def test_rows_past_the_first_trip_are_all_read_in_order(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        driver = await _driver(conn)
        await conn.execute(text("SELECT 1"))
        before = driver.trips
        rows = (await conn.execute(text("SELECT id, label FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(n, f"row {n}") for n in range(1, MANY + 1)]
        assert driver.trips - before == 2  # the first rows, then the rest at once


async def test_a_streamed_result_is_read_a_batch_at_a_time(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        result = await conn.stream(text("SELECT id FROM t ORDER BY id"))
        seen = [row.id async for row in result]
        assert seen == list(range(1, MANY + 1))
        # A statement after one read only in part finds its cursor closed.
        partial = await conn.stream(text("SELECT id FROM t ORDER BY id"))
        assert (await partial.fetchone()) == (1,)
        await partial.close()
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == MANY


async def test_counts_and_keys_are_those_of_sqlite(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        updated = await conn.execute(text("UPDATE t SET label = 'even' WHERE id % 2 = 0"))
        assert updated.rowcount == MANY // 2
        added = await conn.exec_driver_sql("INSERT INTO t (label) VALUES ('keyed')")
        assert added.lastrowid == MANY + 1
        many = await conn.execute(
            text("INSERT INTO t (label) VALUES (:label)"), [{"label": "a"}, {"label": "b"}]
        )
        assert many.rowcount == 2
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == MANY + 3


async def test_a_failed_statement_raises_and_the_connection_goes_on(engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (label) VALUES ('kept until the error')"))
            await conn.execute(text("INSERT INTO t (id, label) VALUES (1, 'taken')"))
    async with engine.connect() as conn:
        labels = (await conn.execute(text("SELECT label FROM t WHERE id > :n"), {"n": MANY})).all()
        assert labels == []  # the whole transaction went back

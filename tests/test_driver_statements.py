"""Kept statements compiled once for their driver (``app/driver_statements.py``), here
through SQLite's writer (``Database.write_at_once``): parameters and rows converted by
the columns' types as SQLAlchemy converts them, compiled forms dropped with their
statements, failures raised as SQLAlchemy's without the values."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from app.db import Database, Json, UTCDateTime
from app.driver_statements import Compiled
from tests.conftest import sqlite_with

TABLE = Table(
    "t_kept",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime),
    Column("data", Json),
)
INSERT = (
    insert(TABLE)
    .values({name: bindparam(name, type_=TABLE.c[name].type) for name in ("id", "at", "data")})
    .returning(TABLE.c.id, TABLE.c.at, TABLE.c.data)
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_with(tmp_path / "kept.db", TABLE.metadata) as database:
        yield database


async def test_values_and_rows_are_converted_by_the_columns_types(db: Database) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2026, 12, 7, 21, 30, tzinfo=paris)
    sent: list[str] = []
    db.on_statement_sent.append(sent.append)
    rows = await db.write_at_once(
        lambda conn: conn.rows(INSERT, {"id": 1, "at": at, "data": {"amount_minor": 2500}})
    )
    # The row as a session reads it: an aware time in UTC, the JSON as a dict.
    assert rows == [{"id": 1, "at": at, "data": {"amount_minor": 2500}}]
    assert rows[0]["at"].utcoffset() == dt.timedelta(0)
    assert [s.split()[0] for s in sent] == ["BEGIN", "INSERT"]
    async with db.read() as session:
        stored = (await session.execute(select(TABLE.c.at, TABLE.c.data))).one()
    assert tuple(stored) == (at, {"amount_minor": 2500})


async def test_a_failure_is_sqlalchemys_without_the_values_and_undoes_the_write(
    db: Database,
) -> None:
    now = dt.datetime.now(dt.UTC)

    def twice(conn: Any) -> None:
        conn.rows(INSERT, {"id": 5, "at": now, "data": {"donor": "Secret-Name"}})
        conn.rows(INSERT, {"id": 5, "at": now, "data": {"donor": "Secret-Name"}})

    with pytest.raises(IntegrityError) as taken:
        await db.write_at_once(twice)
    assert "Secret" not in str(taken.value)
    with pytest.raises(KeyError, match="'data'"):
        await db.write_at_once(lambda conn: conn.rows(INSERT, {"id": 6, "at": now}))
    async with db.read() as session:
        assert (await session.execute(select(TABLE.c.id))).all() == []


def test_a_compiled_form_goes_with_its_statement() -> None:
    compiled = Compiled(sqlite.dialect())
    statement = insert(TABLE).values(id=bindparam("id"))
    first = compiled(statement)
    assert compiled(statement) is first  # compiled once
    assert first.sql.startswith("INSERT INTO t_kept (id) VALUES (?)")
    del statement
    gc.collect()
    # Dropped with the statement: a new statement at the same address compiles anew.
    assert len(compiled._kept) == 0

"""A statement sent straight to asyncpg (``app/pg_driver.py``, ``Database.execute_alone``):
its parameters converted as SQLAlchemy would, its failures raised as SQLAlchemy's,
a broken connection dropped, and every statement heard by the listeners."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, Table, bindparam, column, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from app.db import Database, UTCDateTime, make_engine
from app.driver_statements import compile_for_driver
from tests.conftest import _pg_dsn


@pytest.fixture
async def db(pg_database: str) -> AsyncIterator[Database]:
    database = Database(make_engine(pg_database))
    try:
        yield database
    finally:
        await database.engine.dispose()


@pytest.fixture
async def table(db: Database) -> AsyncIterator[Table]:
    made = Table(
        f"t_driver_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("at", UTCDateTime),
        Column("data", JSONB),
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(made.metadata.create_all)
    yield made
    async with db.engine.begin() as conn:
        await conn.run_sync(made.metadata.drop_all)


def _insert(table: Table) -> object:
    """A kept statement: the columns' types on its parameters (their conversions run)."""
    return (
        text(f"INSERT INTO {table.name} (id, at, data) VALUES (:id, :at, :data) RETURNING id")
        .bindparams(bindparam("at", type_=UTCDateTime()), bindparam("data", type_=JSONB()))
        .columns(column("id", Integer))
    )


async def test_parameters_are_converted_as_sqlalchemy_converts_them(
    db: Database, table: Table
) -> None:
    """A time in another zone through the app's UTC type, a dict as JSONB; rows as dicts;
    the listeners hear each statement."""
    sent: list[str] = []
    db.on_statement_sent.append(sent.append)
    statement = _insert(table)
    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2026, 12, 7, 21, 30, tzinfo=paris)
    assert await db.execute_alone(statement, {"id": 7, "at": at, "data": {"n": 2500}}) == [
        {"id": 7}
    ]
    assert await db.execute_alone(statement, {"id": 8, "at": at, "data": []}) == [{"id": 8}]
    assert len(sent) == 2 and all(s.lstrip().startswith("INSERT") for s in sent), sent
    async with db.read() as session:
        stored = (
            await session.execute(text(f"SELECT id, at, data FROM {table.name} ORDER BY id"))
        ).all()
    assert [(r.id, r.data) for r in stored] == [(7, {"n": 2500}), (8, [])]
    assert stored[0].at == at and stored[0].at.utcoffset() == dt.timedelta(0)


async def test_a_missing_parameter_is_refused_before_anything_is_sent(
    db: Database, table: Table
) -> None:
    sent: list[str] = []
    db.on_statement_sent.append(sent.append)
    with pytest.raises(KeyError, match="'data'"):
        await db.execute_alone(_insert(table), {"id": 1, "at": dt.datetime.now(dt.UTC)})
    assert sent == []


async def test_failures_are_sqlalchemys_errors_without_the_values(
    db: Database, table: Table
) -> None:
    """A taken key is an IntegrityError (what the callers tell apart), a bad statement a
    ProgrammingError; neither shows the values (a donor's details); the connection
    goes on serving."""
    statement = _insert(table)
    secret = {"donor": "Marie Curie-Secret"}
    now = dt.datetime.now(dt.UTC)
    await db.execute_alone(statement, {"id": 1, "at": now, "data": secret})
    with pytest.raises(IntegrityError) as taken:
        await db.execute_alone(statement, {"id": 1, "at": now, "data": secret})
    assert "Secret" not in str(taken.value) and not taken.value.connection_invalidated
    with pytest.raises(ProgrammingError):
        await db.execute_alone(text("SELECT no_such_column FROM pg_class"), {})
    assert await db.execute_alone(statement, {"id": 2, "at": now, "data": {}}) == [{"id": 2}]


async def test_a_connection_cut_mid_statement_is_dropped_and_the_next_goes_on(
    db: Database, pg_database: str
) -> None:
    """The server ends the backend while the statement runs: an OperationalError marked
    invalidated (the app answers 503), and the pool does not hand that connection out
    again: the next statement runs."""
    marker = f"driver-cut-{uuid.uuid4().hex[:8]}"
    sleeping = asyncio.create_task(
        db.execute_alone(text(f"SELECT pg_sleep(30), '{marker}' AS marker"), {})
    )
    admin = await asyncpg.connect(_pg_dsn(pg_database))
    try:
        for _ in range(500):  # until the statement is seen running (not a timing)
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
                f"%{marker}%",
            )
            if pid is not None:
                break
            await asyncio.sleep(0.01)
        assert pid is not None
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    with pytest.raises(OperationalError) as cut:
        await sleeping
    assert cut.value.connection_invalidated
    for _ in range(3):  # whichever pooled connection comes next, none is the dead one
        assert await db.execute_alone(text("SELECT 1 AS one"), {}) == [{"one": 1}]


def test_a_column_the_driver_would_not_give_as_is_is_refused(db: Database) -> None:
    """A result column that needs SQLAlchemy's conversion (a Numeric read as float) is
    refused when the statement is compiled, not silently given raw."""
    statement = text("SELECT 1.5 AS n").columns(column("n", Numeric(asdecimal=False)))
    with pytest.raises(ValueError, match="column n"):
        compile_for_driver(statement, db.engine.dialect)

"""app/db.py: how transactions end on SQLite when the task running one is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import gc
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from app.db import (
    ROWS_AT_ONCE,
    AddOnConflict,
    ClaimTaken,
    Database,
    as_cacheable_text,
    built_once,
    make_engine,
)


@pytest.fixture
def no_gc() -> Iterator[None]:
    # Garbage collection would close a leaked connection at some random moment and
    # hide the leak; without it a leak holds the lock until the probe gives up.
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_a_writer_cancelled_mid_statement_leaves_no_lock(tmp_path: Path, no_gc: None) -> None:
    path = tmp_path / "cancel.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.close()
    db = Database(make_engine(f"sqlite+aiosqlite:///{path}"))
    # hold() keeps a statement in flight on the connection's thread until released,
    # so the cancellation lands while it runs, every time.
    entered, release = threading.Event(), threading.Event()

    def hold() -> int:
        entered.set()
        release.wait(timeout=30)
        return 1

    @event.listens_for(db.engine.sync_engine, "connect")
    def _add_hold(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("hold", 0, hold)

    async def writer() -> None:
        async with db.unit_of_work() as uow:
            await uow.session.execute(text("INSERT INTO t (x) VALUES (1)"))
            await uow.session.execute(text("SELECT hold()"))

    task = asyncio.create_task(writer())
    assert await asyncio.to_thread(entered.wait, 30)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await db.dispose()
    # Another writer gets the lock: the cancelled write left nothing behind.
    probe = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        assert probe.execute("SELECT count(*) FROM t").fetchone() == (0,)
        probe.execute("ROLLBACK")
    finally:
        probe.close()


def test_a_statement_is_built_once_per_key() -> None:
    builds: list[str] = []

    def build(name: str) -> Any:
        builds.append(name)
        return text(f"SELECT '{name}'")

    key = ("test_db", "built once")
    first = built_once(key, lambda: build("first"))
    again = built_once(key, lambda: build("second"))
    other = built_once(("test_db", "another shape"), lambda: build("other"))
    assert again is first  # the same object: SQLAlchemy keeps its cache key
    assert other is not first
    assert builds == ["first", "other"]


@pytest.mark.parametrize("postgres", [True, False])
def test_a_multi_row_insert_becomes_cacheable_text_with_the_same_parameters(postgres: bool) -> None:
    table = Table("t", MetaData(), Column("n", Integer), Column("word", String(10)))
    rows = [{"n": bindparam(f"n_{i}"), "word": bindparam(f"word_{i}")} for i in range(3)]
    stmt = (pg_insert if postgres else sqlite_insert)(table).values(rows)
    # SQLAlchemy compiles a multi-row VALUES anew at every execution: it has no key.
    assert stmt._generate_cache_key() is None
    cached = as_cacheable_text(stmt, postgres)
    assert cached._generate_cache_key() is not None
    # PostgreSQL's casts (``:word_0::VARCHAR``) must not cut a parameter's name short.
    assert set(cached._bindparams) == {f"{c}_{i}" for c in ("n", "word") for i in range(3)}


async def test_a_unit_of_work_writes_its_outbox_rows_in_one_statement_on_postgresql(
    pg_database: str,
) -> None:
    """Events, timers and platform commands staged by one unit of work go out in one
    statement on PostgreSQL, each event getting its own sequence number in order."""
    from app.acd import timers
    from app.outbox import CommandName, emit, issue

    db = Database(make_engine(pg_database))
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    marker = f"at-once-{id(sent)}"
    due = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    try:
        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        async with db.unit_of_work() as uow:
            first = emit(uow, "test.first", data={"marker": marker})
            second = emit(uow, "test.second", data={"marker": marker})
            timers.schedule(uow, "test_timer", due, data={"marker": marker})
            issue(uow, CommandName.HANGUP, marker, reason="test")
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        assert len([s for s in sent if "INSERT" in s]) == 1, sent
        assert first.seq is not None and second.seq == first.seq + 1
        async with db.read() as session:
            stored = (
                await session.execute(
                    text("SELECT seq, type FROM events WHERE data->>'marker' = :m ORDER BY seq"),
                    {"m": marker},
                )
            ).all()
            timer_due = (
                await session.execute(
                    text("SELECT due_at FROM timers WHERE data->>'marker' = :m"), {"m": marker}
                )
            ).scalar_one()
            command = (
                await session.execute(
                    text(
                        "SELECT command, args FROM telephony_commands WHERE provider_call_id = :m"
                    ),
                    {"m": marker},
                )
            ).one()
        assert [tuple(r) for r in stored] == [
            (first.seq, "test.first"),
            (second.seq, "test.second"),
        ]
        assert timer_due == due
        assert tuple(command) == ("hangup", {"reason": "test"})
    finally:
        await db.engine.dispose()


async def test_running_totals_staged_in_one_transaction_are_summed_per_key(
    database_url: str,
) -> None:
    """Rows staged with ``stage_adding`` add to the stored row of their key; two rows of
    one key in one transaction are summed first (one row may not be updated twice by
    one statement), and a rolled-back savepoint's rows are dropped."""
    table = Table(
        f"t_totals_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("k", String(10), primary_key=True),
        Column("n", Integer, nullable=False),
    )
    from app.outbox import emit

    adding = AddOnConflict(conflict=("k",), add=("n",))
    db = Database(make_engine(database_url))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        async with db.unit_of_work() as uow:
            uow.stage_adding(table, {"k": "b", "n": 5}, adding)
            uow.stage_adding(table, {"k": "a", "n": 1}, adding)
            uow.stage_adding(table, {"k": "a", "n": 2}, adding)
            mark = uow.mark()
            uow.stage_adding(table, {"k": "a", "n": 100}, adding)
            uow.rollback_to(mark)
        async with db.unit_of_work() as uow:
            uow.stage_adding(table, {"k": "a", "n": 1}, adding)
        async with db.read() as session:
            rows = (await session.execute(select(table).order_by(table.c.k))).all()
        assert [tuple(r) for r in rows] == [("a", 4), ("b", 5)]
        # More keys than go in one statement (a bulk change): written in batches.
        many = ROWS_AT_ONCE * 2 + 5
        async with db.unit_of_work() as uow:
            emit(uow, "test.many")
            for n in range(many):
                uow.stage_adding(table, {"k": f"m{n:03d}", "n": n}, adding)
                uow.stage_adding(table, {"k": "a", "n": 1}, adding)
        async with db.read() as session:
            total = (await session.execute(select(func.sum(table.c.n)))).scalar_one()
            a = (await session.execute(select(table.c.n).where(table.c.k == "a"))).scalar_one()
        assert a == 4 + many
        assert total == 4 + 5 + many + sum(range(many))
    finally:
        async with db.engine.begin() as conn:
            await conn.run_sync(table.metadata.drop_all)
        await db.engine.dispose()


async def test_a_claim_already_taken_undoes_the_whole_unit_of_work(database_url: str) -> None:
    """A row staged with ``stage_claim`` whose key is taken raises ``ClaimTaken`` as the
    unit of work ends, and nothing it wrote is kept (its events included); on
    PostgreSQL the claim travels in the same statement as the events."""
    from app.outbox import emit

    table = Table(
        f"t_claims_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("claim", String(40), primary_key=True),
        Column("attempt", Integer, nullable=False),
    )
    marker = f"claim-{uuid.uuid4().hex[:8]}"
    db = Database(make_engine(database_url))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        for attempt in (1, 2):
            with contextlib.nullcontext() if attempt == 1 else pytest.raises(ClaimTaken):
                async with db.unit_of_work() as uow:
                    emit(uow, "test.claimed", data={"marker": marker, "attempt": attempt})
                    uow.stage_claim(table, {"claim": marker, "attempt": attempt})
        async with db.read() as session:
            claims = (await session.execute(select(table))).all()
            events = (
                await session.execute(
                    text("SELECT count(*) FROM events WHERE type = 'test.claimed' AND data LIKE :m")
                    if db.is_sqlite
                    else text("SELECT count(*) FROM events WHERE data->>'marker' = :m"),
                    {"m": f"%{marker}%" if db.is_sqlite else marker},
                )
            ).scalar_one()
        assert [tuple(r) for r in claims] == [(marker, 1)]
        assert events == 1
    finally:
        async with db.engine.begin() as conn:
            await conn.run_sync(table.metadata.drop_all)
        await db.engine.dispose()


async def test_sqlite_keeps_every_connection_it_opened(tmp_path: Path) -> None:
    """As on PostgreSQL (tests/test_database_away.py): a burst as wide as the pool
    opens each connection once. An overflow connection would be closed when handed
    back, and the next burst would pay a thread, the PRAGMAs and a schema parse anew."""
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.db'}", pool_size=8)
    reader = engine.execution_options(pledgeline_readonly=True)  # BEGIN DEFERRED: no lock
    opened: list[int] = []
    event.listen(engine.sync_engine, "connect", lambda conn, _record: opened.append(id(conn)))
    try:

        async def burst() -> None:
            ready = asyncio.Event()
            held: list[int] = []

            async def hold() -> None:
                async with reader.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    held.append(1)
                    if len(held) == 8:
                        ready.set()
                    await ready.wait()  # all eight held at once

            await asyncio.gather(*(hold() for _ in range(8)))

        await burst()
        await burst()
        assert len(opened) == 8
    finally:
        await engine.dispose()


async def test_a_statement_alone_commits_whole_or_not_at_all_and_is_announced(
    pg_database: str,
) -> None:
    """``Database.execute_alone`` sends one statement, its own transaction: kept without
    a ``COMMIT`` (a connection handed back in a transaction rolls back), and a CTE that
    fails undoes the ones before it; ``committed`` hands the events to the listeners
    and wakes the readers of the tables written."""
    from app.outbox import Event

    table = Table(
        f"t_alone_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("id", Integer, primary_key=True),
    )
    db = Database(make_engine(pg_database))
    sent: list[str] = []
    heard: list[list[Any]] = []
    woken: list[str] = []

    async def listener(events: list[Any]) -> None:
        heard.append(events)

    db.on_events.append(listener)
    db.on_rows_written[table.name] = [lambda: woken.append(table.name)]
    both = text(
        f"WITH a AS (INSERT INTO {table.name} (id) VALUES (:first) RETURNING id), "
        f"b AS (INSERT INTO {table.name} (id) VALUES (:second) RETURNING id) "
        "SELECT (SELECT id FROM a) AS a, (SELECT id FROM b) AS b"
    )
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        db.on_statement_sent.append(sent.append)  # sent past SQLAlchemy's events
        rows = await db.execute_alone(both, {"first": 1, "second": 2})
        assert [dict(r) for r in rows] == [{"a": 1, "b": 2}]
        assert len(sent) == 1, sent
        with pytest.raises(IntegrityError):  # 3 goes in, then 2 is taken: neither stays
            await db.execute_alone(both, {"first": 3, "second": 2})
        async with db.read() as session:
            kept = (await session.execute(select(table.c.id).order_by(table.c.id))).scalars()
            assert list(kept) == [1, 2]
        done = Event(seq=1, type="test.alone", data={})
        await db.committed([done], [table.name])
        assert heard == [[done]] and woken == [table.name]
    finally:
        async with db.engine.begin() as conn:
            await conn.run_sync(table.metadata.drop_all)
        await db.engine.dispose()


async def test_a_write_at_once_is_one_transaction_in_the_writer_thread(tmp_path: Path) -> None:
    """SQLite: ``Database.write_at_once`` runs its work whole in the writer's thread, in
    one ``BEGIN IMMEDIATE`` transaction: kept when the work returns, all rolled back
    when it raises; the caller's context goes along; other writers wait their turn."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}"
    table = Table("t_writer", MetaData(), Column("id", Integer, primary_key=True))
    db = Database(make_engine(url))
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="")
    seen: list[tuple[str, str, str]] = []

    def record(statement: str) -> None:
        seen.append((threading.current_thread().name, marker.get(), statement.split()[0]))

    insert = table.insert().values(id=bindparam("id"))  # kept: compiled once

    def insert_both(conn: Any, first: int, second: int) -> int:
        conn.rows(insert, {"id": first})
        conn.rows(insert, {"id": second})
        return first + second

    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        db.on_statement_sent.append(record)  # sent past SQLAlchemy's events
        marker.set("request")
        assert await db.write_at_once(lambda conn: insert_both(conn, 1, 2)) == 3
        with pytest.raises(IntegrityError):  # 3 goes in, then 2 is taken: neither stays
            await db.write_at_once(lambda conn: insert_both(conn, 3, 2))
        # Two writers at once: each waits for the other's transaction, neither fails.
        async with asyncio.TaskGroup() as group:
            group.create_task(db.write_at_once(lambda conn: insert_both(conn, 4, 5)))
            async with db.unit_of_work() as uow:
                await uow.session.execute(table.insert(), {"id": 6})
        async with db.read() as session:
            kept = (await session.execute(select(table.c.id).order_by(table.c.id))).scalars()
            assert list(kept) == [1, 2, 4, 5, 6]
        written = [s for s in seen if s[0].startswith("sqlite-writer")]
        assert [s[2] for s in written[:3]] == ["BEGIN", "INSERT", "INSERT"]
        assert {s[1] for s in written} == {"request"}
    finally:
        await db.dispose()

"""Database engine, portable column types and the unit of work.

One codebase runs on SQLite (embedded, one process) and PostgreSQL (any number of
processes). The differences are kept here:

* SQLite runs in WAL mode with foreign keys and a busy timeout. Writing
  transactions start with ``BEGIN IMMEDIATE`` so a claim never upgrades a read
  lock half-way (which would fail with "database is locked"); inside the one
  process an asyncio lock queues writers instead of letting them spin on the
  busy handler.
* PostgreSQL claims rows with ``FOR UPDATE SKIP LOCKED`` (see ``app/acd/router.py``).

A unit of work is one transaction: the state change and its events are written
together, committed once at the boundary (the endpoint or the worker), and only
then are the events published and the after-commit hooks run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    Table,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.elements import BindParameter, TextClause
from sqlalchemy.types import TypeDecorator

from app import driver_statements, pg_driver, sqlite_driver
from app.sqlite_writer import SQLiteWriter, WriterConnection

log = logging.getLogger(__name__)

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only auto-increments an INTEGER PRIMARY KEY, so big ids fall back to Integer there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL (indexable, compact); plain JSON text elsewhere.
Json = JSON().with_variant(postgresql.JSONB(), "postgresql")


def as_utc(value: Any) -> dt.datetime | None:
    """A timestamp as the database gives it back (naive UTC, ISO text on SQLite for
    an aggregate such as ``min()``, or aware) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
    return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always tz-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is
    stored as naive UTC and given its zone back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return as_utc(value)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite://`` URLs and pick the async driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


class _SQLiteConnection(sqlite3.Connection):
    """A connection that gives its transaction back before it closes.

    A task cancelled in the middle of a statement leaves that statement referenced
    from the cancellation's traceback; ``close()`` then only turns the connection
    into a "zombie" that keeps its transaction, and its write lock, until garbage
    collection, so every other writer fails with "database is locked". A rollback
    first ends the transaction whatever statements are still about.
    """

    def close(self) -> None:
        if self.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.rollback()
        super().close()


@dataclass(frozen=True)
class _SQLiteSetup:
    """How :func:`make_engine` opens an SQLite database: what a second engine on it
    (the writer of ``Database.write_at_once``) needs to open it the same way."""

    url: str
    connect_args: tuple[Any, ...]  # sqlite3.connect's, as SQLAlchemy reads the URL
    connect_options: dict[str, Any]
    busy_timeout_ms: int
    synchronous: str
    foreign_keys: bool

    def connect_kwargs(self) -> dict[str, Any]:
        return {
            **self.connect_options,
            "timeout": self.busy_timeout_ms / 1000,
            "factory": _SQLiteConnection,
        }


# The set-up of each SQLite engine make_engine built (by its synchronous engine).
_sqlite_setups: weakref.WeakKeyDictionary[Engine, _SQLiteSetup] = weakref.WeakKeyDictionary()


def _configure_sqlite(engine: Engine, setup: _SQLiteSetup) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if setup.foreign_keys else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout={int(setup.busy_timeout_ms)}")
        # WAL + NORMAL survives an application crash; FULL also a power cut, at one
        # fsync per commit (see the PLEDGELINE_SQLITE_SYNCHRONOUS setting).
        full = setup.synchronous == "FULL"
        cursor.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("pledgeline_readonly", False)
        conn.exec_driver_sql("BEGIN DEFERRED" if readonly else "BEGIN IMMEDIATE")


def typed_binds(
    table: Table, names: Iterable[str], prefix: str = ""
) -> dict[str, BindParameter[Any]]:
    """A bound parameter ``<prefix><name>`` per column ``name`` of ``table``, of the
    column's type (its conversions run, whoever sends the statement)."""
    return {name: bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in names}


def json_text(value: Any) -> str:
    """A JSON column's value as the text written (orjson: the JSON ``json.dumps`` gave,
    compact, in a tenth of the time; keys that are numbers written as strings, as
    ``json.dumps`` writes them)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(
    url: str,
    *,
    pool_size: int = 20,
    busy_timeout_ms: int = 5000,
    synchronous: str = "NORMAL",
    foreign_keys: bool = True,
) -> AsyncEngine:
    """The engine for ``url``. ``foreign_keys=False`` is for migrations on SQLite only
    (migrations/env.py): there a table altered in batch mode is copied, dropped and
    renamed, and with foreign keys enforced dropping it would delete, by cascade,
    every row of the tables that refer to it."""
    url = async_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args, connect_options = SQLiteDialect_aiosqlite().create_connect_args(parsed)
        setup = _SQLiteSetup(
            url,
            tuple(connect_args),
            dict(connect_options),
            busy_timeout_ms,
            synchronous,
            foreign_keys,
        )
        engine = create_async_engine(
            url,
            # One trip to the connection's thread per statement (app/sqlite_driver.py).
            async_creator=sqlite_driver.connector(*connect_args, **setup.connect_kwargs()),
            # As on PostgreSQL (below): every connection kept once opened. A new one
            # costs a thread, its PRAGMAs and a parse of the whole schema.
            pool_size=pool_size,
            max_overflow=0,
            json_serializer=json_text,
        )
        _configure_sqlite(engine.sync_engine, setup)
        _sqlite_setups[engine.sync_engine] = setup
        return engine
    # Every connection is kept once opened, none beyond ``pool_size``: an overflow
    # connection is closed when handed back, so a burst above the pool (a pledge
    # appeal) opened and closed one per request, each costing more than the request.
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=0, json_serializer=json_text
    )
    _ping_idle_connections(engine)
    return engine


def _writer_engine(setup: _SQLiteSetup) -> Engine:
    """A synchronous engine of one connection on the database of ``setup``."""
    args, kwargs = setup.connect_args, setup.connect_kwargs()
    engine = create_engine(
        make_url(setup.url).set(drivername="sqlite+pysqlite"),
        creator=lambda: sqlite3.connect(*args, **kwargs),
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        json_serializer=json_text,
    )
    _configure_sqlite(engine, setup)
    return engine


# A pooled connection that sat idle this long is checked before use (it may have died
# with a database restart). A busy pool is not: SQLAlchemy's pre-ping costs three
# round trips (BEGIN, ";", ROLLBACK) per checkout, a fifth of a call's transactions,
# and a connection that breaks while in use is invalidated with the whole pool by
# SQLAlchemy anyway (the request answers 503, the next gets a new connection).
IDLE_PING_SECONDS = 2.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["pledgeline_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("pledgeline_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:  # the pool replaces it and tries again
            raise DisconnectionError(f"idle connection is gone: {exc}") from exc


AfterCommit = Callable[[], Awaitable[None]]


_statements: dict[Hashable, Any] = {}


def built_once(key: Hashable, build: Callable[[], Any]) -> Any:
    """The statement known by ``key``, built by ``build`` the first time only.

    The call path's statements are kept and bound per use (``bindparam``): building
    one, and SQLAlchemy's walk of it for its compiled-cache key, costs more than
    running it; a statement object used again keeps its key. ``key`` starts with
    the module's own name for the statement, then what shapes it (the dialect...).
    """
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = build()
    return stmt


def as_cacheable_text(stmt: Any, postgres: bool) -> TextClause:
    """``stmt`` compiled once into a ``text()`` with the same named parameters.

    For statements SQLAlchemy cannot cache, above all a multi-row ``INSERT ...
    VALUES`` (logged as ``[no key]``): it compiles them anew on every execution,
    about 0.3 ms a time. A ``text()`` is cached by its string. Compiled for the plain
    dialect, so the parameters are ``:name``; they keep their types.
    """
    sql, binds = as_named_sql(stmt, postgres)
    return text(sql).bindparams(*binds)


def as_named_sql(stmt: Any, postgres: bool) -> tuple[str, list[BindParameter[Any]]]:
    """``stmt`` as SQL for ``text()`` (``:name`` parameters) and its typed parameters,
    to be part of a larger ``text()`` (its values, if it has any, are not kept)."""
    dialect = (postgresql if postgres else sqlite).dialect(paramstyle="named")
    compiled = stmt.compile(dialect=dialect)
    # PostgreSQL's casts (``:name::VARCHAR``) escaped, else text() reads ``:VARCHAR``.
    sql = str(compiled).replace("::", "\\:\\:")
    # The parameters keep their types: a JSON value is serialised, a time checked UTC.
    return sql, [bindparam(name, type_=bind.type) for name, bind in compiled.binds.items()]


def _insert_of(table: Table, returning: Any = None) -> Any:
    """The outbox's ``INSERT`` into ``table`` (``RETURNING`` the key given)."""
    if returning is None:
        return built_once(("outbox insert", table.name), lambda: insert(table))
    key = ("outbox insert", table.name, returning.name)
    return built_once(key, lambda: insert(table).returning(returning))


@dataclass(frozen=True)
class AddOnConflict:
    """Staged rows that are running totals: a row whose ``conflict`` columns match a
    stored row adds its ``add`` columns to it (``ON CONFLICT DO UPDATE``)."""

    conflict: tuple[str, ...]
    add: tuple[str, ...]


class ClaimTaken(Exception):
    """A row staged with ``UnitOfWork.stage_claim`` was there already: nothing of the
    unit of work is kept (its transaction rolls back)."""


# Tables with more staged rows than this go out one statement each, in batches of it:
# a statement per row count is compiled and kept, and PostgreSQL takes at most 32,767
# parameters a statement (a step stages one to three rows a table).
ROWS_AT_ONCE = 32

# A staged table's shape in one statement: the table, its row keys, how many rows,
# whether the assigned primary keys come back, whether rows add to stored ones, and
# whether they are claims (``ON CONFLICT DO NOTHING``, each must go in).
_StagedShape = tuple[Table, tuple[str, ...], int, bool, AddOnConflict | None, bool]


def _multi_row_insert(postgres: bool, shape: _StagedShape, prefix: str) -> Any:
    """The shape's multi-row ``INSERT`` with parameters ``{prefix}{column}_{row}``."""
    table, keys, count, _returning, adding, claim = shape
    rows = [
        {k: bindparam(f"{prefix}{k}_{n}", type_=table.c[k].type) for k in keys}
        for n in range(count)
    ]
    write = (postgresql.insert if postgres else sqlite.insert)(table).values(rows)
    if claim:
        return write.on_conflict_do_nothing()
    if adding is None:
        return write
    return write.on_conflict_do_update(
        index_elements=list(adding.conflict),
        set_={c: table.c[c] + write.excluded[c] for c in adding.add},
    )


def _adding_insert(postgres: bool, shape: _StagedShape) -> TextClause:
    """One table's running totals added in one statement (params ``{column}_{row}``)."""
    table, keys, count, _returning, adding, _claim = shape
    key = ("staged totals", postgres, table.name, keys, count, adding)
    clause: TextClause = built_once(
        key, lambda: as_cacheable_text(_multi_row_insert(postgres, shape, ""), postgres)
    )
    return clause


def _inserts_at_once(shapes: tuple[_StagedShape, ...]) -> TextClause:
    """PostgreSQL: the staged rows of several tables in one statement, each table's
    multi-row ``INSERT`` a data-modifying CTE (run once and to the end even when the
    final ``SELECT`` does not read it), the keys of those that return them read back
    as ``(table index, key)``. One round trip where each table took its own."""

    def build() -> TextClause:
        ctes, returned = [], []
        for i, shape in enumerate(shapes):
            table, returning, claim = shape[0], shape[3], shape[5]
            write = _multi_row_insert(True, shape, f"t{i}_")
            if claim:  # a row per claim that went in
                cte = write.returning(literal_column("0").label("k")).cte(f"w{i}")
                returned.append(select(literal_column(str(i)).label("t"), cte.c.k))
            elif returning:
                key = next(iter(table.primary_key.columns))
                cte = write.returning(key.label("k")).cte(f"w{i}")
                returned.append(select(literal_column(str(i)).label("t"), cte.c.k))
            else:
                cte = write.cte(f"w{i}")
            ctes.append(cte)
        if not returned:
            final: Any = select(literal_column("-1").label("t"), literal_column("0").label("k"))
        else:
            final = returned[0] if len(returned) == 1 else union_all(*returned)
        return as_cacheable_text(final.add_cte(*ctes), postgres=True)

    key = ("staged inserts at once", *((t.name, *rest) for t, *rest in shapes))
    clause: TextClause = built_once(key, build)
    return clause


class _Staged:
    """Rows of one table waiting to be written in one multi-row INSERT at commit.

    ``targets[i]``, when not None, is an object whose primary-key attribute gets the
    value the database assigned to ``rows[i]`` (the events' ``seq``).
    """

    def __init__(
        self, table: Table, adding: AddOnConflict | None = None, claim: bool = False
    ) -> None:
        self.table = table
        self.adding = adding
        self.claim = claim
        self.rows: list[dict[str, Any]] = []
        self.targets: list[Any] = []

    def shape(self) -> _StagedShape:
        returning = any(t is not None for t in self.targets)
        keys = tuple(self.rows[0])
        return (self.table, keys, len(self.rows), returning, self.adding, self.claim)

    def add_up(self) -> None:
        """Running totals: one row per conflict key, in key order (so two transactions
        lock shared rows in the same order), each the sum of the rows staged for it.
        Summed only now, so a rolled-back savepoint's rows are simply dropped."""
        if self.adding is None:
            return
        conflict, add = self.adding.conflict, self.adding.add
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in self.rows:
            key = tuple(row[c] for c in conflict)
            into = merged.get(key)
            if into is None:
                merged[key] = dict(row)
            else:
                for c in add:
                    into[c] += row[c]
        self.rows = [merged[key] for key in sorted(merged)]
        self.targets = [None] * len(self.rows)


def _numbered(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of a multi-row statement: ``{column}_{row}``."""
    return {f"{k}_{n}": v for n, row in enumerate(rows) for k, v in row.items()}


def adding_rows(
    postgres: bool, table: Table, rows: list[dict[str, Any]], adding: AddOnConflict
) -> tuple[TextClause, dict[str, Any]]:
    """Running totals written outside a unit of work (``Database.write_at_once``): the
    statement and parameters :meth:`UnitOfWork.stage_adding` rows go out as, summed by
    key and in key order. At most ``ROWS_AT_ONCE`` keys."""
    staged = _Staged(table, adding)
    staged.rows = list(rows)
    staged.add_up()
    assert len(staged.rows) <= ROWS_AT_ONCE, "more keys than one statement takes"
    return _adding_insert(postgres, staged.shape()), _numbered(staged.rows)


def _same_keys(staged: _Staged) -> bool:
    """Whether every staged row of a table gives the same columns (one statement shape)."""
    first = staged.rows[0].keys()
    return all(row.keys() == first for row in staged.rows)


class UnitOfWork:
    """One transaction: a session, the events it wrote, and work to do once committed.

    Outbox rows (events, platform commands, timers) are *staged* rather than added
    to the ORM session: each table's rows go out as one multi-row ``INSERT`` just
    before the commit, whatever the number of steps that wrote them.
    """

    def __init__(self, db: Database, session: AsyncSession) -> None:
        self.db = db
        self.session = session
        self.events: list[Any] = []
        self.dispatch_campaigns: set[int] = set()
        self._after_commit: list[AfterCommit] = []
        self._staged: dict[str, _Staged] = {}
        # What a step read and a later step of the same transaction may reuse
        # (keyed by its reader; a writer of the same rows drops its key).
        self.memo: dict[Any, Any] = {}
        # The earliest due time of a timer this unit of work set (wakes timer workers).
        self.earliest_timer: dt.datetime | None = None
        # The outbox tables this unit of work wrote rows to (wakes their readers).
        self.tables_written: set[str] = set()

    def timers_scheduled(self, due_at: dt.datetime) -> None:
        if self.earliest_timer is None or due_at < self.earliest_timer:
            self.earliest_timer = due_at

    def after_commit(self, hook: AfterCommit) -> None:
        self._after_commit.append(hook)

    def stage(self, table: Table, row: dict[str, Any], target: Any = None) -> None:
        """Write ``row`` into ``table`` with this transaction (see the class note)."""
        staged = self._staged.get(table.name)
        if staged is None:
            staged = self._staged[table.name] = _Staged(table)
        staged.rows.append(row)
        staged.targets.append(target)

    def stage_adding(self, table: Table, row: dict[str, Any], adding: AddOnConflict) -> None:
        """Add ``row`` to ``table``'s running totals with this transaction (see
        :class:`AddOnConflict`); rows of one key are summed before they are written."""
        staged = self._staged.get(table.name)
        if staged is None:
            staged = self._staged[table.name] = _Staged(table, adding)
        staged.rows.append(row)
        staged.targets.append(None)

    def stage_claim(self, table: Table, row: dict[str, Any]) -> None:
        """Insert ``row`` with this transaction unless its key is taken, in which case
        the writing raises :class:`ClaimTaken` and nothing of the transaction is kept
        (an event id claimed once: its effect and its claim commit together)."""
        staged = self._staged.get(table.name)
        if staged is None:
            staged = self._staged[table.name] = _Staged(table, claim=True)
        staged.rows.append(row)
        staged.targets.append(None)

    def unstage(self, table: Table, drop: Callable[[dict[str, Any]], bool]) -> None:
        """Forget staged rows of ``table`` for which ``drop`` is true (a timer cancelled)."""
        staged = self._staged.get(table.name)
        if staged is None:
            return
        kept = [(r, t) for r, t in zip(staged.rows, staged.targets, strict=True) if not drop(r)]
        staged.rows = [r for r, _ in kept]
        staged.targets = [t for _, t in kept]

    def mark(self) -> tuple[int, dict[str, int]]:
        """Where the outbox stands now; :meth:`rollback_to` forgets what came after."""
        return len(self.events), {name: len(s.rows) for name, s in self._staged.items()}

    def rollback_to(self, mark: tuple[int, dict[str, int]]) -> None:
        """A savepoint was rolled back: drop the events and rows written since ``mark``."""
        events, counts = mark
        del self.events[events:]
        for name, staged in self._staged.items():
            keep = counts.get(name, 0)
            del staged.rows[keep:]
            del staged.targets[keep:]

    async def write_staged(self) -> None:
        """One multi-row INSERT per table, all in one statement on PostgreSQL;
        assigned keys go back to their objects.

        Keys come back through RETURNING; rows of one INSERT ... VALUES get their
        keys in the order of the VALUES, so the sorted keys are given out in order.
        """
        pending = [staged for staged in self._staged.values() if staged.rows]
        for staged in pending:
            staged.add_up()
        several = len(pending) > 1 or any(s.adding or s.claim for s in pending)
        few = all(len(s.rows) <= ROWS_AT_ONCE for s in pending)
        if self.db.is_postgres and several and few and all(map(_same_keys, pending)):
            await self._write_at_once(pending)
            return
        for staged in pending:
            self.tables_written.add(staged.table.name)
            if staged.claim:
                claimed = await self.session.execute(self._claim_of(staged.table), staged.rows)
                if len(claimed.all()) != len(staged.rows):
                    raise ClaimTaken(staged.table.name)
            elif staged.adding is not None:
                await self._write_adding(staged)
            elif any(t is not None for t in staged.targets):
                key = next(iter(staged.table.primary_key.columns))
                # A list of parameters, not .values([...]): the statement is cached
                # (a multi-row .values() is compiled anew each time), and SQLAlchemy
                # still sends one INSERT ... VALUES (...), (...) RETURNING.
                result = await self.session.execute(_insert_of(staged.table, key), staged.rows)
                keys = sorted(result.scalars())
                for target, value in zip(staged.targets, keys, strict=True):
                    if target is not None:
                        setattr(target, key.name, value)
            else:
                await self.session.execute(_insert_of(staged.table), staged.rows)
            staged.rows, staged.targets = [], []

    def _claim_of(self, table: Table) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING RETURNING`` the key, for staged claims."""
        key = next(iter(table.primary_key.columns))
        return built_once(
            ("staged claim", self.db.dialect, table.name),
            lambda: self.db.insert_or_ignore(table).returning(key),
        )

    async def _write_adding(self, staged: _Staged) -> None:
        """Running totals, in key order, ``ROWS_AT_ONCE`` rows a statement."""
        rows = staged.rows
        for start in range(0, len(rows), ROWS_AT_ONCE):
            staged.rows = rows[start : start + ROWS_AT_ONCE]
            params = _numbered(staged.rows)
            await self.session.execute(_adding_insert(self.db.is_postgres, staged.shape()), params)

    async def _write_at_once(self, pending: list[_Staged]) -> None:
        """Several tables' staged rows in one statement (PostgreSQL, see
        :func:`_inserts_at_once`); rows of one table share their keys (each table is
        staged by one function)."""
        shapes = tuple(staged.shape() for staged in pending)
        params: dict[str, Any] = {}
        for i, staged in enumerate(pending):
            for n, row in enumerate(staged.rows):
                params.update({f"t{i}_{k}_{n}": value for k, value in row.items()})
        result = await self.session.execute(_inserts_at_once(shapes), params)
        keys: dict[int, list[int]] = {}
        for table_index, key in result.all():
            keys.setdefault(table_index, []).append(key)
        for i, staged in enumerate(pending):
            if staged.claim and len(keys.get(i, ())) != len(staged.rows):
                raise ClaimTaken(staged.table.name)
        for i, staged in enumerate(pending):
            self.tables_written.add(staged.table.name)
            if shapes[i][3]:
                name = next(iter(staged.table.primary_key.columns)).name
                # Rows of one INSERT ... VALUES get their keys in the order of the VALUES.
                assigned = sorted(keys[i])
                for target, value in zip(staged.targets, assigned, strict=True):
                    if target is not None:
                        setattr(target, name, value)
            staged.rows, staged.targets = [], []

    async def run_after_commit(self) -> None:
        for hook in self._after_commit:
            await hook()


class Database:
    """The engine and how to open transactions on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(
            engine.execution_options(pledgeline_readonly=True), expire_on_commit=False
        )
        # One writer at a time on SQLite: queue here rather than on the busy handler.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        # PostgreSQL: a statement that is a transaction of its own (execute_alone).
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Kept statements compiled for asyncpg (execute_alone).
        self._for_driver = driver_statements.Compiled(engine.dialect)
        # Called with each statement sent past SQLAlchemy (execute_alone, write_at_once),
        # as the engines' before_cursor_execute listeners hear the others: what counts
        # them. SQLite's writer sends its BEGIN IMMEDIATE through it too.
        self.on_statement_sent: list[Callable[[str], None]] = []
        # SQLite: the writer of write_at_once (its connection opens on first use).
        setup = _sqlite_setups.get(engine.sync_engine)
        self._writer = (
            SQLiteWriter(_writer_engine(setup), self.on_statement_sent)
            if setup is not None
            else None
        )
        # Called with the committed events (the realtime bus subscribes here).
        self.on_events: list[Callable[[list[Any]], Awaitable[None]]] = []
        # Called after a commit that set a timer, with its earliest due time.
        self.on_timer_set: list[Callable[[dt.datetime], None]] = []
        # Called after a commit that wrote outbox rows to the table named by the key
        # (the command delivery sends a call's commands at once instead of at its
        # next poll).
        self.on_rows_written: dict[str, list[Callable[[], None]]] = {}

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A writing transaction, committed when the block ends without error.

        Events and after-commit hooks run only once the commit has succeeded, and
        outside the SQLite writer lock (a hook may open its own unit of work).
        """
        lock = self._write_lock if self._write_lock is not None else contextlib.nullcontext()
        async with lock, self._sessions() as session:
            uow = UnitOfWork(self, session)
            async with session.begin():
                yield uow
                await uow.write_staged()
        await self.committed(uow.events, uow.tables_written, uow.earliest_timer)
        await uow.run_after_commit()

    async def execute_alone(self, statement: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        """PostgreSQL: ``statement`` as a transaction of its own, its rows.

        For a step whose every write fits in one statement (data-modifying CTEs, which
        commit with it or not at all): no ``BEGIN`` and no ``COMMIT`` round trip, and
        no ORM session. The caller then hands what it wrote to :meth:`committed`.

        ``statement`` is a kept one (``built_once``): compiled once, then sent
        straight to asyncpg (``app/pg_driver.py``).
        """
        assert self.is_postgres, "SQLite runs a unit of work (one writer at a time)"
        compiled = self._for_driver(statement)
        async with self._autocommit.connect() as conn:
            return await pg_driver.fetch(conn, compiled, params, self.on_statement_sent)

    async def write_at_once(self, work: Callable[[WriterConnection], T]) -> T:
        """SQLite: ``work(connection)`` as one transaction, in one trip to the writer's
        thread (``app/sqlite_writer.py``), for a write whose statements need nothing
        from the event loop between them. ``connection`` is synchronous and takes
        kept Core statements (``built_once``), sent straight to sqlite3; no ORM
        session. The caller then hands what it wrote to :meth:`committed`."""
        assert self._write_lock is not None, "PostgreSQL: execute_alone"
        if self._writer is None:
            raise RuntimeError("this engine was not made by make_engine: no writer")
        # One writer at a time, as unit_of_work; writes waiting together commit together.
        return await self._writer.run(work, self._write_lock)

    async def committed(
        self,
        events: list[Any],
        tables_written: Iterable[str],
        earliest_timer: dt.datetime | None = None,
    ) -> None:
        """What follows a commit: its events to their listeners, the timer workers and
        the readers of the outbox tables it wrote woken."""
        if events:
            for listener in list(self.on_events):
                try:
                    await listener(events)
                except Exception:  # one listener's failure must not starve the others
                    log.exception("listener of committed events failed")
        if earliest_timer is not None:
            for wake in self.on_timer_set:
                wake(earliest_timer)
        for table in tables_written:
            for wake_reader in self.on_rows_written.get(table, ()):
                wake_reader()

    def seconds_since(self, column: Any, now: Any) -> Any:
        """SQL for the seconds from ``column`` (a UTC timestamp) to ``now`` (a bound
        ``UTCDateTime`` parameter), rounded to the millisecond."""
        if self.is_postgres:
            return func.round(cast(func.extract("epoch", now - column), Numeric), 3)
        # SQLite keeps naive UTC text; julianday() reads it as UTC days.
        return func.round((func.julianday(now) - func.julianday(column)) * 86400.0, 3)

    def insert_or_ignore(self, table: Any) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING``, in this database's dialect."""
        dialect_insert = postgresql.insert if self.is_postgres else sqlite.insert
        return dialect_insert(table).on_conflict_do_nothing()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        await self.engine.dispose()

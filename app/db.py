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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from app.settings import Settings

if TYPE_CHECKING:
    from app.cti.service import CallerLookup

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
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


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


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # WAL + NORMAL survives an application crash; FULL also a power cut, at one
        # fsync per commit (see the PLEDGELINE_SQLITE_SYNCHRONOUS setting).
        cursor.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("pledgeline_readonly", False)
        conn.exec_driver_sql("BEGIN DEFERRED" if readonly else "BEGIN IMMEDIATE")


def make_engine(
    url: str, *, pool_size: int = 10, busy_timeout_ms: int = 5000, synchronous: str = "NORMAL"
) -> AsyncEngine:
    url = async_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        _configure_sqlite(engine, busy_timeout_ms, synchronous)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


AfterCommit = Callable[[], Awaitable[None]]


class DispatchRequester(Protocol):
    """Who to tell that a campaign may now have a call to match (the ACD router)."""

    def request(self, campaign_id: int | None) -> None: ...


class UnitOfWork:
    """One transaction: a session, the events it wrote, and work to do once committed."""

    def __init__(self, db: Database, session: AsyncSession) -> None:
        self.db = db
        self.session = session
        self.events: list[Any] = []
        self.dispatch_campaigns: set[int] = set()
        self._after_commit: list[AfterCommit] = []

    def after_commit(self, hook: AfterCommit) -> None:
        self._after_commit.append(hook)

    async def run_after_commit(self) -> None:
        dispatcher = self.db.dispatcher
        if dispatcher is not None:
            for campaign_id in self.dispatch_campaigns:
                dispatcher.request(campaign_id)
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
        # Called with the committed events (the realtime bus subscribes here).
        self.on_events: list[Callable[[list[Any]], Awaitable[None]]] = []
        self.dispatcher: DispatchRequester | None = None
        # The settings of the app this database serves (None: the environment's).
        self.settings: Settings | None = None
        # The process's caller look-up (CTI), started for each new call; None: no CTI.
        self.caller_lookup: CallerLookup | None = None

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
        for listener in self.on_events:
            if uow.events:
                await listener(uow.events)
        await uow.run_after_commit()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()

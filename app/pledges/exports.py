"""Pledge exports for organisers: which pledges, which columns, read in chunks.

Rows are read by keyset pagination on the pledge id (``id > last ORDER BY id
LIMIT n``), each chunk in its own short read transaction: an export of a million
pledges never holds them all in memory, nor one long transaction, and a slow
download does not pin a database connection between chunks. The export is
bounded at its start by the highest pledge id then, so it is a stable set even
while new pledges keep arriving.

The same generator serves ``GET /pledges/export.csv|xlsx`` and ``pledgeline
export``. The cells come formatted by the query (``app/pledges/export_sql.py``);
the file formats are in ``app/pledges/export_formats.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, Campaign, Queue
from app.db import Database
from app.errors import Invalid, NotFound
from app.i18n import DEFAULT_LANGUAGE, N_, translate
from app.pledges import export_sql
from app.pledges.export_formats import (
    DIALECTS,
    Column,
    CsvDialect,
    CsvEncoder,
    Kind,
    XlsxEncoder,
    crlf_records,
    neutralise_csv_after_separators,
)
from app.pledges.models import Pledge, PledgeStatus

CHUNK_ROWS = 5000
# PostgreSQL CSV: larger chunks (they are bytes, about 5 MB, not row objects), fewer
# range queries and COPY statements; this many copied at once, on as many connections.
COPY_CHUNK_ROWS = 20_000
COPY_AHEAD = 2
FORMATS = ("csv", "xlsx")
CSV_DIALECTS = tuple(DIALECTS)


@dataclass(frozen=True)
class ExportFilter:
    """Which pledges of a campaign: created in ``[since, until)``, any of ``statuses``
    (all when empty), in time slot ``slot``, taken on queue ``queue_id``."""

    campaign_id: int
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    statuses: tuple[str, ...] = field(default_factory=tuple)
    slot: str | None = None
    queue_id: int | None = None

    def validated(self) -> ExportFilter:
        for name, value in (("since", self.since), ("until", self.until)):
            if value is not None and value.tzinfo is None:
                raise Invalid(
                    "{name} needs a time zone (e.g. 2026-11-23T18:00:00Z)", field=name, name=name
                )
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise Invalid("since must be before until", field="since")
        known = {s.value for s in PledgeStatus}
        for status in self.statuses:
            if status not in known:
                raise Invalid(
                    "unknown status {status!r}; one of {choices}",
                    field="status",
                    status=status,
                    choices=", ".join(sorted(known)),
                )
        return self

    def conditions(self) -> list[ColumnElement[bool]]:
        p = Pledge.__table__.c  # Core columns: the export reads plain rows, not objects
        where = [p.campaign_id == self.campaign_id]
        if self.since is not None:
            where.append(p.created_at >= self.since)
        if self.until is not None:
            where.append(p.created_at < self.until)
        if self.statuses:
            where.append(p.status.in_(self.statuses))
        if self.slot is not None:
            where.append(p.time_slot == self.slot)
        if self.queue_id is not None:
            where.append(p.queue_id == self.queue_id)
        return where


def _spec() -> list[tuple[Column, ColumnElement[Any]]]:
    """The export's columns, in order, each with the database value it shows."""
    # Core columns, not ORM attributes: the rows come back as plain tuples.
    p, queue, agent = Pledge.__table__.c, Queue.__table__.c, Agent.__table__.c
    spec: list[tuple[str, Kind, ColumnElement[Any]]] = [
        (N_("pledge_id"), "int", p.id),
        (N_("reference"), "text", p.reference),
        (N_("created_at_utc"), "time", p.created_at),
        (N_("status"), "text", p.status),
        (N_("cancel_reason"), "text", p.cancel_reason),
        (N_("amount"), "money", p.amount_minor),
        (N_("amount_minor"), "int", p.amount_minor),
        (N_("paid"), "money", p.paid_minor),
        (N_("paid_minor"), "int", p.paid_minor),
        (N_("currency"), "text", p.currency),
        (N_("frequency"), "text", p.frequency),
        (N_("channel"), "text", p.channel),
        (N_("time_slot"), "text", p.time_slot),
        (N_("queue_id"), "int", p.queue_id),
        (N_("queue"), "text", queue.name),
        (N_("agent_id"), "int", p.agent_id),
        (N_("agent"), "text", agent.display_name),
        (N_("partner"), "text", agent.partner_org),
        (N_("first_name"), "text", p.first_name),
        (N_("last_name"), "text", p.last_name),
        (N_("address"), "text", p.address),
        (N_("postcode"), "text", p.postcode),
        (N_("city"), "text", p.city),
        (N_("departement"), "text", p.departement),
        (N_("country"), "text", p.country),
        (N_("email"), "text", p.email),
        (N_("phone"), "text", p.phone),
        (N_("consent_contact"), "bool", p.consent_contact),
        (N_("consent_tax_receipt"), "bool", p.consent_tax_receipt),
        (N_("flagged_for_review"), "bool", p.flagged_for_review),
        (N_("link_sent_at_utc"), "time", p.link_sent_at),
        (N_("paid_at_utc"), "time", p.paid_at),
        (N_("call_id"), "int", p.call_id),
        (N_("note"), "text", p.note),
    ]
    return [(Column(header, kind), value) for header, kind, value in spec]


_SPEC = _spec()
COLUMNS: tuple[Column, ...] = tuple(column for column, _ in _SPEC)


def columns_in(language: str) -> tuple[Column, ...]:
    """The columns with their headers in ``language`` (English: the field names)."""
    return tuple(Column(translate(language, c.header), c.kind) for c in COLUMNS)


def _cells(dialect: str, decimal_mark: str = ".") -> list[ColumnElement[Any]]:
    """Each column's finished cell, formatted by the database (``export_sql``)."""
    currency = Pledge.__table__.c.currency
    cells = []
    for column, value in _SPEC:
        if column.kind == "text":
            cells.append(export_sql.text_cell(value, dialect))
        elif column.kind == "time":
            cells.append(export_sql.time_cell(value, dialect))
        elif column.kind == "money":
            cells.append(export_sql.money_cell(value, currency, dialect, decimal_mark))
        elif column.kind == "bool":
            cells.append(export_sql.bool_cell(value))
        else:
            cells.append(value)
    return cells


def _select(
    dialect: str, *, with_id: bool = True, decimal_mark: str = "."
) -> Select[*tuple[Any, ...]]:
    """``(pledge_id, cell, cell, ...)`` rows (or the cells alone), the cells formatted
    by the database."""
    pledge, queue, agent = Pledge.__table__, Queue.__table__, Agent.__table__
    first = [pledge.c.id] if with_id else []
    return (
        select(*first, *_cells(dialect, decimal_mark))
        .select_from(pledge)
        .outerjoin(queue, queue.c.id == pledge.c.queue_id)
        .outerjoin(agent, agent.c.id == pledge.c.agent_id)
    )


Progress = Callable[[int], None]


@dataclass
class Export:
    """A prepared export: the filter, the id bound taken at its start, the row count."""

    filter: ExportFilter
    max_id: int
    total: int
    campaign_name: str

    async def stream(
        self,
        db: Database,
        fmt: str,
        *,
        bom: bool = False,
        csv_dialect: str = "rfc4180",
        progress: Progress | None = None,
        language: str = DEFAULT_LANGUAGE,
    ) -> AsyncIterator[bytes]:
        """The export file, piece by piece (one piece per chunk of pledges)."""
        done = 0
        if fmt == "csv":
            layout = DIALECTS[csv_dialect]
            csv_encoder = CsvEncoder(bom=bom, dialect=layout)
            yield csv_encoder.header(columns_in(language))
            pieces: AsyncGenerator[tuple[int, bytes], None]
            if db.is_postgres:
                pieces = self._postgres_csv(db, layout)
            else:
                pieces = (
                    (len(rows), csv_encoder.rows(rows))
                    async for rows in self.chunks(db, decimal_mark=layout.decimal_mark)
                )
            # aclosing: a client that goes away stops the copies in flight at once.
            async with contextlib.aclosing(pieces):
                async for count, data in pieces:
                    done += count
                    if progress is not None:
                        progress(done)
                    yield data
            return
        xlsx_encoder = XlsxEncoder(self.campaign_name or "Pledges")
        yield xlsx_encoder.header(columns_in(language))
        async for rows in self.chunks(db):
            done += len(rows)
            if progress is not None:
                progress(done)
            yield xlsx_encoder.rows(rows)
        yield xlsx_encoder.end()

    def _where(self) -> list[ColumnElement[bool]]:
        """The export's pledges after the chunk boundary ``:last`` (a parameter, so
        each query is built and compiled once per export, not once per chunk)."""
        pledge_id = Pledge.__table__.c.id
        return [
            *self.filter.conditions(),
            pledge_id <= self.max_id,
            pledge_id > bindparam("last", 0, type_=Integer()),
        ]

    async def chunks(
        self, db: Database, chunk_rows: int = CHUNK_ROWS, *, decimal_mark: str = "."
    ) -> AsyncIterator[Sequence[Any]]:
        """The pledges in id order as ``(pledge_id, cell, ...)`` rows, ``chunk_rows`` at a
        time, each chunk its own read."""
        pledge_id = Pledge.__table__.c.id
        query = _select(db.dialect, decimal_mark=decimal_mark).where(*self._where())
        query = query.order_by(pledge_id).limit(chunk_rows)
        last = 0
        while last < self.max_id:
            async with db.read() as session:
                rows = (await session.execute(query, {"last": last})).all()
            if not rows:
                return
            last = rows[-1][0]  # pledge_id
            yield rows
            if len(rows) < chunk_rows:
                return

    async def _postgres_csv(
        self, db: Database, layout: CsvDialect, chunk_rows: int = COPY_CHUNK_ROWS
    ) -> AsyncGenerator[tuple[int, bytes], None]:
        """PostgreSQL writes the CSV itself: for each chunk, the id range of the next
        ``chunk_rows`` pledges, then ``COPY (SELECT cells ...) TO STDOUT (FORMAT csv)``
        over it, each in a short read transaction. The server's quoting is RFC 4180's;
        its record ends are LF, made CRLF here (``crlf_records``), and the apostrophes
        after separators inside cells are put in here too
        (``neutralise_csv_after_separators``).

        ``COPY_AHEAD`` chunks are copied at once on as many connections, handed on in
        order: the server formats one chunk while the next is being formatted too
        (formatting, not the transfer, is what takes the time)."""
        pledge_id = Pledge.__table__.c.id
        ids = select(pledge_id).where(*self._where()).order_by(pledge_id).limit(chunk_rows)
        bounds = select(func.count(), func.max(ids.subquery().c.id))
        cells = _select(db.dialect, with_id=False, decimal_mark=layout.decimal_mark).where(
            *self._where(), pledge_id <= bindparam("upper", 0, type_=Integer())
        )
        copy = _CopyStatement(cells.order_by(pledge_id), db, layout.delimiter)

        async def _copy(last: int, upper: int) -> bytes:
            async with db.read() as session:
                return await copy.run(session, last=last, upper=upper)

        pending: collections.deque[tuple[int, asyncio.Task[bytes]]] = collections.deque()
        last, more = 0, self.max_id > 0
        try:
            while more or pending:
                while more and len(pending) < COPY_AHEAD:
                    async with db.read() as session:
                        count, upper = (await session.execute(bounds, {"last": last})).one()
                    if not count:
                        more = False
                        break
                    pending.append((count, asyncio.create_task(_copy(last, upper))))
                    last, more = upper, count == chunk_rows and upper < self.max_id
                if not pending:
                    return
                count, task = pending.popleft()
                yield count, neutralise_csv_after_separators(crlf_records(await task))
        finally:
            for _, task in pending:  # the client went away: stop the copies in flight
                task.cancel()


class _CopyStatement:
    """``COPY (query) TO STDOUT WITH (FORMAT csv, DELIMITER d)`` through the session's
    asyncpg connection, the query compiled once and run with new parameters each time."""

    def __init__(self, query: Select[*tuple[Any, ...]], db: Database, delimiter: str) -> None:
        self.delimiter = delimiter
        compiled = query.compile(
            dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        self.sql = str(compiled)
        self.names = list(compiled.positiontup or [])
        self.params = dict(compiled.params)

    async def run(self, session: AsyncSession, **values: Any) -> bytes:
        params = [values.get(name, self.params[name]) for name in self.names]
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None  # an open asyncpg connection
        parts: list[bytes] = []

        async def sink(data: bytes) -> None:
            parts.append(bytes(data))

        await driver.copy_from_query(
            self.sql, *params, output=sink, format="csv", delimiter=self.delimiter
        )
        return b"".join(parts)


async def prepare(db: Database, export_filter: ExportFilter) -> Export:
    """Check the filter and the campaign, and fix the export's bounds (404, 422)."""
    export_filter = export_filter.validated()
    async with db.read() as session:
        campaign = await session.get(Campaign, export_filter.campaign_id)
        if campaign is None:
            raise NotFound(
                "no campaign {campaign_id}",
                field="campaign_id",
                campaign_id=export_filter.campaign_id,
            )
        if export_filter.queue_id is not None:
            queue = await session.get(Queue, export_filter.queue_id)
            if queue is None or queue.campaign_id != export_filter.campaign_id:
                raise NotFound(
                    "no queue {queue_id} in this campaign",
                    field="queue_id",
                    queue_id=export_filter.queue_id,
                )
        where = export_filter.conditions()
        max_id, total = (
            await session.execute(
                select(func.coalesce(func.max(Pledge.__table__.c.id), 0), func.count()).where(
                    *where
                )
            )
        ).one()
    return Export(export_filter, int(max_id), int(total), campaign.name)


def file_name(export: Export, fmt: str, now: dt.datetime) -> str:
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%MZ")
    return f"pledges-campaign-{export.filter.campaign_id}-{stamp}.{fmt}"

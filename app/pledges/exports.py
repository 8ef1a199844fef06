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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Integer, Join, Select, bindparam, func, select
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
    csv_from_block,
    csv_from_lines,
    neutralise_csv_records,
)
from app.pledges.models import Pledge, PledgeStatus

CHUNK_ROWS = 5000
# CSV chunks: PostgreSQL copies bytes (about 1.3 MB for 5,000 pledges), SQLite returns
# a block of lines (as much). Smaller chunks than 20,000 before: the same time, and
# 12 MB less at the peak, which the 100 MB budget of a million-pledge export needs.
# SQLite's went from 5,000 to 2,500 for that budget when it returned a string a pledge
# (the exporter then started at 84 MB); back to 5,000 since it returns a block and
# starts at 70 MB: half the reads (each a session, about a millisecond of CPU),
# 89 to 91 MB at the peak. This many chunks are read at once, on as many
# connections.
COPY_CHUNK_ROWS = 5000
LINE_CHUNK_ROWS = 5000
READ_AHEAD = 2
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
    # "code": what the app itself writes from a closed set of values, none of which
    # starts a formula, so its cells skip the formula test (``export_sql.code_cell``):
    # the reference (``service.new_reference``), the status and the reason of a
    # cancellation (the service's enums, the API's literals), the currency (the
    # campaign's, ``[A-Z]{3}``), frequency and channel (literals), the département
    # (from the postcode) and the country (``[A-Z]{2}``). How each is kept closed:
    # ``tests/test_pledges_export.py::test_code_columns_cannot_hold_a_formula``.
    # "text": what a donor, a volunteer or an organiser typed (names of queues,
    # volunteers and time slots too): neutralised.
    spec: list[tuple[str, Kind, ColumnElement[Any]]] = [
        (N_("pledge_id"), "int", p.id),
        (N_("reference"), "code", p.reference),
        (N_("created_at_utc"), "time", p.created_at),
        (N_("status"), "code", p.status),
        (N_("cancel_reason"), "code", p.cancel_reason),
        (N_("amount"), "money", p.amount_minor),
        (N_("amount_minor"), "int", p.amount_minor),
        (N_("paid"), "money", p.paid_minor),
        (N_("paid_minor"), "int", p.paid_minor),
        (N_("currency"), "code", p.currency),
        (N_("frequency"), "code", p.frequency),
        (N_("channel"), "code", p.channel),
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
        (N_("departement"), "code", p.departement),
        (N_("country"), "code", p.country),
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
        elif column.kind == "code":
            cells.append(export_sql.code_cell(value, dialect))
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
    first = [Pledge.__table__.c.id] if with_id else []
    return select(*first, *_cells(dialect, decimal_mark)).select_from(_joined())


def _joined() -> Join:
    """The pledges with their queue and volunteer (the columns' tables)."""
    pledge, queue, agent = Pledge.__table__, Queue.__table__, Agent.__table__
    return pledge.outerjoin(queue, queue.c.id == pledge.c.queue_id).outerjoin(
        agent, agent.c.id == pledge.c.agent_id
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
            yield CsvEncoder(bom=bom, dialect=layout).header(columns_in(language))
            pieces = self._csv(db, layout)
            # aclosing: a client that goes away stops the reads in flight at once.
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

    async def _csv(
        self, db: Database, layout: CsvDialect
    ) -> AsyncGenerator[tuple[int, bytes], None]:
        """The CSV records, a chunk of pledges at a time, formatted by the database.

        For each chunk: the id range of the next pledges (``COPY_CHUNK_ROWS`` on
        PostgreSQL, ``LINE_CHUNK_ROWS`` on SQLite), then the chunk read over it, each
        in a short read transaction. ``READ_AHEAD`` chunks are read at once on as many
        connections, handed on in order: the database formats one chunk while the
        next is being formatted too (formatting, not the transfer, is what takes the
        time; SQLite's reads run on their connections' threads, outside the GIL).

        PostgreSQL writes the CSV itself (``COPY (SELECT cells ...) TO STDOUT (FORMAT
        csv)``): its quoting is RFC 4180's; the apostrophes after separators inside
        cells are put in here (``neutralise_csv_records``), then its LF
        record ends made CRLF (``crlf_records``; in that order: the CR of a CRLF
        after a separator would pass for a formula). SQLite writes a line of cells a
        pledge (``export_sql.cells_line``) and returns a chunk's lines as one block
        (``export_sql.joined_lines``), made CSV by ``csv_from_block``; a chunk whose
        block cannot be split into its lines is read again a line a pledge."""
        pledge_id = Pledge.__table__.c.id
        chunk_rows = COPY_CHUNK_ROWS if db.is_postgres else LINE_CHUNK_ROWS
        ids = select(pledge_id).where(*self._where()).order_by(pledge_id).limit(chunk_rows)
        bounds = select(func.count(), func.max(ids.subquery().c.id))
        # The chunk's range alone, without the export's bound: SQLite takes the first
        # upper bound it is given for the end of its scan of the ids, and with
        # ``id <= max_id`` first it read on to the export's end for every chunk.
        in_range = (
            *self.filter.conditions(),
            pledge_id > bindparam("last", 0, type_=Integer()),
            pledge_id <= bindparam("upper", 0, type_=Integer()),
        )
        read: Callable[[int, int], Awaitable[bytes]]
        if db.is_postgres:
            cells = _select(db.dialect, with_id=False, decimal_mark=layout.decimal_mark)
            copy = _CopyStatement(cells.where(*in_range).order_by(pledge_id), db, layout.delimiter)

            async def read(last: int, upper: int) -> bytes:
                async with db.read() as session:
                    data = await copy.run(session, last=last, upper=upper)
                return crlf_records(neutralise_csv_records(data, layout.delimiter))

        else:
            lines = (
                select(export_sql.cells_line(_cells(db.dialect, layout.decimal_mark)))
                .select_from(_joined())
                .where(*in_range)
                .order_by(pledge_id)
            )
            chunk_lines = lines.subquery()
            block = select(
                func.count(), export_sql.joined_lines(next(iter(chunk_lines.c)))
            ).select_from(chunk_lines)

            async def read(last: int, upper: int) -> bytes:
                span = {"last": last, "upper": upper}
                async with db.read() as session:
                    count, data = (await session.execute(block, span)).one()
                pieces = csv_from_block(data or b"", count, len(COLUMNS), layout)
                if pieces is None:  # a cell holds the record separator: a line a pledge
                    async with db.read() as session:
                        chunk = (await session.scalars(lines, span)).all()
                    pieces = csv_from_lines(chunk, len(COLUMNS), layout)
                written = [piece for piece in pieces if isinstance(piece, bytes)]
                if len(written) == len(pieces):
                    return b"".join(written)
                return await self._read_again(db, pieces, layout)

        pending: collections.deque[tuple[int, asyncio.Task[bytes]]] = collections.deque()
        last, more = 0, self.max_id > 0
        try:
            while more or pending:
                while more and len(pending) < READ_AHEAD:
                    async with db.read() as session:
                        count, upper = (await session.execute(bounds, {"last": last})).one()
                    if not count:
                        more = False
                        break
                    pending.append((count, asyncio.create_task(read(last, upper))))
                    last, more = upper, count == chunk_rows and upper < self.max_id
                if not pending:
                    return
                count, task = pending.popleft()
                yield count, await task
        finally:
            for _, task in pending:  # the client went away: stop the reads in flight
                task.cancel()

    async def _read_again(
        self, db: Database, pieces: list[bytes | int], layout: CsvDialect
    ) -> bytes:
        """``csv_from_lines``' pieces with each pledge it could not split (a cell holding
        the line separator) read cell by cell and written by the ``csv`` module."""
        pledge_id = Pledge.__table__.c.id
        ids = [piece for piece in pieces if isinstance(piece, int)]
        query = _select(db.dialect, decimal_mark=layout.decimal_mark).where(pledge_id.in_(ids))
        async with db.read() as session:
            rows = {row[0]: row for row in (await session.execute(query)).all()}
        encoder = CsvEncoder(dialect=layout)
        return b"".join(
            piece if isinstance(piece, bytes) else encoder.rows([rows[piece]]) for piece in pieces
        )


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

"""``pledgeline export``: the organisers' pledge export, from the command line.

It reads the database named by the settings directly (no server needed) with the
same filter, columns and formats as ``GET /pledges/export.csv|xlsx``, writes the
file next to its final place and renames it when complete (a failed export leaves
no half file), and shows a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from app.errors import AppError
from app.i18n.console import cli_language, refused, say
from app.pledges.exports import CSV_DIALECTS, FORMATS


def _utc(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    # A time given without a zone on the command line is taken as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign-id", type=int, required=True)
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--out", required=True, type=Path, help="the file to write")
    parser.add_argument("--since", type=_utc, help="created at or after (ISO 8601; UTC if no zone)")
    parser.add_argument("--until", type=_utc, help="created before (ISO 8601; UTC if no zone)")
    parser.add_argument(
        "--status", action="append", default=[], help="only this status (repeatable)"
    )
    parser.add_argument("--slot", help="only this time slot (by name)")
    parser.add_argument("--queue-id", type=int, help="only pledges taken on this queue")
    parser.add_argument("--bom", action="store_true", help="CSV: start with a UTF-8 BOM")
    parser.add_argument(
        "--dialect",
        choices=CSV_DIALECTS,
        default="rfc4180",
        help="CSV: rfc4180 (comma, decimal point) or excel-fr (semicolon, decimal comma, BOM)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class ProgressBar:
    """``[#####.....]  50%  500000/1000000 pledges`` on stderr: redrawn in place on a
    terminal (at most ten times a second), a line every 10 % otherwise."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self._last_draw = 0.0
        self._last_tenth = -1

    def __call__(self, done: int) -> None:
        fraction = done / self.total if self.total else 1.0
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1 and done < self.total:
                return
            self._last_draw = now
            self.stream.write("\r" + self._line(done, fraction))
        else:
            tenth = int(fraction * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(self._line(done, fraction) + "\n")
        self.stream.flush()

    def finish(self, done: int) -> None:
        self(done)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, done: int, fraction: float) -> str:
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"[{bar}] {fraction:4.0%}  {done}/{self.total} pledges"


# SQLite's sqlite3_config() option numbers (sqlite3.h): they are part of its ABI.
_SQLITE_CONFIG_MEMSTATUS = 9
_memory_statistics_off = False


def sqlite_memory_statistics_off() -> bool:
    """Turn SQLite's memory statistics off in this process, unless something of
    SQLite's is in use already (a connection open); whether they are off.

    With them on (SQLite's default), each allocation SQLite makes takes one
    process-wide mutex to be counted. The export formats its cells on two threads,
    each allocating for nearly every cell, and they queue on that mutex: the cells
    of a million pledges (measured apart, without the rest of the export) took the
    two 8.4 to 9.3 s of CPU and 4.4 to 4.8 s of wall time, where one thread takes 5 s;
    with the statistics off, 4.7 s of CPU and 2.4 s of wall time. Nothing here reads
    them (nor sets a soft heap limit, which needs them).

    Python's sqlite3 module has no call for it: ``sqlite3_config`` is called through
    ctypes, on the library that module is linked to (its own file, whose symbols
    include those of the library it loaded). SQLite takes that call only while shut
    down, and shutting it down is safe only while none of its memory is in use,
    which its own counter tells (0) as long as the statistics are on: so once per
    process, and only at 0."""
    global _memory_statistics_off
    if _memory_statistics_off:
        return True
    try:
        import _sqlite3

        library = ctypes.CDLL(_sqlite3.__file__)
        memory_used, config = library.sqlite3_memory_used, library.sqlite3_config
        shutdown, initialize = library.sqlite3_shutdown, library.sqlite3_initialize
    except (ImportError, OSError, AttributeError):  # no such library or function here
        return False
    memory_used.restype = ctypes.c_int64
    # The option is the one fixed argument; its value goes as a variadic one, which
    # ctypes passes as such (where the calling convention differs) past ``argtypes``.
    config.argtypes = [ctypes.c_int]
    if memory_used() != 0 or shutdown() != 0:
        return False
    configured: int = config(_SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0))
    _memory_statistics_off = configured == 0
    if initialize() != 0:
        raise RuntimeError("SQLite did not start again after its memory statistics were set")
    return _memory_statistics_off


async def export_to_file(args: argparse.Namespace, database_url: str) -> int:
    """Write the export; returns the number of pledges written."""
    if database_url.startswith("sqlite"):
        sqlite_memory_statistics_off()  # before the first connection
    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.db import Database, make_engine
    from app.pledges import exports

    db = Database(make_engine(database_url, pool_size=2))
    try:
        export = await exports.prepare(
            db,
            exports.ExportFilter(
                campaign_id=args.campaign_id,
                since=args.since,
                until=args.until,
                statuses=tuple(args.status),
                slot=args.slot,
                queue_id=args.queue_id,
            ),
        )
        bar = None if args.quiet else ProgressBar(export.total)
        done = 0

        def progress(count: int) -> None:
            nonlocal done
            done = count
            if bar is not None:
                bar(count)

        out: Path = args.out
        partial = out.with_name(f".{out.name}.partial")
        try:
            with partial.open("wb") as file:
                pieces = export.stream(
                    db,
                    args.format,
                    bom=args.bom,
                    csv_dialect=args.dialect,
                    progress=progress,
                    language=cli_language(),
                )
                async for piece in pieces:
                    file.write(piece)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        if bar is not None:
            bar.finish(done)
        return done
    finally:
        await db.dispose()


def run(args: argparse.Namespace, database_url: str) -> int:
    try:
        count = asyncio.run(export_to_file(args, database_url))
    except AppError as exc:
        print(refused(exc), file=sys.stderr)
        return 2
    print(say("{count} pledges written to {out}", count=count, out=args.out))
    return 0

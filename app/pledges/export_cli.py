"""``pledgeline export``: the organisers' pledge export, from the command line.

It reads the database named by the settings directly (no server needed) with the
same filter, columns and formats as ``GET /pledges/export.csv|xlsx``, writes the
file next to its final place and renames it when complete (a failed export leaves
no half file), and shows a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def export_to_file(args: argparse.Namespace, database_url: str) -> int:
    """Write the export; returns the number of pledges written."""
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

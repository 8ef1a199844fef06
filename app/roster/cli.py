"""``pledgeline roster import FILE --campaign ID``: register a roster file's volunteers.

Reads the database named by the settings directly (no server needed), through the
same code as ``POST /roster/import``: all or nothing. A refused file prints one
line per refused row (``line 7, phone: not a phone number``) on stderr and exits
with 2; a good one draws a progress bar on stderr while the PINs are made (plain
lines every 10 % when stderr is not a terminal) and prints the logins and their
PINs, shown this once, on stdout (or writes them to ``--pins-csv FILE``, readable
by its owner only).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
from pathlib import Path
from typing import TextIO

from app.pledges.export_cli import ProgressBar


class PinBar(ProgressBar):
    def _line(self, done: int, fraction: float) -> str:
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"[{bar}] {fraction:4.0%}  {done}/{self.total} volunteers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="roster_command", required=True)
    imp = sub.add_parser("import", help="import volunteers from a CSV or XLSX file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--campaign", "--campaign-id", dest="campaign_id", type=int, required=True)
    imp.add_argument("--pins-csv", type=Path, help="write the logins and PINs to this file")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")


def _write_pins(rows: list[tuple[str, str, str, str]], stream: TextIO) -> None:
    writer = csv.writer(stream)
    writer.writerow(["site", "volunteer", "login", "pin"])
    writer.writerows(rows)


def run(args: argparse.Namespace, database_url: str) -> int:
    from sqlalchemy import select

    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.acd.models import Site
    from app.db import Database, make_engine
    from app.errors import AppError
    from app.roster.service import IssuedPin, RosterRefused, import_roster

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    bar: PinBar | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            bar = PinBar(total)
        bar(done)

    async def work() -> tuple[list[IssuedPin], dict[int, str]]:
        db = Database(make_engine(database_url, pool_size=2))
        try:
            issued = await import_roster(
                db, args.campaign_id, data, actor="command-line", progress=progress
            )
            async with db.read() as session:
                sites = {s.id: s.name for s in await session.scalars(select(Site))}
            return issued, sites
        finally:
            await db.dispose()

    try:
        issued, sites = asyncio.run(work())
    except RosterRefused as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        for row in exc.refusals:
            where = f"line {row.line}" + (f", {row.field}" if row.field else "")
            print(f"  {where}: {row.message}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"refused: {exc.message}" + (f" ({exc.field})" if exc.field else ""), file=sys.stderr)
        return 2
    if bar is not None:
        bar.finish(len(issued))
    rows = [
        (sites.get(i.site_id, "") if i.site_id else "", i.display_name, i.username, i.pin)
        for i in sorted(issued, key=lambda i: (sites.get(i.site_id or 0, ""), i.display_name))
    ]
    print(f"{len(issued)} volunteers imported into campaign {args.campaign_id}", file=sys.stderr)
    if args.pins_csv is not None:
        fd = os.open(args.pins_csv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as stream:
            _write_pins(rows, stream)
        print(f"logins and PINs written to {args.pins_csv} (shown nowhere else)", file=sys.stderr)
    else:
        _write_pins(rows, sys.stdout)
    return 0

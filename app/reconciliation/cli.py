"""``pledgeline payments``: save a source's column mapping, import an export file.

``payments import FILE --source S [--campaign-id N]`` (the campaign may be left
out when the database holds only one) reads the database named by
the settings directly (no server needed), through the same code as
``POST /payments/imports``, with a progress bar on stderr for reading the file
and for recording its lines. Payments it records are audited as made by
``payment-provider`` (no user is signed in), the import as ``command-line``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from pydantic import ValidationError

from app.errors import AppError
from app.i18n.console import refused
from app.pledges.export_cli import ProgressBar

if TYPE_CHECKING:
    from app.db import Database

T = TypeVar("T")


class StepBar(ProgressBar):
    """The export's progress bar, naming what it counts; made at the first report,
    when the total is known."""

    def __init__(self, total: int, what: str, stream: TextIO = sys.stderr) -> None:
        super().__init__(total, stream)
        self.what = what

    def _line(self, done: int, fraction: float) -> str:
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"[{bar}] {fraction:4.0%}  {done}/{self.total} {self.what}"


class Steps:
    """A progress callback ``(done, total)`` that draws one bar per step."""

    def __init__(self, what: str, quiet: bool) -> None:
        self.what, self.quiet = what, quiet
        self.bar: StepBar | None = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None or self.bar.total != total:
            self.bar = StepBar(total, self.what)
        self.done = done
        self.bar(done)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.finish(self.done)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="payments_command", required=True)
    imp = sub.add_parser("import", help="import a payment provider's or a bank's CSV export")
    imp.add_argument("file", type=Path)
    imp.add_argument("--source", required=True, help="the saved source (column mapping)")
    imp.add_argument(
        "--campaign-id", type=int, help="the campaign whose pledges the lines pay (if several)"
    )
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=_import)
    source = sub.add_parser(
        "source", help="save a source's column mapping (docs/reconciliation.md)"
    )
    source.add_argument("name")
    source.add_argument("--mapping", type=Path, required=True, help="a JSON file: the mapping")
    source.set_defaults(func=_source)


def _refused(exc: AppError) -> int:
    print(refused(exc), file=sys.stderr)
    return 2


async def _with_db(database_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.db import Database, make_engine

    db = Database(make_engine(database_url, pool_size=2))
    try:
        return await work(db)
    finally:
        await db.dispose()


async def _campaign(db: Database, given: int | None) -> int:
    """The campaign named, or the only one there is."""
    if given is not None:
        return given
    from sqlalchemy import select

    from app.acd.models import Campaign
    from app.errors import Invalid

    async with db.read() as session:
        ids = list(await session.scalars(select(Campaign.id).limit(2)))
    if len(ids) != 1:
        raise Invalid("which campaign? give --campaign-id", field="campaign_id")
    return ids[0]


def _import(args: argparse.Namespace) -> int:
    from app.reconciliation.imports import FileRefused, import_file
    from app.reconciliation.models import PaymentImport
    from app.settings import get_settings

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    reading, recording = Steps("lines read", args.quiet), Steps("lines recorded", args.quiet)

    async def work(db: Database) -> PaymentImport:
        try:
            return await import_file(
                db,
                None,
                source_name=args.source,
                campaign_id=await _campaign(db, args.campaign_id),
                data=data,
                filename=args.file.name,
                reading=reading,
                recording=recording,
            )
        finally:
            reading.finish()
            recording.finish()

    try:
        batch = asyncio.run(_with_db(get_settings().database_url, work))
    except FileRefused as exc:
        print(f"{args.file}: {exc.message}; nothing was imported", file=sys.stderr)
        for problem in exc.problems:
            where = f"line {problem.line}" if problem.line is not None else "file"
            column = f", column {problem.column!r}" if problem.column else ""
            print(f"  {where}{column}: {problem.reason}", file=sys.stderr)
        if exc.more_problems:
            print(f"  ... and {exc.more_problems} more", file=sys.stderr)
        return 2
    except AppError as exc:
        return _refused(exc)
    print(
        f"import {batch.id}: {batch.lines} lines, {batch.recorded} payment"
        f"{'s' * (batch.recorded != 1)} recorded"
        f" ({batch.recorded_minor} minor units), {batch.already_recorded} already recorded,"
        f" {batch.unmatched} to match by hand, {batch.ignored} ignored,"
        f" {batch.duplicates} imported before"
    )
    return 0


def _source(args: argparse.Namespace) -> int:
    from app.reconciliation import service
    from app.reconciliation.schemas import SourceIn
    from app.settings import get_settings

    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]{0,39}", args.name):
        print("a source name: lower-case letters, digits, - and _ (40 at most)", file=sys.stderr)
        return 2
    try:
        body = SourceIn.model_validate(json.loads(args.mapping.read_text()))
    except (OSError, ValueError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        reason = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(exc)
        print(f"{args.mapping}: {reason}", file=sys.stderr)
        return 2
    except AppError as exc:
        return _refused(exc)
    values = body.model_dump()
    values["columns"] = {k: v for k, v in values["columns"].items() if v is not None}

    async def work(db: Database) -> int:
        async with db.unit_of_work() as uow:
            return (await service.save_source(uow, args.name, values)).id

    source_id = asyncio.run(_with_db(get_settings().database_url, work))
    print(f"source {args.name} saved (id {source_id})")
    return 0

"""``pledgeline privacy purge``: apply the retention periods once (for cron, or when
the servers run with ``PLEDGELINE_RETENTION_PURGE_SECONDS=0``)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from app.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="privacy_command", required=True)
    purge = sub.add_parser("purge", help="apply the retention periods (docs/personal-data.md)")
    purge.add_argument(
        "--as-of",
        help="apply them as of this UTC time (ISO 8601; default now; later purges early)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.db import Database, make_engine
    from app.plugins import install_personal_data
    from app.privacy.retention import purge

    install_personal_data()  # the receipts' period too

    as_of = None
    if args.as_of:
        try:
            as_of = dt.datetime.fromisoformat(args.as_of)
        except ValueError:
            print(f"refused: --as-of {args.as_of!r} is not an ISO 8601 time", file=sys.stderr)
            return 2
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=dt.UTC)

    async def _purge() -> dict[str, int]:
        db = Database(make_engine(settings.database_url))
        try:
            return await purge(db, settings, as_of)
        finally:
            await db.dispose()

    for kind, rows in asyncio.run(_purge()).items():
        print(f"{kind}: {rows} rows")
    return 0

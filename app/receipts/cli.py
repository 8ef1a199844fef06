"""``pledgeline receipts issue --campaign-id N [--send]``: a receipt batch from the
command line, on the database the settings name (no server needed), with a
progress bar on stderr. Several may run at once (other hosts, the organiser page):
the numbering is the database's guarantee (``app/receipts/numbering.py``)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from app.errors import AppError
from app.i18n.console import refused
from app.pledges.export_cli import ProgressBar
from app.settings import Settings


class _Bar(ProgressBar):
    def __init__(self, total: int, unit: str) -> None:
        super().__init__(total)
        self.unit = unit

    def _line(self, done: int, fraction: float) -> str:
        return super()._line(done, fraction).replace(" pledges", f" {self.unit}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="receipts_command", required=True)
    issue = sub.add_parser("issue", help="issue the campaign's due tax receipts")
    issue.add_argument("--campaign-id", type=int, required=True)
    issue.add_argument("--send", action="store_true", help="then e-mail those not sent yet")
    issue.add_argument("--actor", default="cli", help="who issues, as the receipts record it")
    issue.add_argument("--quiet", action="store_true", help="no progress bar")


async def _issue(args: argparse.Namespace, settings: Settings) -> int:
    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.db import Database, make_engine
    from app.receipts import service, wording

    db = Database(make_engine(settings.database_url, pool_size=2))
    bars: list[_Bar] = []

    def start(total: int, unit: str) -> None:
        if not args.quiet:
            bars.append(_Bar(total, unit))

    def progress(done: int) -> None:
        if bars:
            bars[-1](done)

    try:
        if args.send:
            service.check_mail_configured(settings)  # before anything is issued
        result = await service.issue_batch(
            db,
            args.campaign_id,
            args.actor,
            progress=progress,
            on_total=lambda total: start(total, "receipts"),
        )
        if bars:
            bars[-1].finish(result.waiting)
        print(f"{len(result.issued)} receipts issued for campaign {args.campaign_id}")
        for receipt in result.issued:
            print(
                f"  {wording.receipt_number(receipt.year, receipt.number)}  "
                f"{receipt.pledge_reference}"
            )
        if args.send:
            async with db.read() as session:
                pending = len(await service.unsent(session, args.campaign_id))
            start(pending, "e-mails")
            await service.send_unsent(db, settings, result, progress)
            if bars:
                bars[-1].finish(pending)
            print(
                f"{result.sent} sent, {result.send_failed} failed, "
                f"{result.without_email} without an e-mail address (to download)"
            )
        return 1 if result.send_failed else 0
    finally:
        await db.dispose()


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_issue(args, settings))
    except AppError as exc:
        print(refused(exc), file=sys.stderr)
        return 2

"""``pledgeline asterisk-seats``: the seats' PJSIP endpoints for Asterisk.

Reads the seats from the database named by the settings (no server needed) and
writes ``pjsip_seats.conf`` (``deploy/asterisk/pjsip.conf`` includes it): one
registering phone per seat whose address names a PJSIP endpoint (``PJSIP/desk-07``
or ``desk-07``). Each phone's password is derived from the server's secret key and
the endpoint's name, so generating the file again gives the same passwords: the
phones keep working.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import sys
from pathlib import Path

from sqlalchemy import select

from app.acd.models import Seat
from app.db import Database, make_engine
from app.settings import Settings
from app.telephony.asterisk.config import SeatPhone, endpoint_of, seat_sections


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign", "--campaign-id", dest="campaign_id", type=int)
    parser.add_argument("--out", type=Path, help="write here (default: standard output)")


def seat_password(secret_key: str, endpoint: str) -> str:
    digest = hmac.new(secret_key.encode(), f"asterisk-seat:{endpoint}".encode(), hashlib.sha256)
    return digest.hexdigest()[:24]


async def _phones(settings: Settings, campaign_id: int | None) -> list[SeatPhone]:
    db = Database(make_engine(settings.database_url))
    try:
        async with db.read() as session:
            stmt = select(Seat.address).order_by(Seat.id)
            if campaign_id is not None:
                stmt = stmt.where(Seat.campaign_id == campaign_id)
            addresses = list((await session.execute(stmt)).scalars())
    finally:
        await db.dispose()
    endpoints = sorted({e for a in addresses if (e := endpoint_of(a)) is not None})
    return [SeatPhone(e, password=seat_password(settings.secret_key, e)) for e in endpoints]


async def seats_file(settings: Settings, campaign_id: int | None) -> str:
    """The text of ``pjsip_seats.conf`` for the seats (of one campaign, or all)."""
    return seat_sections(await _phones(settings, campaign_id))


def run(args: argparse.Namespace, settings: Settings) -> int:
    text = asyncio.run(seats_file(settings, args.campaign_id))
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        args.out.chmod(0o640)  # the phones' passwords
    return 0

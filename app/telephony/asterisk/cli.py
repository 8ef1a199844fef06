"""``pledgeline asterisk-seats``: the seats' PJSIP endpoints for Asterisk;
``pledgeline asterisk-config``: a whole Asterisk folder rendered from the templates.

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
from app.i18n.console import say
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


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the folder to render into")
    parser.add_argument("--http-port", type=int, default=8088, help="ARI and /ws (8088)")
    parser.add_argument("--sip-port", type=int, default=5060, help="SIP over UDP (5060)")
    parser.add_argument("--sip-tls-port", type=int, default=5061, help="SIP over TLS (5061)")
    parser.add_argument("--rtp-start", type=int, default=10000, help="first RTP port (even)")
    parser.add_argument("--sip-bind", default="127.0.0.1", help="SIP's address (127.0.0.1)")
    parser.add_argument("--language", default="fr", help="the callers' prompts (fr)")
    parser.add_argument(
        "--demo-caller", action="store_true", help="add the demo caller's phone (demo-caller)"
    )


def run_config(args: argparse.Namespace, settings: Settings) -> int:
    """Render a folder Asterisk runs from (``asterisk -f -C DIR/etc/asterisk.conf``)
    with the ARI user of the settings and the seats' phones of the database."""
    from app.telephony.asterisk.local import (
        DemoCaller,
        Ports,
        asterisk_prefix,
        command,
        prepare,
    )

    if args.rtp_start % 2:
        print(say("The first RTP port must be even."), file=sys.stderr)
        return 2
    if not settings.asterisk_ari_password:
        print(say("Set PLEDGELINE_ASTERISK_ARI_PASSWORD first: ARI's password."), file=sys.stderr)
        return 2
    caller = None
    if args.demo_caller:
        caller = DemoCaller("demo-caller", seat_password(settings.secret_key, "demo-caller"))
    config = prepare(
        args.out,
        ports=Ports(args.http_port, args.sip_port, args.sip_tls_port, args.rtp_start),
        ari_user=settings.asterisk_ari_user,
        ari_password=settings.asterisk_ari_password,
        ari_app=settings.asterisk_ari_app,
        trunk_endpoint=settings.asterisk_trunk_endpoint,
        language=args.language,
        sip_bind=args.sip_bind,
        phones=asyncio.run(_phones(settings, None)),
        demo_caller=caller,
    )
    print(say("Asterisk's configuration is in {folder}.", folder=config.parent))
    print(say("Start it with: {command}", command=" ".join(command(config, asterisk_prefix()))))
    if caller is not None:
        print(
            say(
                "Demo caller phone: user {user}, password {password}.",
                user=caller.username,
                password=caller.password,
            )
        )
    return 0

"""The ``pledgeline`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import sys
from collections.abc import Callable
from functools import partial

from app.i18n import LANGUAGES
from app.i18n.console import ENV as LANG_ENV
from app.i18n.console import refused, say
from app.settings import Settings, get_settings, weak_secrets


def _refuse_weak_secrets(settings: Settings) -> bool:
    """Say which secrets are shipped defaults or too short, and how to make one."""
    weak = weak_secrets(settings)
    if weak:
        print("Refusing to start: a production server needs its own secrets.", file=sys.stderr)
        for secret in weak:
            print(f"  {secret}", file=sys.stderr)
        print(
            "(PLEDGELINE_ENV=development allows them, for a trial on one machine.)", file=sys.stderr
        )
    return bool(weak)


# The event loop and HTTP parser of every server process (uvicorn[standard] ships both);
# tests/procs.py starts its servers with the same.
SERVER_LOOP = "uvloop"
SERVER_HTTP = "httptools"


def _serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    if _refuse_weak_secrets(settings):
        return 2
    workers = args.workers or settings.workers
    if workers > 1 and settings.database_url.startswith("sqlite"):
        print("SQLite runs in one process; use PostgreSQL for several workers.", file=sys.stderr)
        return 2
    from app.metrics_multiprocess import multiprocess_dir, prepare_multiprocess_dir

    # Several workers: /metrics adds up their counters from files (docs/metrics.md).
    created = prepare_multiprocess_dir() if workers > 1 or multiprocess_dir() else None
    try:
        _run_uvicorn(args, settings, workers)
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
    return 0


def _run_uvicorn(args: argparse.Namespace, settings: Settings, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=workers,
        log_level=settings.log_level,
        # The client address is worked out by the app from PLEDGELINE_TRUSTED_PROXIES
        # (app/auth/addresses.py); uvicorn would otherwise believe any local proxy.
        proxy_headers=False,
        # Named, not "auto": a missing uvloop or httptools is an error at start-up
        # rather than a silent fall-back to the slower pure-Python loop and parser.
        loop=SERVER_LOOP,
        http=SERVER_HTTP,
    )


def _migrate(_: argparse.Namespace) -> int:
    from app.migrate import upgrade

    upgrade(get_settings().database_url)
    print(say("database at head"))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from app.db import Database, make_engine
    from app.migrate import upgrade
    from app.seed import DEMO_LOGINS, DEMO_NUMBER, seed_demo

    # The demo runs on one machine with the shipped secrets: `serve` allows them so.
    os.environ["PLEDGELINE_ENV"] = "development"
    get_settings.cache_clear()
    settings = get_settings()
    upgrade(settings.database_url)

    async def _seed() -> int:
        db = Database(make_engine(settings.database_url))
        try:
            return await seed_demo(db)
        finally:
            await db.dispose()

    campaign_id = asyncio.run(_seed())
    host, port = args.host or settings.host, args.port or settings.port
    if args.asterisk:
        return _demo_asterisk(args, settings, campaign_id)
    print(f"Demo campaign {campaign_id} seeded; simulated callers dial {DEMO_NUMBER}.")
    print(f"Demo logins (campaign {campaign_id}):")
    for username, secret, role in DEMO_LOGINS:
        print(f"  {role:<10} {username:<11} {secret}")
    print(f"Pledgeline at http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    print(f"Queue statistics: http://{host}:{port}/queues?campaign_id={campaign_id}")
    print(
        "Each simulated on-air appeal puts the pledges queue in surge mode; the demo "
        "volunteer (login 'agent') is on standby and gets paged on the volunteer screen."
    )
    _start_embedded_directory(settings)
    os.environ["PLEDGELINE_SIMULATE"] = "true"
    get_settings.cache_clear()
    args.workers = 1
    return _serve(args)


def _demo_asterisk(args: argparse.Namespace, settings: Settings, campaign_id: int) -> int:
    """The demo with real calls: Asterisk runs while the app serves, no simulation."""
    from pathlib import Path

    from app.seed import DEMO_LOGINS, DEMO_NUMBER
    from app.telephony.asterisk.demo import AsteriskDidNotStart, demo_asterisk, running
    from app.telephony.asterisk.local import Ports

    ports = Ports(
        http=args.asterisk_http_port,
        sip=args.asterisk_sip_port,
        sip_tls=args.asterisk_sip_port + 1,
        rtp_start=10000,
    )
    demo = demo_asterisk(Path(args.asterisk_dir), settings, ports)
    host, port = args.host or settings.host, args.port or settings.port
    print(say("Demo campaign {campaign} seeded.", campaign=campaign_id))
    for username, secret, role in DEMO_LOGINS:
        print(f"  {role:<10} {username:<11} {secret}")
    print(say("Asterisk's folder: {folder}", folder=demo.root))
    print(
        say(
            "Volunteer: sign in as 'agent' at http://{host}:{port}/login, allow the "
            "microphone, wait for the line to be connected, press Ready.",
            host=host,
            port=port,
        )
    )
    print(
        say(
            "Caller: a SIP softphone with the account {user} (password {password}, server "
            "127.0.0.1:{sip_port}, UDP) calls {number}.",
            user=demo.caller.username,
            password=demo.caller.password,
            sip_port=ports.sip,
            number=DEMO_NUMBER,
        )
    )
    try:
        with running(demo, settings):
            print(say("Asterisk is running; ARI at {url}.", url=demo.ari_url))
            _start_embedded_directory(settings)
            os.environ.update(demo.environment(settings))
            get_settings.cache_clear()
            args.workers = 1
            return _serve(args)
    except AsteriskDidNotStart as exc:
        print(say("Asterisk did not start: {reason}", reason=str(exc)), file=sys.stderr)
        return 1


def _start_embedded_directory(settings: Settings) -> None:
    """The demo's built-in directory, in this process, where the settings point."""
    from urllib.parse import urlsplit

    from app.cti.directory_server import EmbeddedDirectory

    url = urlsplit(settings.directory_url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        return  # a directory elsewhere (or none): nothing to start here
    if EmbeddedDirectory(port=url.port, token=settings.directory_token).start():
        print(f"Built-in directory at {settings.directory_url}")
    else:
        print(
            f"Built-in directory did not start on port {url.port} (taken?); "
            "calls go on without caller details.",
            file=sys.stderr,
        )


def _directory(args: argparse.Namespace) -> int:
    from app.cti.directory_server import run_from_args

    return run_from_args(args)


def _user_add(args: argparse.Namespace) -> int:
    import getpass

    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.auth.service import Role, create_user
    from app.db import Database, make_engine
    from app.errors import AppError

    secret = args.secret or os.environ.get("PLEDGELINE_NEW_USER_SECRET")
    if not secret:
        secret = getpass.getpass("PIN (volunteers) or password (staff): ")

    async def _add() -> int:
        db = Database(make_engine(get_settings().database_url))
        try:
            async with db.unit_of_work() as uow:
                user = await create_user(
                    uow,
                    username=args.username,
                    display_name=args.display_name or args.username,
                    role=Role(args.role),
                    secret=secret,
                    campaign_id=args.campaign_id,
                    agent_id=args.agent_id,
                )
            return user.id
        finally:
            await db.dispose()

    try:
        user_id = asyncio.run(_add())
    except AppError as exc:
        print(refused(exc), file=sys.stderr)
        return 2
    print(
        say(
            "user {username} created (id {user_id}, role {role})",
            username=args.username,
            user_id=user_id,
            role=args.role,
        )
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from app.pledges.export_cli import run

    return run(args, get_settings().database_url)


def _receipts(args: argparse.Namespace) -> int:
    from app.receipts.cli import run

    return run(args, get_settings())


def _privacy(args: argparse.Namespace) -> int:
    from app.privacy.cli import run

    return run(args, get_settings())


def _roster(args: argparse.Namespace) -> int:
    from app.roster.cli import run

    return run(args, get_settings().database_url)


def _asterisk_seats(args: argparse.Namespace) -> int:
    from app.telephony.asterisk.cli import run

    return run(args, get_settings())


def _asterisk_config(args: argparse.Namespace) -> int:
    from app.telephony.asterisk.cli import run_config

    return run_config(args, get_settings())


def _plan(args: argparse.Namespace) -> int:
    from app.planning.cli import run

    return run(args)


def _i18n(args: argparse.Namespace) -> int:
    from app.i18n.cli import run

    return run(args)


def _bench(args: argparse.Namespace) -> int:
    from bench import run_benchmark

    return run_benchmark(args.name, args.json, args.options)


def _add_arguments(
    parser: argparse.ArgumentParser, module: str, function: str = "add_arguments"
) -> None:
    getattr(importlib.import_module(module), function)(parser)


def main(argv: list[str] | None = None) -> int:
    # The subcommands whose arguments are declared by their own module: that module is
    # imported only for the command being run (and its --help), so a command starts
    # without the others' imports (``pledgeline export``: 9 MB and 0.2 s of CPU less,
    # without the directory server's HTTP client, the planner, babel's writers...).
    deferred: dict[str, Callable[[], None]] = {}
    parser = argparse.ArgumentParser(prog="pledgeline", description=__doc__)
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        help=f"language of the human output (default: {LANG_ENV}, else fr)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=_serve)

    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(
        func=_migrate
    )

    demo = sub.add_parser("demo", help="seed a demo campaign and run it with simulated calls")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    demo.add_argument(
        "--asterisk",
        action="store_true",
        help="real calls: an Asterisk started here, the browser softphone on (docs/asterisk.md)",
    )
    demo.add_argument("--asterisk-dir", default="data/asterisk", help="its folder")
    demo.add_argument("--asterisk-http-port", type=int, default=8088, help="ARI and /ws")
    demo.add_argument("--asterisk-sip-port", type=int, default=5060, help="SIP over UDP")
    demo.set_defaults(func=_demo)

    directory = sub.add_parser("directory", help="the built-in reverse directory")
    directory_sub = directory.add_subparsers(dest="directory_command", required=True)
    directory_serve = directory_sub.add_parser(
        "serve", help="serve sample French directory data over HTTP (docs/directory.md)"
    )
    deferred["directory"] = partial(_add_arguments, directory_serve, "app.cti.directory_server")
    directory_serve.set_defaults(func=_directory)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user (asks for the PIN or password)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "organiser", "admin"])
    add.add_argument("--display-name")
    add.add_argument("--campaign-id", type=int)
    add.add_argument("--agent-id", type=int, help="the agent a volunteer login acts as")
    add.add_argument(
        "--secret", help="PIN or password (default: asked, or PLEDGELINE_NEW_USER_SECRET)"
    )
    add.set_defaults(func=_user_add)

    export = sub.add_parser("export", help="export a campaign's pledges as CSV or XLSX")
    deferred["export"] = partial(_add_arguments, export, "app.pledges.export_cli")
    export.set_defaults(func=_export)

    receipts = sub.add_parser("receipts", help="tax receipts (docs/receipts.md)")
    deferred["receipts"] = partial(_add_arguments, receipts, "app.receipts.cli")
    receipts.set_defaults(func=_receipts)

    payments = sub.add_parser("payments", help="reconcile payments: provider and bank exports")
    deferred["payments"] = partial(_add_arguments, payments, "app.reconciliation.cli")

    privacy = sub.add_parser("privacy", help="personal data: the retention purge")
    deferred["privacy"] = partial(_add_arguments, privacy, "app.privacy.cli")
    privacy.set_defaults(func=_privacy)

    roster = sub.add_parser("roster", help="the volunteers' roster (docs/roster.md)")
    deferred["roster"] = partial(_add_arguments, roster, "app.roster.cli")
    roster.set_defaults(func=_roster)

    asterisk_seats = sub.add_parser(
        "asterisk-seats", help="the seats' PJSIP endpoints for Asterisk (docs/asterisk.md)"
    )
    deferred["asterisk-seats"] = partial(
        _add_arguments, asterisk_seats, "app.telephony.asterisk.cli"
    )
    asterisk_seats.set_defaults(func=_asterisk_seats)

    asterisk_config = sub.add_parser(
        "asterisk-config",
        help="a folder Asterisk runs from, rendered from deploy/asterisk (docs/asterisk.md)",
    )
    deferred["asterisk-config"] = partial(
        _add_arguments, asterisk_config, "app.telephony.asterisk.cli", "add_config_arguments"
    )
    asterisk_config.set_defaults(func=_asterisk_config)

    plan = sub.add_parser("plan", help="a staffing plan from a rundown CSV file (Erlang C)")
    deferred["plan"] = partial(_add_arguments, plan, "app.planning.cli")
    plan.set_defaults(func=_plan)

    i18n = sub.add_parser(
        "i18n", help="translators: extract, update, compile, check (docs/i18n.md)"
    )
    deferred["i18n"] = partial(_add_arguments, i18n, "app.i18n.cli")
    i18n.set_defaults(func=_i18n)

    bench = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench.add_argument("name", help="routing")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("options", nargs="*", help="key=value overrides")
    bench.set_defaults(func=_bench)

    # The command is the first word naming one (the global options before it take
    # none: --lang takes a language).
    words = sys.argv[1:] if argv is None else argv
    command = next((word for word in words if word in sub.choices), None)
    if command in deferred:
        deferred[command]()

    # `bench NAME --json key=value ...`: argparse fills the positional `options` before
    # it meets --json, so what follows would be "unrecognized"; it belongs to options.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "bench" or any(item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.options = [*args.options, *extra]
    if args.lang:
        os.environ[LANG_ENV] = args.lang  # and the processes a command starts
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

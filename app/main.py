"""The app factory: routers, error handlers, and the background work of a process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from app import heap, plugins
from app.acd import config_cache
from app.acd.call_records import CALL_RECORDS
from app.acd.endpoints import router as acd_router
from app.acd.router import Dispatcher
from app.acd.stale import StaleSweeper
from app.acd.worker import TimerWorker
from app.alerts.endpoints import router as alerts_router
from app.auth.cache import PrincipalCache
from app.auth.endpoints import router as auth_router
from app.cti.service import CallerLookup
from app.db import Database, make_engine
from app.errors import API_ERRORS, error_responses, install_error_handlers
from app.health import router as health_router
from app.i18n.endpoints import router as i18n_router
from app.int64 import document_bounds, refuse_int64_overflow
from app.logs import configure_logging
from app.metrics import router as metrics_router
from app.planning.endpoints import router as planning_router
from app.pledges.board_stream import BoardStream, BoardStreamRoute
from app.pledges.endpoints import router as pledges_router
from app.pledges.export_endpoints import router as pledge_exports_router
from app.pledges.live import TotalsPublisher
from app.practice.endpoints import router as practice_router
from app.privacy import caches as privacy_caches
from app.privacy.endpoints import router as privacy_router
from app.privacy.task import RetentionPurge
from app.realtime.feed import EventFeed, Notifier
from app.realtime.hub import Hub
from app.realtime.sockets import StatsTicker
from app.realtime.sockets import router as sockets_router
from app.receipts.endpoints import router as receipts_router
from app.reconciliation.endpoints import router as reconciliation_router
from app.roster.endpoints import router as roster_router
from app.roster.hours_endpoints import router as hours_router
from app.roster.shift_endpoints import router as shifts_router
from app.rules import engine as rules_engine
from app.rules.endpoints import router as rules_router
from app.rules.engine import defaults as rules_defaults
from app.rules.service import PledgeRules
from app.settings import Settings, get_settings
from app.settings import bind as bind_settings
from app.softphone.endpoints import router as softphone_router
from app.softphone.service import Softphones
from app.surge.endpoints import router as surge_router
from app.surge.monitor import SurgeMonitor
from app.surge.sms import SmsDelivery
from app.telephony.delivery import CommandDelivery
from app.telephony.endpoints import router as telephony_router
from app.telephony.http_callback import HttpCallbackPlatform
from app.telephony.port import TelephonyPlatform
from app.web.pages import router as web_router

log = logging.getLogger(__name__)


def _platform(settings: Settings) -> TelephonyPlatform | None:
    if settings.simulate:
        from app.telephony.simulated import SimulatedPlatform

        return SimulatedPlatform.from_settings(settings)
    if settings.telephony_platform == "asterisk":
        from app.telephony.asterisk.platform import AsteriskPlatform

        return AsteriskPlatform.from_settings(settings)
    if settings.telephony_callback_url:
        return HttpCallbackPlatform(settings.telephony_callback_url, settings.telephony_secret)
    return None  # commands are only read by polling


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            make_engine(
                settings.database_url,
                pool_size=settings.db_pool_size,
                busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                synchronous=settings.sqlite_synchronous,
            )
        )
        app.state.db = db
        bind_settings(db, settings)

        # Logins cached by this process go at once: its own commits here, every
        # process's through the event feed below.
        principal_cache = app.state.principal_cache
        db.on_events.append(principal_cache.on_events)

        # pledge.saved rules, after commit, off the saving request (app/rules/service.py).
        pledge_rules = app.state.pledge_rules = PledgeRules(db)
        db.on_events.append(pledge_rules.on_events)
        rules_defaults()  # builds the CEL parser and the shipped rules now, not on a call
        hub, feed = Hub(), EventFeed(db)
        feed.attach(hub)

        def drop_stale_caches(messages: list[dict[str, Any]]) -> None:
            # Configuration, rules and logins changed by any process: this one's caches go.
            config_cache.on_events(db, messages)
            rules_engine.on_events(messages)
            principal_cache.forget_events(messages)
            privacy_caches.on_events(app.state, messages)  # a donor erased: their copies go

        feed.subscribe(drop_stale_caches)
        # Read from other processes even where no screen watches their campaign.
        feed.always_read(
            (
                *config_cache.CONFIG_EVENT_PREFIXES,
                "rules.replaced",
                "auth.",
                privacy_caches.EVENT_PREFIX,
            )
        )
        # The public tote board's push stream hears every process's totals.updated.
        board_stream = app.state.board_stream = BoardStream(db)
        board_stream.attach(feed)
        board_stream.start()
        await feed.start()
        notifier = Notifier(db, settings.database_url, feed) if db.is_postgres else None
        if notifier is not None:
            await notifier.start()
        ticker = StatsTicker(db, hub, settings, feed)
        ticker.start()
        totals_publisher = app.state.totals_publisher = TotalsPublisher(db)
        totals_publisher.start()
        caller_lookup = CallerLookup(settings, CALL_RECORDS) if settings.directory_url else None
        if caller_lookup is not None:
            await caller_lookup.start()
        app.state.caller_lookup = caller_lookup
        plugins.install(db, caller_lookup)
        app.state.hub, app.state.feed = hub, feed
        dispatcher, timer_worker, stale_sweeper = Dispatcher(), TimerWorker(), StaleSweeper()
        retention_purge = RetentionPurge()
        surge_monitor, sms_delivery = SurgeMonitor(), SmsDelivery()
        platform = _platform(settings)
        delivery = (
            CommandDelivery(platform, settings.telephony_callback_retries) if platform else None
        )
        app.state.platform = platform
        # The browser softphone's credentials go through the platform; a logout withdraws them.
        softphones = app.state.softphones = Softphones(settings, platform)
        db.on_events.append(softphones.on_events)
        if settings.background_workers:
            dispatcher.start(db, settings.dispatch_sweep_seconds)
            timer_worker.start(db, settings.timer_poll_seconds)
            stale_sweeper.start(db, settings.stale_sweep_seconds)
            retention_purge.start(db, settings)
            surge_monitor.start(db, settings.surge_check_seconds)
        if settings.sms_webhook_url:  # pages by SMS, like command push: wherever configured
            sms_delivery.start(
                db,
                settings.sms_webhook_url,
                settings.sms_webhook_secret,
                settings.sms_webhook_retries,
                settings.sms_poll_seconds,
            )
        if platform is not None:
            await platform.start(db)
            if delivery is not None:
                delivery.start(db)
        softphones.start(db)
        # Start-up is done: what it built lives as long as the process (app/heap.py).
        heap.settle_after_start()
        try:
            yield
        finally:
            await softphones.stop()
            if delivery is not None:
                await delivery.stop()
            if platform is not None:
                await platform.stop()
            await sms_delivery.stop()
            await surge_monitor.stop()
            await stale_sweeper.stop()
            await retention_purge.stop()
            await timer_worker.stop()
            await dispatcher.stop()
            await ticker.stop()
            await totals_publisher.stop()
            await board_stream.stop()
            if caller_lookup is not None:
                await caller_lookup.stop()
            if notifier is not None:
                await notifier.stop()
            await pledge_rules.idle()
            await feed.stop()
            await db.dispose()

    # No default_response_class=ORJSONResponse: FastAPI deprecates it, and a custom
    # default turns off its faster path (pydantic writes the JSON bytes of every
    # route with a response model). Measured: no difference (README, "Production").
    app = FastAPI(
        title="Pledgeline",
        version="0.1.0",
        description="Contact-centre backend for telethon pledge hotlines.",
        lifespan=lifespan,
        # Before every route's own dependencies: ids beyond 64 bits are a 422 (app/int64.py).
        dependencies=[Depends(refuse_int64_overflow)],
    )
    app.state.settings = settings
    app.state.principal_cache = PrincipalCache(settings.principal_cache_seconds)
    install_error_handlers(app)
    # Every route documents the refusals it may answer, with their body (app/errors.py).
    operations_errors = error_responses(503)
    app.include_router(health_router, responses=operations_errors)
    app.include_router(metrics_router, responses=operations_errors)
    # Routes are matched in order, about 8 microseconds a route (FastAPI's included
    # routers): the busiest first, the platform's webhook (three a call) and the
    # pledge intake, rather than behind the API's hundred routes (0.2 ms a request).
    app.include_router(telephony_router, responses=API_ERRORS)
    # Before any /pledges/{...} route, so /pledges/export.csv is never taken for one.
    app.include_router(pledge_exports_router, responses=API_ERRORS)
    app.include_router(pledges_router, responses=API_ERRORS)
    app.include_router(acd_router, responses=API_ERRORS)
    app.include_router(auth_router, responses=API_ERRORS)
    app.include_router(sockets_router, responses=API_ERRORS)
    app.include_router(rules_router, responses=API_ERRORS)
    app.include_router(receipts_router, responses=API_ERRORS)
    app.include_router(reconciliation_router, responses=API_ERRORS)
    app.include_router(privacy_router, responses=API_ERRORS)
    app.include_router(surge_router, responses=API_ERRORS)
    app.include_router(alerts_router, responses=API_ERRORS)
    app.include_router(planning_router, responses=API_ERRORS)
    app.include_router(roster_router, responses=API_ERRORS)
    app.include_router(hours_router, responses=API_ERRORS)
    app.include_router(practice_router, responses=API_ERRORS)
    app.include_router(shifts_router, responses=API_ERRORS)
    app.include_router(i18n_router, responses=API_ERRORS)
    app.include_router(softphone_router, responses=API_ERRORS)
    app.include_router(web_router)
    build_middleware_stack = app.build_middleware_stack

    def middleware_stack() -> ASGIApp:
        # The board's viewers before the middleware: the fan-out writes each frame with
        # the server's own send (app/pledges/board_stream.py, BoardStreamRoute).
        return BoardStreamRoute(build_middleware_stack(), app.state)

    app.build_middleware_stack = middleware_stack  # type: ignore[method-assign]
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        # Integers carry the 64-bit bounds app/int64.py enforces (the walk is idempotent).
        return document_bounds(build_openapi())

    app.openapi = openapi  # type: ignore[method-assign]
    return app

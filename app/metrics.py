"""``GET /metrics``: the Prometheus exposition of what an operator watches.

Two kinds of figures. Counters of each process (the caller look-up and its
directory client: look-ups by outcome, errors by kind, breaker, latency
histograms), kept by app/cti; and gauges read from the database at scrape time
(calls waiting per queue, agents by state, pledges), the same from every process.
prometheus_client writes the exposition. With several workers
(``PROMETHEUS_MULTIPROC_DIR`` set, as ``pledgeline serve --workers N`` does), each
worker copies its counters into its files and a scrape adds up all the workers'
(app/metrics_multiprocess.py); with one process they are read straight from it.

Readable by admins, or by a scraper sending ``PLEDGELINE_METRICS_TOKEN`` as its
bearer token (Prometheus ``authorization`` / ``bearer_token_file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select

from app.acd.models import Agent, Call, Campaign, Queue
from app.acd.states import CallState
from app.auth.deps import bearer_token, current_principal
from app.auth.service import Role
from app.background import running_tasks
from app.db import Database
from app.deps import get_db
from app.errors import Forbidden, error_responses
from app.metrics_multiprocess import PUBLISH_SECONDS, FileWriter, multiprocess_dir
from app.pledges.models import PledgeRollup

log = logging.getLogger(__name__)


class Families:
    """A collector of metric families computed before the exposition is written."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def caller_lookup_families(metrics: Mapping[str, Any] | None) -> list[Metric]:
    """The caller look-up's figures of this process (``CallerLookup.metrics()``); with
    several workers, a scrape adds up every worker's."""
    if metrics is None:
        return []  # no directory configured in this process
    directory = metrics["directory"]
    outcomes = {
        "hit": directory["hits"],
        "miss": directory["misses"],
        "cache_hit": directory["cache_hits"],
        "timeout": directory["timeouts"],
        "error": directory["errors"],
        "breaker_open": directory["breaker_rejections"],
        "skipped_withheld": directory["skipped_withheld"],
        "skipped_invalid": directory["skipped_invalid"],
    }
    lookups = CounterMetricFamily(
        "pledgeline_directory_lookups_total",
        "Directory look-ups by outcome.",
        labels=["outcome"],
    )
    for outcome, n in outcomes.items():
        lookups.add_metric([outcome], n)
    errors = CounterMetricFamily(
        "pledgeline_directory_errors_total",
        "Directory errors by kind.",
        labels=["kind"],
    )
    for kind, n in sorted(directory["errors_by_kind"].items()):
        errors.add_metric([kind], n)
    pops = CounterMetricFamily(
        "pledgeline_screen_pops_total",
        "Screen pops stored, by status.",
        labels=["status"],
    )
    for status, n in sorted(metrics["pops_by_status"].items()):
        pops.add_metric([status], n)
    return [
        lookups,
        errors,
        GaugeMetricFamily(
            "pledgeline_directory_breaker_open",
            "1 while the directory circuit breaker is open or half-open (of any live worker).",
            value=0 if directory["breaker_state"] == "closed" else 1,
        ),
        CounterMetricFamily(
            "pledgeline_directory_breaker_opens_total",
            "Times the directory circuit breaker opened.",
            value=directory["breaker_opens"],
        ),
        _histogram(
            "pledgeline_directory_latency_ms",
            "Directory request latency in milliseconds (answers and timeouts).",
            directory["latency_ms"],
        ),
        pops,
        CounterMetricFamily(
            "pledgeline_screen_pop_failures_total",
            "Screen pops that failed on our side (logged).",
            value=metrics["failed"],
        ),
        _histogram(
            "pledgeline_screen_pop_latency_ms",
            "Call received to screen pop stored, in milliseconds.",
            metrics["pop_latency_ms"],
        ),
    ]


def _histogram(name: str, help_text: str, snapshot: Mapping[str, Any]) -> HistogramMetricFamily:
    """A ``LatencyStats.snapshot()`` (cumulative buckets keyed by bound) as a family."""
    return HistogramMetricFamily(
        name,
        help_text,
        # Bounds as prometheus_client's own histograms spell them ("5.0", "+Inf").
        buckets=[(floatToGoString(bound), n) for bound, n in snapshot["buckets"].items()],
        sum_value=snapshot["sum_ms"],
    )


async def database_families(db: Database) -> list[Metric]:
    """Gauges read from the database now: the same whichever process answers."""
    async with db.read() as session:
        waiting = (
            await session.execute(
                select(Campaign.name, Queue.name, func.count(Call.id))
                .select_from(Queue)
                .join(Campaign, Campaign.id == Queue.campaign_id)
                .outerjoin(Call, (Call.queue_id == Queue.id) & (Call.state == CallState.QUEUED))
                .group_by(Campaign.name, Queue.name)
                .order_by(Campaign.name, Queue.name)
            )
        ).all()
        agents = (
            await session.execute(
                select(Campaign.name, Agent.state, func.count(Agent.id))
                .join(Campaign, Campaign.id == Agent.campaign_id)
                .group_by(Campaign.name, Agent.state)
                .order_by(Campaign.name, Agent.state)
            )
        ).all()
        # The running roll-ups (a few rows a campaign), not a scan of the pledges.
        pledges = (
            await session.execute(
                select(
                    Campaign.name,
                    Campaign.currency,
                    func.coalesce(func.sum(PledgeRollup.count), 0),
                    func.coalesce(func.sum(PledgeRollup.promised_minor), 0),
                    func.coalesce(func.sum(PledgeRollup.paid_minor), 0),
                )
                .join(
                    PledgeRollup,
                    (PledgeRollup.campaign_id == Campaign.id) & (PledgeRollup.dimension == "all"),
                )
                .group_by(Campaign.name, Campaign.currency)
                .order_by(Campaign.name)
            )
        ).all()
    waiting_family = GaugeMetricFamily(
        "pledgeline_queue_calls_waiting",
        "Calls waiting in each queue.",
        labels=["campaign", "queue"],
    )
    for campaign, queue, n in waiting:
        waiting_family.add_metric([campaign, queue], n)
    agents_family = GaugeMetricFamily(
        "pledgeline_agents", "Agents by state.", labels=["campaign", "state"]
    )
    for campaign, state, n in agents:
        agents_family.add_metric([campaign, str(state)], n)
    pledges_family = GaugeMetricFamily(
        "pledgeline_pledges",
        "Pledges not cancelled (the running counters of the tote board).",
        labels=["campaign"],
    )
    money_family = GaugeMetricFamily(
        "pledgeline_pledged_minor",
        "Money promised and paid on pledges not cancelled, in minor units (cents).",
        labels=["campaign", "currency", "kind"],
    )
    for campaign, currency, n, promised, paid in pledges:
        pledges_family.add_metric([campaign], n)
        money_family.add_metric([campaign, currency, "promised"], promised)
        money_family.add_metric([campaign, currency, "paid"], paid)
    return [waiting_family, agents_family, pledges_family, money_family]


def _this_process(app: FastAPI) -> list[Metric]:
    lookup = app.state.caller_lookup
    families = caller_lookup_families(lookup.metrics() if lookup is not None else None)
    return [*families, *background_families()]


def background_families() -> list[Metric]:
    """Restarts of this process's supervised background tasks (``app/background.py``)."""
    restarts = CounterMetricFamily(
        "pledgeline_background_task_restarts",
        "Times a background task (router, timers, feed...) failed and was started again.",
        labels=["task"],
    )
    for task in running_tasks():
        restarts.add_metric([task.name], task.restarts)
    return [restarts]


async def _publish_every(app: FastAPI, writer: FileWriter, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            writer.write(_this_process(app))
        except Exception:  # a full disk must not stop the worker; next time may work
            log.exception("could not write this worker's metrics")


@contextlib.asynccontextmanager
async def _worker_files(app: FastAPI) -> AsyncIterator[None]:
    """With several workers: this worker's figures go to its files until it stops.

    Entered after the app's own lifespan has started the caller look-up."""
    if multiprocess_dir() is None:
        app.state.metrics_files = None
        yield
        return
    writer = FileWriter()
    app.state.metrics_files = writer
    writer.write(_this_process(app))
    publisher = asyncio.create_task(_publish_every(app, writer, PUBLISH_SECONDS))
    try:
        yield
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        writer.write(_this_process(app))  # its counters stay in the sums after it
        mark_process_dead(os.getpid())  # its gauges do not


router = APIRouter(tags=["operations"], lifespan=_worker_files)


async def _allowed(request: Request, db: Database) -> None:
    token = bearer_token(request)
    expected = request.app.state.settings.metrics_token
    if expected and token and hmac.compare_digest(token.encode(), expected.encode()):
        return
    principal = await current_principal(request, db)
    if principal.role != Role.ADMIN:
        raise Forbidden("metrics are for operators (admin or the metrics token)")


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin, or the metrics bearer token)",
    response_class=Response,
    responses=error_responses(401, 403),
)
async def metrics(request: Request, db: Annotated[Database, Depends(get_db)]) -> Response:
    await _allowed(request, db)
    registry = CollectorRegistry()
    files: FileWriter | None = request.app.state.metrics_files
    if files is None:
        registry.register(Families(_this_process(request.app)))
    else:
        files.write(_this_process(request.app))  # this worker's figures as of now
        MultiProcessCollector(registry)
    registry.register(Families(await database_families(db)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

"""``GET /metrics``: Prometheus text exposition of what an operator watches.

Two kinds of figures. Counters of this process (the caller look-up and its
directory client: look-ups by outcome, errors by kind, breaker, latency
histogram), which a scraper sums over the processes; and gauges read from the
database at scrape time (calls waiting per queue, agents by state), the same on
every process. Hand-written exposition: a few dozen lines do not need a library.

Readable by admins, or by a scraper sending ``PLEDGELINE_METRICS_TOKEN`` as its
bearer token (Prometheus ``authorization`` / ``bearer_token_file``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from app.acd.models import Agent, Call, Campaign, Queue
from app.acd.states import CallState
from app.auth.deps import bearer_token, current_principal
from app.auth.service import Role
from app.db import Database
from app.deps import get_db
from app.errors import Forbidden
from app.pledges.models import PledgeCounter

router = APIRouter(tags=["operations"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(labels: Mapping[str, Any]) -> str:
    if not labels:
        return ""
    parts = []
    for key, value in labels.items():
        text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{key}="{text}"')
    return "{" + ",".join(parts) + "}"


class Exposition:
    """Lines of the text format, each metric family with its HELP and TYPE once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, Any], Any]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _caller_lookup_metrics(out: Exposition, metrics: Mapping[str, Any] | None) -> None:
    if metrics is None:
        return  # no directory configured in this process
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
    out.family(
        "pledgeline_directory_lookups_total",
        "counter",
        "Directory look-ups of this process by outcome.",
        (({"outcome": k}, v) for k, v in outcomes.items()),
    )
    out.family(
        "pledgeline_directory_errors_total",
        "counter",
        "Directory errors of this process by kind.",
        (({"kind": k}, v) for k, v in sorted(directory["errors_by_kind"].items())),
    )
    out.family(
        "pledgeline_directory_breaker_open",
        "gauge",
        "1 while this process's directory circuit breaker is open (or half-open).",
        [({}, 0 if directory["breaker_state"] == "closed" else 1)],
    )
    out.family(
        "pledgeline_directory_breaker_opens_total",
        "counter",
        "Times this process's directory breaker opened.",
        [({}, directory["breaker_opens"])],
    )
    _histogram(
        out,
        "pledgeline_directory_latency_ms",
        "Directory request latency in milliseconds (this process).",
        directory["latency_ms"],
    )
    out.family(
        "pledgeline_screen_pops_total",
        "counter",
        "Screen pops stored by this process, by status.",
        (({"status": k}, v) for k, v in sorted(metrics["pops_by_status"].items())),
    )
    out.family(
        "pledgeline_screen_pop_failures_total",
        "counter",
        "Screen pops that failed (logged) in this process.",
        [({}, metrics["failed"])],
    )
    _histogram(
        out,
        "pledgeline_screen_pop_latency_ms",
        "Call received to screen pop stored, in milliseconds (this process).",
        metrics["pop_latency_ms"],
    )


def _histogram(out: Exposition, name: str, help_text: str, snapshot: Mapping[str, Any]) -> None:
    samples: list[tuple[Mapping[str, Any], Any]] = [
        ({"le": bound}, count) for bound, count in snapshot["buckets"].items()
    ]
    out.lines.append(f"# HELP {name} {help_text}")
    out.lines.append(f"# TYPE {name} histogram")
    for labels, value in samples:
        out.lines.append(f"{name}_bucket{_labels(labels)} {value}")
    out.lines.append(f"{name}_sum {snapshot['sum_ms']}")
    out.lines.append(f"{name}_count {snapshot['count']}")


async def _database_gauges(out: Exposition, db: Database) -> None:
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
        # The running counters (a few rows a campaign), not a scan of the pledges.
        pledges = (
            await session.execute(
                select(
                    Campaign.name,
                    Campaign.currency,
                    func.coalesce(func.sum(PledgeCounter.count), 0),
                    func.coalesce(func.sum(PledgeCounter.promised_minor), 0),
                    func.coalesce(func.sum(PledgeCounter.paid_minor), 0),
                )
                .join(PledgeCounter, PledgeCounter.campaign_id == Campaign.id)
                .group_by(Campaign.name, Campaign.currency)
                .order_by(Campaign.name)
            )
        ).all()
    out.family(
        "pledgeline_queue_calls_waiting",
        "gauge",
        "Calls waiting in each queue.",
        (({"campaign": c, "queue": q}, n) for c, q, n in waiting),
    )
    out.family(
        "pledgeline_agents",
        "gauge",
        "Agents by state.",
        (({"campaign": c, "state": s}, n) for c, s, n in agents),
    )
    out.family(
        "pledgeline_pledges",
        "gauge",
        "Pledges not cancelled (the running counters of the tote board).",
        (({"campaign": c}, n) for c, _cur, n, _p, _paid in pledges),
    )
    out.family(
        "pledgeline_pledged_minor",
        "gauge",
        "Money promised and paid on pledges not cancelled, in minor units (cents).",
        (
            sample
            for c, cur, _n, promised, paid in pledges
            for sample in (
                ({"campaign": c, "currency": cur, "kind": "promised"}, promised),
                ({"campaign": c, "currency": cur, "kind": "paid"}, paid),
            )
        ),
    )


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
    response_class=PlainTextResponse,
)
async def metrics(request: Request, db: Annotated[Database, Depends(get_db)]) -> PlainTextResponse:
    await _allowed(request, db)
    out = Exposition()
    lookup = request.app.state.caller_lookup
    _caller_lookup_metrics(out, lookup.metrics() if lookup is not None else None)
    await _database_gauges(out, db)
    return PlainTextResponse(out.text(), media_type=CONTENT_TYPE)

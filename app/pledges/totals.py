"""Pledge totals: promised and paid, count, average and fulfilment, by dimension.

Cancelled pledges count nowhere. A monthly pledge counts its monthly amount
once. ``fulfilment_rate`` is paid / promised (None when nothing is promised).
The campaign's totals (overall and the six groupings) are read from the running
roll-ups (``app/pledges/rollups.py``): one aggregate over a few rows per key,
whatever the number of pledges. Only a window (``since``/``until``, which no
screen sends) is aggregated from the pledges of that window.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.acd.models import Agent, Campaign, Queue
from app.errors import NotFound
from app.pledges.models import Pledge, PledgeRollup, PledgeStatus

DIMENSIONS = ("slot", "hour", "queue", "agent", "partner", "departement")


def row(key: str | None, label: str, count: int, promised: int, paid: int) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "count": count,
        "promised_minor": promised,
        "paid_minor": paid,
        "average_minor": promised // count if count else 0,
        "fulfilment_rate": round(paid / promised, 4) if promised else None,
    }


def _hour_key(session: AsyncSession) -> ColumnElement[Any]:
    """The UTC hour a pledge was saved in: cheap to compute per row, formatted later."""
    if session.get_bind().dialect.name == "sqlite":
        # Stored as naive UTC text "YYYY-MM-DD HH:MM:SS..." (app.db.UTCDateTime).
        return func.substr(Pledge.created_at, 1, 13)
    return func.date_trunc(
        literal_column("'hour'"), Pledge.created_at.op("AT TIME ZONE")(literal_column("'UTC'"))
    )


def _hour_text(value: Any) -> str:
    """``YYYY-MM-DDTHH:00`` from either database's hour key."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:00")
    return f"{str(value)[:10]}T{str(value)[11:13]}:00"


async def _grouped(
    session: AsyncSession,
    key: ColumnElement[Any] | InstrumentedAttribute[Any] | None,
    filters: list[ColumnElement[bool]],
) -> list[tuple[Any, int, int, int]]:
    columns: list[Any] = [
        func.count(Pledge.id),
        func.coalesce(func.sum(Pledge.amount_minor), 0),
        func.coalesce(func.sum(Pledge.paid_minor), 0),
    ]
    query = select(key if key is not None else literal_column("NULL"), *columns).where(*filters)
    if key is not None:
        query = query.group_by(key).order_by(key)
    result = await session.execute(query)
    return [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in result.all()]


def _filters(
    campaign_id: int, since: dt.datetime | None, until: dt.datetime | None
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [
        Pledge.campaign_id == campaign_id,
        Pledge.status != PledgeStatus.CANCELLED,
    ]
    if since is not None:
        filters.append(Pledge.created_at >= since)
    if until is not None:
        filters.append(Pledge.created_at < until)
    return filters


async def overall_by_query(
    session: AsyncSession,
    campaign_id: int,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, Any]:
    """The overall row, aggregated from the pledges themselves (any time window)."""
    [(_, count, promised, paid)] = await _grouped(
        session, None, _filters(campaign_id, since, until)
    )
    return row(None, "all", count, promised, paid)


async def overall(
    session: AsyncSession,
    campaign_id: int,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, Any]:
    """The overall row. Without a window it is read from the running roll-ups
    (a few rows, whatever the number of pledges): what the live figures use."""
    if since is not None or until is not None:
        return await overall_by_query(session, campaign_id, since, until)
    result = await session.execute(
        select(
            func.coalesce(func.sum(PledgeRollup.count), 0),
            func.coalesce(func.sum(PledgeRollup.promised_minor), 0),
            func.coalesce(func.sum(PledgeRollup.paid_minor), 0),
        ).where(PledgeRollup.campaign_id == campaign_id, PledgeRollup.dimension == "all")
    )
    count, promised, paid = result.one()
    return row(None, "all", int(count), int(promised), int(paid))


Grouped = list[tuple[Any, int, int, int]]


def _sorted(grouped: Grouped) -> Grouped:
    return sorted(grouped, key=lambda r: (r[0] is None, r[0] if r[0] is not None else 0))


async def _groupings(
    session: AsyncSession, keys: dict[str, Any], filters: list[ColumnElement[bool]]
) -> tuple[dict[str, Grouped], tuple[int, int, int]]:
    """Each dimension's rows and the overall figures.

    PostgreSQL computes them all in one scan (``GROUPING SETS``); SQLite, which has
    no grouping sets, with one aggregate per dimension.
    """
    if session.get_bind().dialect.name == "sqlite":
        out = {name: _sorted(await _grouped(session, key, filters)) for name, key in keys.items()}
        [(_, count, promised, paid)] = await _grouped(session, None, filters)
        return out, (count, promised, paid)
    exprs = list(keys.values())
    query = (
        select(
            *(func.grouping(e) for e in exprs),
            *exprs,
            func.count(Pledge.id),
            func.coalesce(func.sum(Pledge.amount_minor), 0),
            func.coalesce(func.sum(Pledge.paid_minor), 0),
        )
        .select_from(Pledge)
        .where(*filters)
        .group_by(func.grouping_sets(*(tuple_(e) for e in exprs), literal_column("()")))
    )
    width = len(exprs)
    grouped: dict[str, Grouped] = {name: [] for name in keys}
    names = list(keys)
    overall_row = (0, 0, 0)
    for r in (await session.execute(query)).all():
        figures = (int(r[2 * width]), int(r[2 * width + 1]), int(r[2 * width + 2]))
        flags = r[:width]
        if all(flags):
            overall_row = figures
            continue
        index = list(flags).index(0)
        grouped[names[index]].append((r[width + index], *figures))
    return {name: _sorted(rows) for name, rows in grouped.items()}, overall_row


_KEY_TYPES: dict[str, Any] = {"queue": int, "agent": int}


async def _rolled_up(
    session: AsyncSession, campaign_id: int
) -> tuple[dict[str, Grouped], tuple[int, int, int]]:
    """Each dimension's rows and the overall figures, from the roll-ups: one query
    over the campaign's roll-up rows (keys x shards), never over its pledges."""
    result = await session.execute(
        select(
            PledgeRollup.dimension,
            PledgeRollup.key,
            func.sum(PledgeRollup.count),
            func.sum(PledgeRollup.promised_minor),
            func.sum(PledgeRollup.paid_minor),
        )
        .where(PledgeRollup.campaign_id == campaign_id)
        .group_by(PledgeRollup.dimension, PledgeRollup.key)
    )
    grouped: dict[str, Grouped] = {name: [] for name in DIMENSIONS}
    overall_row = (0, 0, 0)
    for dimension, key, count, promised, paid in result.all():
        figures = (int(count), int(promised), int(paid))
        if dimension == "all":
            overall_row = figures
        elif dimension in grouped and figures[0]:  # keys with cancelled pledges only: none
            value = _KEY_TYPES.get(dimension, str)(key) if key != "" else None
            grouped[dimension].append((value, *figures))
    return {name: _sorted(rows) for name, rows in grouped.items()}, overall_row


def _hour_label(key: str, zone: ZoneInfo) -> str:
    start = dt.datetime.fromisoformat(key).replace(tzinfo=dt.UTC).astimezone(zone)
    return f"{start:%Y-%m-%d %H:00}-{(start + dt.timedelta(hours=1)):%H:00}"


async def campaign_totals(
    session: AsyncSession,
    campaign_id: int,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, Any]:
    """The ``GET /pledges/totals`` answer (docs/pledges.md)."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("campaign not found", field="campaign_id")
    filters = _filters(campaign_id, since, until)
    zone = ZoneInfo(campaign.timezone)
    queues = {
        q.id: q.name
        for q in (await session.scalars(select(Queue).where(Queue.campaign_id == campaign_id)))
    }
    agents = {
        a.id: a.display_name
        for a in (await session.scalars(select(Agent).where(Agent.campaign_id == campaign_id)))
    }
    slot_order = [str(s.get("name")) for s in campaign.time_slots or []]

    def rows(grouped: Grouped, label: Any, none_label: str) -> list[dict[str, Any]]:
        out = []
        for key, count, promised, paid in grouped:
            text = none_label if key is None else label(key)
            out.append(row(None if key is None else str(key), text, count, promised, paid))
        return out

    if since is None and until is None:
        grouped, (count, promised, paid) = await _rolled_up(session, campaign_id)
    else:
        grouped, (count, promised, paid) = await _groupings(
            session,
            {
                "slot": Pledge.time_slot,
                "hour": _hour_key(session),
                "queue": Pledge.queue_id,
                "agent": Pledge.agent_id,
                "partner": Pledge.partner_org,
                "departement": Pledge.departement,
            },
            filters,
        )
    by_slot = rows(grouped["slot"], str, "outside any slot")
    by_slot.sort(
        key=lambda r: slot_order.index(r["key"]) if r["key"] in slot_order else len(slot_order)
    )
    hours = [
        (None if key is None else _hour_text(key), c, pr, pa) for key, c, pr, pa in grouped["hour"]
    ]
    return {
        "campaign_id": campaign_id,
        "currency": campaign.currency,
        # From the same rows as the groupings (one consistent picture).
        "overall": row(None, "all", count, promised, paid),
        "by_slot": by_slot,
        "by_hour": rows(hours, lambda k: _hour_label(k, zone), "unknown"),
        "by_queue": rows(grouped["queue"], lambda k: queues.get(k, f"queue {k}"), "no queue"),
        "by_agent": rows(grouped["agent"], lambda k: agents.get(k, f"agent {k}"), "no agent"),
        "by_partner": rows(grouped["partner"], str, "no partner"),
        "by_departement": rows(grouped["departement"], str, "unknown"),
    }


# How many of the latest consenting donors the board names.
BOARD_NAMES = 5


async def board(session: AsyncSession, campaign_id: int) -> dict[str, Any]:
    """The public tote board's figures, and the first name and town of the latest
    donors who consented to be shown on air (``consent_board``): nothing else of
    anyone (no last name, contact, amount per person, note)."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("campaign not found", field="campaign_id")
    totals = await overall(session, campaign_id)
    last = await session.scalar(
        select(Pledge.amount_minor)
        .where(*_filters(campaign_id, None, None))
        .order_by(Pledge.created_at.desc(), Pledge.id.desc())
        .limit(1)
    )
    named = await session.execute(
        select(Pledge.first_name, Pledge.city)
        .where(*_filters(campaign_id, None, None), Pledge.consent_board.is_(True))
        .order_by(Pledge.created_at.desc(), Pledge.id.desc())
        .limit(BOARD_NAMES)
    )
    return {
        "campaign_id": campaign_id,
        "campaign": campaign.name,
        "currency": campaign.currency,
        "goal_minor": campaign.goal_minor,
        "count": totals["count"],
        "promised_minor": totals["promised_minor"],
        "paid_minor": totals["paid_minor"],
        "average_minor": totals["average_minor"],
        "last_pledge_minor": int(last) if last is not None else None,
        "latest": [
            {"first_name": first_name, "city": city}
            for first_name, city in named.all()
            if first_name.strip()  # a consent without a name shows nothing
        ],
    }

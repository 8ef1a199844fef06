"""Running roll-ups of the pledges: the totals by campaign, slot, hour, queue,
volunteer, partner and département, kept in the transaction of each change.

A pledge *contributes* one row per dimension (``contributions``); a change adds
the difference between its contributions after and before (``delta``) with one
multi-row upsert (``apply``). Readers sum the rows (``app/pledges/totals.py``):
their cost depends on the number of keys, never on the number of pledges.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from app.db import AddOnConflict, UnitOfWork, adding_rows
from app.pledges.models import ROLLUP_SHARDS, Pledge, PledgeRollup, PledgeStatus

DIMENSIONS = ("all", "slot", "hour", "queue", "agent", "partner", "departement")
FIGURES = ("count", "promised_minor", "paid_minor", "cancelled_count", "cancelled_minor")
# What a pledge's contributions depend on.
FIELDS = (
    "status",
    "amount_minor",
    "paid_minor",
    "time_slot",
    "created_at",
    "queue_id",
    "agent_id",
    "partner_org",
    "departement",
)

Figures = tuple[int, int, int, int, int]
Contributions = dict[tuple[str, str], Figures]


def hour_key(moment: dt.datetime) -> str:
    """The UTC hour a pledge was saved in, ``YYYY-MM-DDTHH:00``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:00")


def _key(value: Any) -> str:
    return "" if value is None else str(value)


def shard_of(pledge_id: int) -> int:
    return pledge_id % ROLLUP_SHARDS


def values_of(pledge: Any) -> dict[str, Any]:
    """The fields of ``pledge`` (an object or a mapping) its contributions depend on."""
    if isinstance(pledge, Mapping):
        return {name: pledge[name] for name in FIELDS}
    return {name: getattr(pledge, name) for name in FIELDS}


def contributions(values: Mapping[str, Any]) -> Contributions:
    """One pledge's figures under each of its keys."""
    if values["status"] == PledgeStatus.CANCELLED:
        figures: Figures = (0, 0, 0, 1, int(values["amount_minor"]))
    else:
        figures = (1, int(values["amount_minor"]), int(values["paid_minor"]), 0, 0)
    keys = {
        "all": "",
        "slot": _key(values["time_slot"]),
        "hour": hour_key(values["created_at"]),
        "queue": _key(values["queue_id"]),
        "agent": _key(values["agent_id"]),
        "partner": _key(values["partner_org"]),
        "departement": _key(values["departement"]),
    }
    return {(dimension, key): figures for dimension, key in keys.items()}


def delta(before: Contributions, after: Contributions) -> Contributions:
    """After minus before, without the keys that did not move."""
    out: Contributions = {}
    for where in sorted(set(before) | set(after)):
        old = before.get(where, (0, 0, 0, 0, 0))
        new = after.get(where, (0, 0, 0, 0, 0))
        diff = (
            new[0] - old[0],
            new[1] - old[1],
            new[2] - old[2],
            new[3] - old[3],
            new[4] - old[4],
        )
        if any(diff):
            out[where] = diff
    return out


_COLUMNS = ("campaign_id", "dimension", "key", "shard", *FIGURES)


_TABLE = cast(Table, PledgeRollup.__table__)
_ADDING = AddOnConflict(conflict=("campaign_id", "dimension", "key", "shard"), add=FIGURES)


def _rows(campaign_id: int, pledge_id: int, moves: Contributions) -> list[dict[str, Any]]:
    """``moves`` as rows of the pledge's shard of the campaign's roll-ups."""
    shard = shard_of(pledge_id)
    return [
        dict(zip(_COLUMNS, (campaign_id, dimension, key, shard, *figures), strict=True))
        for (dimension, key), figures in moves.items()
    ]


async def apply(uow: UnitOfWork, campaign_id: int, pledge_id: int, moves: Contributions) -> None:
    """Add ``moves`` to the pledge's shard of the campaign's roll-ups, written with the
    unit of work's outbox rows (on PostgreSQL in the same statement): the moves of
    one key are summed, the rows go in key order (``UnitOfWork.stage_adding``)."""
    for row in _rows(campaign_id, pledge_id, moves):
        uow.stage_adding(_TABLE, row, _ADDING)


def added(
    postgres: bool, campaign_id: int, pledge_id: int, moves: Contributions
) -> tuple[TextClause, dict[str, Any]]:
    """:func:`apply` outside a unit of work: its statement and parameters."""
    return adding_rows(postgres, _TABLE, _rows(campaign_id, pledge_id, moves), _ADDING)


async def change(uow: UnitOfWork, pledge: Any, before: Mapping[str, Any]) -> None:
    """A pledge changed from ``before`` (``values_of`` it then) to what it is now."""
    moves = delta(contributions(before), contributions(values_of(pledge)))
    await apply(uow, pledge.campaign_id, pledge.id, moves)


async def stored(session: AsyncSession, campaign_id: int) -> Contributions:
    """The campaign's roll-ups, shards summed, rows all zero left out."""
    figures = [func.sum(getattr(PledgeRollup, name)) for name in FIGURES]
    result = await session.execute(
        select(PledgeRollup.dimension, PledgeRollup.key, *figures)
        .where(PledgeRollup.campaign_id == campaign_id)
        .group_by(PledgeRollup.dimension, PledgeRollup.key)
    )
    out: Contributions = {}
    for dimension, key, *sums in result.all():
        totals = tuple(int(v) for v in sums)
        if any(totals):
            out[(dimension, key)] = (totals[0], totals[1], totals[2], totals[3], totals[4])
    return out


async def recount(session: AsyncSession, campaign_id: int) -> Contributions:
    """What the roll-ups should hold, from every pledge of the campaign (a full scan:
    for checks, never for a screen)."""
    columns = [getattr(Pledge, name) for name in FIELDS]
    out: Contributions = {}
    result = await session.execute(select(*columns).where(Pledge.campaign_id == campaign_id))
    for row in result.all():
        for where, add in contributions(dict(zip(FIELDS, row, strict=True))).items():
            old = out.get(where, (0, 0, 0, 0, 0))
            out[where] = (
                old[0] + add[0],
                old[1] + add[1],
                old[2] + add[2],
                old[3] + add[3],
                old[4] + add[4],
            )
    return {where: figures for where, figures in out.items() if any(figures)}


def key_sql(dialect: str) -> dict[str, str]:
    """Each dimension's key of a pledge row in SQL for ``text()`` (its columns named
    bare), as :func:`contributions` gives it."""
    if dialect == "postgresql":
        hour = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\\:00')"
    else:  # naive UTC text "YYYY-MM-DD HH:MM:SS..."
        hour = "substr(created_at, 1, 10) || 'T' || substr(created_at, 12, 2) || '\\:00'"
    return {
        "all": "''",
        "slot": "COALESCE(time_slot, '')",
        "hour": hour,
        "queue": "COALESCE(CAST(queue_id AS VARCHAR), '')",
        "agent": "COALESCE(CAST(agent_id AS VARCHAR), '')",
        "partner": "COALESCE(partner_org, '')",
        "departement": "COALESCE(departement, '')",
    }


_LIVE = "status <> 'cancelled'"
# A pledge row's FIGURES in SQL (its columns named bare), as contributions() gives them.
FIGURE_SQL = (
    f"CASE WHEN {_LIVE} THEN 1 ELSE 0 END",
    f"CASE WHEN {_LIVE} THEN amount_minor ELSE 0 END",
    f"CASE WHEN {_LIVE} THEN paid_minor ELSE 0 END",
    f"CASE WHEN {_LIVE} THEN 0 ELSE 1 END",
    f"CASE WHEN {_LIVE} THEN 0 ELSE amount_minor END",
)


async def rebuild(uow: UnitOfWork, campaign_id: int) -> None:
    """The campaign's roll-ups recomputed from its pledges, one aggregate per dimension
    (as migration 0022's backfill): for pledges written around the app (bulk loads)."""
    await uow.session.execute(delete(PledgeRollup).where(PledgeRollup.campaign_id == campaign_id))
    figures = ", ".join(f"SUM({figure})" for figure in FIGURE_SQL)
    for dimension, key in key_sql(uow.db.dialect).items():
        await uow.session.execute(
            text(
                "INSERT INTO pledge_rollups (campaign_id, dimension, key, shard, count, "
                "promised_minor, paid_minor, cancelled_count, cancelled_minor) "
                f"SELECT campaign_id, '{dimension}', {key}, id % {ROLLUP_SHARDS}, {figures} "
                "FROM pledges WHERE campaign_id = :campaign_id GROUP BY 1, 3, 4"
            ),
            {"campaign_id": campaign_id},
        )

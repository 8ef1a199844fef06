"""A new pledge and everything it writes, at once: on PostgreSQL one statement that is
a transaction of its own (``Database.execute_alone``), on SQLite one transaction in
one trip to the writer's thread (``Database.write_at_once``).

PostgreSQL: the pledge's ``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING``
(its Idempotency-Key, the caller's right to save for the call) is the first CTE,
``p``; its audit row, its roll-ups and its ``pledge.saved`` event are data-modifying
CTEs that read ``p``. When the pledge does not go in (key or reference taken, a call
the caller may not save for), ``p`` is empty and nothing else goes in either. One
round trip where a unit of work takes four (``BEGIN``, the pledge, the rest,
``COMMIT``), and no ORM session.

The roll-up rows are the pledge's ``rollups.contributions``, computed in SQL from its
row (``rollups.key_sql``, ``rollups.FIGURE_SQL``, as the rebuild computes them) and
added in key order, byte order as Python sorts them: the order every other writer of
the roll-ups locks them in (``UnitOfWork.stage_adding``).

SQLite (:func:`write`): the same four statements in turn, the rest skipped when the
pledge does not go in, with SQLAlchemy's synchronous engine in the writer's thread.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import BigInteger, Table, column, insert, text
from sqlalchemy.sql.elements import TextClause

from app.db import as_named_sql, built_once, typed_binds
from app.outbox import Event
from app.pledges import rollups
from app.pledges.models import ROLLUP_SHARDS, Pledge, PledgeAudit, PledgeRollup
from app.sqlite_writer import WriterConnection

_PLEDGES = cast(Table, Pledge.__table__)
_AUDIT = cast(Table, PledgeAudit.__table__)
_EVENTS = cast(Table, Event.__table__)

# The audit row's and the event's own values, bound as ``a_<column>`` and ``e_<column>``.
AUDIT_VALUES = ("at", "user_id", "actor", "action", "before", "after")
EVENT_VALUES = ("type", "at", "data")
# What the event's data takes from the pledge's row (known only once it is in).
EVENT_DATA_FROM_ROW = {"pledge_id": "id", "call_id": "call_id", "agent_id": "agent_id"}
# The returned row: the pledge's columns that the caller did not give (its key and
# what it takes from its call), then the event's seq.
FROM_ROW = ("id", "call_id", "agent_id", "queue_id", "caller_number", "partner_org")
EVENT_SEQ = "event_seq"
# SQLite's audit and event inserts: every column they are given (one compiled form).
_AUDIT_COLUMNS = ("pledge_id", *AUDIT_VALUES)
_EVENT_COLUMNS = (*EVENT_VALUES, "campaign_id", "queue_id", "call_id", "agent_id")
# The outbox tables the statement writes to (their readers are woken once it commits).
TABLES_WRITTEN = (_AUDIT.name, PledgeRollup.__tablename__, _EVENTS.name)


def statement(pledge_insert: Any) -> Any:
    """The whole write around ``pledge_insert`` (a kept statement, one per shape)."""
    return built_once(("pledge saved at once", id(pledge_insert)), lambda: _build(pledge_insert))


def _build(pledge_insert: Any) -> Any:
    pledge_sql, binds = as_named_sql(pledge_insert, postgres=True)
    audit_columns = ", ".join(AUDIT_VALUES)
    audit_values = ", ".join(f":a_{name}" for name in AUDIT_VALUES)
    key_sql = rollups.key_sql("postgresql").items()
    keys = ", ".join(f"('{dimension}', {sql})" for dimension, sql in key_sql)
    figures = ", ".join(rollups.FIGURE_SQL)
    added = ", ".join(f"{f} = pledge_rollups.{f} + excluded.{f}" for f in rollups.FIGURES)
    from_row = ", ".join(f"'{name}', {source}" for name, source in EVENT_DATA_FROM_ROW.items())
    sql = f"""
WITH p AS ({pledge_sql}),
a AS (
  INSERT INTO pledge_audit (pledge_id, {audit_columns})
  SELECT id, {audit_values} FROM p
),
r AS (
  INSERT INTO pledge_rollups (campaign_id, dimension, key, shard, {", ".join(rollups.FIGURES)})
  SELECT campaign_id, d.dimension, d.key, id % {ROLLUP_SHARDS}, {figures}
  FROM p CROSS JOIN LATERAL (VALUES {keys}) AS d (dimension, key)
  ORDER BY d.dimension COLLATE "C", d.key COLLATE "C"
  ON CONFLICT (campaign_id, dimension, key, shard) DO UPDATE SET {added}
),
e AS (
  INSERT INTO events (type, at, campaign_id, queue_id, call_id, agent_id, data)
  SELECT :e_type, :e_at, campaign_id, queue_id, call_id, agent_id,
         CAST(:e_data AS JSONB) || jsonb_build_object({from_row})
  FROM p
  RETURNING seq
)
SELECT {", ".join(f"p.{name}" for name in FROM_ROW)}, e.seq AS {EVENT_SEQ} FROM p CROSS JOIN e
"""
    own = [
        *typed_binds(_AUDIT, AUDIT_VALUES, "a_").values(),
        *typed_binds(_EVENTS, EVENT_VALUES, "e_").values(),
    ]
    clause: TextClause = text(sql).bindparams(*binds, *own)
    return clause.columns(*(_PLEDGES.c[name] for name in FROM_ROW), column(EVENT_SEQ, BigInteger))


def write(
    conn: WriterConnection,
    pledge_insert: Any,
    params: dict[str, Any],
    audit: dict[str, Any],
    event: dict[str, Any],
) -> dict[str, Any] | None:
    """SQLite: the pledge and, when it went in, its audit row (``audit``'s values),
    roll-ups and event (``event``'s ``type``, ``at`` and ``data``), in the writer's
    transaction; what the PostgreSQL statement returns, or None."""
    inserted = conn.rows(pledge_insert, params)
    if not inserted:
        return None
    row = inserted[0]
    conn.rows(_audit_insert(), {**audit, "pledge_id": row["id"]})
    moves = rollups.contributions(rollups.values_of(row))
    conn.rows(*rollups.added(False, row["campaign_id"], row["id"], moves))
    data = {**event["data"], **{name: row[src] for name, src in EVENT_DATA_FROM_ROW.items()}}
    routing = {name: row[name] for name in ("campaign_id", "queue_id", "call_id", "agent_id")}
    seq = conn.rows(_event_insert(), {**event, **routing, "data": data})[0]["seq"]
    return {**{name: row[name] for name in FROM_ROW}, EVENT_SEQ: seq}


def _audit_insert() -> Any:
    # Every column named: one compiled form, whichever values a row leaves out.
    return built_once(
        ("pledge audit insert",),
        lambda: insert(_AUDIT).values(typed_binds(_AUDIT, _AUDIT_COLUMNS)),
    )


def _event_insert() -> Any:
    return built_once(
        ("pledge event insert",),
        lambda: (
            insert(_EVENTS).values(typed_binds(_EVENTS, _EVENT_COLUMNS)).returning(_EVENTS.c.seq)
        ),
    )

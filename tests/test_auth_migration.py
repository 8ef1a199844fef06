"""Migration 0006 on a database with live sessions: each gets its own random public id,
so the logins survive the upgrade, on SQLite (batch mode) and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alembic import command
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from app.db import UTCDateTime
from app.migrate import alembic_config, upgrade
from tests.test_migrations import _on, fresh_pg, fresh_sqlite, fresh_url  # noqa: F401 (fixtures)

AT = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def _seed_sessions(conn: Connection) -> None:
    at = bindparam("at", type_=UTCDateTime())
    conn.execute(
        text(
            "INSERT INTO users (id, username, display_name, role, secret_hash, active, created_at)"
            " VALUES (1, 'sup', 'Sup', 'organiser', 'x', :yes, :at)"
        ).bindparams(at),
        {"yes": True, "at": AT},
    )
    for n in (1, 2, 3):
        conn.execute(
            text(
                "INSERT INTO auth_sessions (id, token_sha256, user_id, kind, csrf_token,"
                " created_at, expires_at) VALUES (:n, :digest, 1, 'bearer', 'c', :at, :at)"
            ).bindparams(at),
            {"n": n, "digest": f"{n:064d}", "at": AT},
        )
    conn.commit()


def _public_ids(conn: Connection) -> list[Any]:
    return list(conn.execute(text("SELECT public_id FROM auth_sessions ORDER BY id")).scalars())


def test_live_sessions_get_distinct_public_ids(fresh_url: str) -> None:  # noqa: F811
    upgrade(fresh_url, "0005")
    _on(fresh_url, _seed_sessions)
    upgrade(fresh_url)
    ids = _on(fresh_url, _public_ids)
    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(isinstance(i, str) and len(i) == 43 for i in ids)
    command.downgrade(alembic_config(fresh_url), "0005")
    upgrade(fresh_url)

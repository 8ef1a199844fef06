"""Which Pledgeline process holds an Asterisk's ARI connection.

Two processes on one Stasis application would both act on every event (two
bridges, two originates), so exactly one holds it: on PostgreSQL the one holding a
session advisory lock named after the Asterisk and the application, on a
connection of its own. Its death closes that connection, the lock goes with it,
and a standing-by process takes it within ``RETRY_SECONDS`` (then waits
``TAKE_OVER_GRACE`` for a holder cut off from the database to let go). On SQLite there is
one process (SQLite serves one), which always holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
CHECK_SECONDS = 1.0
# After taking the lease, the time the previous holder needs to notice it lost it
# (a broken connection, found by its next check) and let go of the websocket: two
# processes never act on Asterisk's events at once.
TAKE_OVER_GRACE = 2 * CHECK_SECONDS


def lock_key(ari_url: str, app: str) -> int:
    """A signed 64-bit advisory-lock key for this Asterisk's application."""
    digest = hashlib.sha256(f"pledgeline-ari:{ari_url}:{app}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AriLease:
    def __init__(self, database_url: str, key: int) -> None:
        url = make_url(database_url)
        self._postgres = url.get_backend_name() == "postgresql"
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._key = key
        self._conn: asyncpg.Connection | None = None

    async def acquire(self) -> None:
        """Wait until this process holds the lease."""
        if not self._postgres:
            return
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except Exception as exc:
                log.warning("ARI lease: database unreachable (%r)", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                while True:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key):
                        self._conn = conn
                        log.info("ARI lease taken")
                        await asyncio.sleep(TAKE_OVER_GRACE)
                        return
                    await asyncio.sleep(RETRY_SECONDS)
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.close()
                raise

    async def lost(self) -> None:
        """Return when the lease is lost (its connection broke); never on SQLite."""
        if self._conn is None:
            await asyncio.Event().wait()
            return
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), CHECK_SECONDS)
            except Exception as exc:
                log.warning("ARI lease lost (%r)", exc)
                await self.release()
                return

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()  # the lock goes with the session

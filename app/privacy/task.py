"""The retention purge as a supervised background task of each server process."""

from __future__ import annotations

import asyncio
import logging

from app.background import BackgroundTask
from app.db import Database
from app.privacy.retention import purge
from app.settings import Settings

log = logging.getLogger(__name__)


class RetentionPurge(BackgroundTask):
    """Applies the retention periods every ``retention_purge_seconds`` (0: never).

    The first pass waits one period: a process starting up has other work first,
    and a purge is never urgent to the second. Several processes purging at once
    is harmless: what one did, the next finds done.
    """

    def start(self, db: Database, settings: Settings) -> None:
        if settings.retention_purge_seconds > 0:
            self._launch(lambda: self._run(db, settings), "retention-purge")

    async def _run(self, db: Database, settings: Settings) -> None:
        while True:
            await asyncio.sleep(settings.retention_purge_seconds)
            done = await purge(db, settings)
            if any(done.values()):
                log.info("retention purge: %s", done)

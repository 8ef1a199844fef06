"""A long-running task of one process (router, timers, delivery, feed), stopped cleanly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

# Shutdown never waits longer than this for one task (a stuck socket must not
# keep a process from stopping).
STOP_SECONDS = 5.0


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel tasks and wait for them, within ``STOP_SECONDS``."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, stuck = await asyncio.wait(tasks, timeout=STOP_SECONDS)
    for task in stuck:
        log.warning("task %s did not stop within %ss", task.get_name(), STOP_SECONDS)


class BackgroundTask:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def _launch(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.create_task(coro, name=name)

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None

"""A long-running task of one process (router, timers, delivery, feed), stopped cleanly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class BackgroundTask:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def _launch(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.create_task(coro, name=name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

"""A long-running task of one process (router, timers, delivery, feed): supervised,
and stopped cleanly.

A task that raises is logged with its name and started again after a back-off
(0.1 s doubling to 5 s; back to 0.1 s once a run lasted a minute), so a database
blip or a bug in one pass never leaves the line without its router or timers.
While a task waits to restart it is *down*: ``/readyz`` answers 503 naming it,
and ``/metrics`` counts its restarts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
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


FIRST_BACK_OFF = 0.1
LONGEST_BACK_OFF = 5.0
# A run that lasted this long was healthy: the next failure starts the back-off anew.
HEALTHY_RUN_SECONDS = 60.0

# Every supervised task of this process, for /readyz and /metrics.
_running: weakref.WeakSet[BackgroundTask] = weakref.WeakSet()


def running_tasks() -> list[BackgroundTask]:
    return sorted(_running, key=lambda t: t.name)


class BackgroundTask:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.name = type(self).__name__
        self.restarts = 0
        self.down = False  # failed, waiting for its restart
        self.last_error: str | None = None
        self.first_back_off = FIRST_BACK_OFF

    def _launch(self, run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run ``run()`` supervised: started again after a failure (see the module)."""
        self.name = name
        _running.add(self)
        self._task = asyncio.create_task(self._supervise(run), name=name)

    async def _supervise(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        loop = asyncio.get_running_loop()
        back_off = self.first_back_off
        while True:
            started = loop.time()
            try:
                await run()
                return  # finished of its own accord
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if loop.time() - started >= HEALTHY_RUN_SECONDS:
                    back_off = self.first_back_off
                self.restarts += 1
                self.down = True
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("background task %s failed; restart in %.1fs", self.name, back_off)
                await asyncio.sleep(back_off)
                back_off = min(back_off * 2, max(LONGEST_BACK_OFF, self.first_back_off))
                self.down = False

    async def stop(self) -> None:
        _running.discard(self)
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None


# A loop's failures after the first are summed up at most this often.
FAILURE_SUMMARY_SECONDS = 30.0


class FailedPasses:
    """How a polling loop logs and paces its failed passes.

    The first failure of a run of them is logged with its traceback; while the
    failures go on (a database away for minutes) one line sums them up at most
    every ``FAILURE_SUMMARY_SECONDS``, instead of a traceback per pass filling the
    log an operator reads at 2 a.m.; the pass after a failure waits 0.1 s doubling
    to 5 s. The first success after failures is logged once.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._summarised_at = 0.0
        self._delay = FIRST_BACK_OFF

    def failed(self) -> float:
        """Log the failure being handled; the seconds to wait before the next pass."""
        now = time.monotonic()
        self.count += 1
        if self.count == 1:
            log.exception("%s failed", self.what)
            self._summarised_at = now
            self._delay = FIRST_BACK_OFF
        elif now - self._summarised_at >= FAILURE_SUMMARY_SECONDS:
            log.error("%s still failing (%d passes failed)", self.what, self.count, exc_info=False)
            self._summarised_at = now
        delay = self._delay
        self._delay = min(self._delay * 2, LONGEST_BACK_OFF)
        return delay

    def succeeded(self) -> None:
        if self.count:
            log.warning("%s works again after %d failed passes", self.what, self.count)
            self.count = 0

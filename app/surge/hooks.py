"""Where other packages act when a queue switches into or out of surge.

Inside the switch's transaction, after its event: the rules run their
``queue.surge_started`` / ``queue.surge_ended`` rules here (registered in
``app/plugins.py``), so a rule's pages commit with the switch or not at all. The
surge package imports none of its followers. Hooks belong to one database.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.db import Database, UnitOfWork


@dataclass(frozen=True)
class SurgeSwitch:
    campaign_id: int
    queue_id: int
    queue_name: str
    started: bool  # True: into surge; False: out of it
    reason: str | None
    at: dt.datetime

    @property
    def event(self) -> str:
        return "queue.surge_started" if self.started else "queue.surge_ended"


Switched = Callable[[UnitOfWork, SurgeSwitch], Awaitable[None]]


@dataclass
class SurgeHooks:
    switched: list[Switched] = field(default_factory=list)


_hooks: weakref.WeakKeyDictionary[Database, SurgeHooks] = weakref.WeakKeyDictionary()


def of(db: Database) -> SurgeHooks:
    hooks = _hooks.get(db)
    if hooks is None:
        hooks = _hooks[db] = SurgeHooks()
    return hooks

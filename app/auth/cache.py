"""Who a session token belongs to, remembered by the process for a few seconds.

Every authenticated request would otherwise open a read transaction to turn its
token into a principal. Entries are keyed by the token's SHA-256 digest (the raw
token is never kept), live ``PLEDGELINE_PRINCIPAL_CACHE_SECONDS`` at most and never
past the session's expiry, and the least recently used go beyond ``max_entries``.

A change that ends or alters a login writes its event in the same transaction:
``auth.revoked`` (logout, revocation; ``data.session_id``) or ``auth.user_changed``
(role, campaign, agent, active, secret; ``data.user_id``). ``on_events`` drops the
matching entries; the app factory gives it the events committed by this process
(right after the commit) and those every process reads from the events table.

A request that read the database before a drop must not put back what it read:
``generation`` counts drops, and ``put`` refuses an entry loaded before the latest.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from app.auth.service import SESSION_REVOKED, USER_CHANGED, Principal
from app.db import utcnow

DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    fresh_until: float  # monotonic seconds


class PrincipalCache:
    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._wallclock = wallclock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_session: dict[int, str] = {}
        self._by_user: dict[int, set[str]] = {}
        self.generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires_at = entry.principal.expires_at
        stale = entry.fresh_until <= self._monotonic()
        if stale or (expires_at is not None and expires_at <= self._wallclock()):
            self._drop(digest)
            return None
        self._entries.move_to_end(digest)
        return entry.principal

    def put(self, digest: str, principal: Principal, *, generation: int) -> None:
        """Remember ``principal``, read when ``generation`` was current (else ignored)."""
        if not self.enabled or generation != self.generation:
            return
        self._drop(digest)
        self._entries[digest] = _Entry(principal, self._monotonic() + self.ttl)
        self._by_session[principal.session_id] = digest
        self._by_user.setdefault(principal.user_id, set()).add(digest)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def forget_session(self, session_id: int) -> None:
        self.generation += 1
        digest = self._by_session.get(session_id)
        if digest is not None:
            self._drop(digest)

    def forget_digest(self, digest: str) -> None:
        self.generation += 1
        self._drop(digest)

    def forget_user(self, user_id: int) -> None:
        self.generation += 1
        for digest in list(self._by_user.get(user_id, ())):
            self._drop(digest)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_session.clear()
        self._by_user.clear()

    def forget(self, type: str, data: dict[str, Any]) -> None:
        """Drop what one event ends or changes; other events change nothing."""
        if type == SESSION_REVOKED and data.get("session_id") is not None:
            self.forget_session(int(data["session_id"]))
        elif type == USER_CHANGED and data.get("user_id") is not None:
            self.forget_user(int(data["user_id"]))

    async def on_events(self, events: Iterable[Any]) -> None:
        """``db.on_events`` listener: this process's committed Event rows."""
        self.forget_events(events)

    def forget_events(self, events: Iterable[Any]) -> None:
        """Committed events: Event rows (``db.on_events``) or feed messages (dicts)."""
        for event in events:
            if isinstance(event, dict):
                self.forget(str(event.get("type")), event.get("data") or {})
            else:
                self.forget(event.type, event.data or {})

    def _drop(self, digest: str) -> None:
        entry = self._entries.pop(digest, None)
        if entry is None:
            return
        principal = entry.principal
        if self._by_session.get(principal.session_id) == digest:
            del self._by_session[principal.session_id]
        digests = self._by_user.get(principal.user_id)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._by_user[principal.user_id]

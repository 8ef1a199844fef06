"""Fan-out of events to the screens connected to this process.

Each screen has a bounded queue. Publishing never waits: a screen whose queue is
full is cut (close code 4008) and resumes from its last ``seq`` when it comes back,
so one slow laptop never stalls the others.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

QUEUE_SIZE = 1000


class CloseCode(enum.IntEnum):
    POLICY = 1008  # a message nested deeper than a screen ever sends
    TOO_BIG = 1009  # a message larger than MAX_MESSAGE_BYTES
    UNAUTHORIZED = 4001
    FORBIDDEN = 4003
    SLOW_CONSUMER = 4008
    REVOKED = 4009
    IDLE = 4010
    FLOOD = 4029


# Events every screen of a campaign receives, whoever they concern.
CAMPAIGN_WIDE = frozenset({"supervisor.broadcast"})

# Where an event happened (not who the caller is): kept in every view.
ROUTING_KEYS = frozenset({"campaign_id", "queue_id", "call_id", "agent_id"})

# The caller's details from the screen pop are for the volunteer on the call only:
# supervisors see the look-up's outcome, not the name and address. Less personal
# data on more screens.
SUPERVISOR_ONLY_KEYS: dict[str, frozenset[str]] = {
    "call.cti_ready": frozenset({"status", "returning_donor", "cached"}),
}
SUPERVISOR_HIDDEN_KEYS: dict[str, frozenset[str]] = {
    "call.offered": frozenset({"screen_pop"}),
    # The rendered script holds the caller's name (placeholders): the volunteer's only.
    "script.show": frozenset({"script"}),
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message as it goes down a socket: encoded once, shared by every screen of a kind."""

    type: str
    seq: int | None
    text: str


CLOSE = Outgoing("__close__", None, "")


def dumps(message: dict[str, Any]) -> str:
    """Compact JSON text of a message (UTF-8, not ASCII-escaped; integer keys as strings)."""
    return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS).decode()


def encode(kind: str, message: dict[str, Any]) -> Outgoing:
    """The wire text of ``message`` for screens of ``kind``."""
    view = view_for(kind, message)
    return Outgoing(view["type"], view.get("seq"), dumps(view))


def view_for(kind: str, message: dict[str, Any]) -> dict[str, Any]:
    """The message as a screen of this kind may see it."""
    if kind != "supervisor":
        return message
    event_type = message["type"]
    only, hidden = SUPERVISOR_ONLY_KEYS.get(event_type), SUPERVISOR_HIDDEN_KEYS.get(event_type)
    if only is None and hidden is None:
        return message
    data = message["data"]
    if only is not None:
        kept = {k: v for k, v in data.items() if k in only or k in ROUTING_KEYS}
    else:
        kept = {k: v for k, v in data.items() if k not in (hidden or ())}
    return {**message, "data": kept}


@dataclass(eq=False)
class Screen:
    kind: str  # agent | supervisor
    campaign_id: int | None
    agent_id: int | None
    session_id: int
    queue_size: int = QUEUE_SIZE
    # A site-scoped supervisor (docs/roster.md): the site, and its volunteers' ids
    # (loaded with each snapshot), whose events alone of all agent events it gets.
    site_id: int | None = None
    site_agents: frozenset[int] = frozenset()
    queue: asyncio.Queue[Outgoing] = field(init=False)
    closing: CloseCode | None = None
    id: int = field(default_factory=itertools.count(1).__next__)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_size)

    def wants(self, message: dict[str, Any]) -> bool:
        data = message["data"]
        if message["type"] == "auth.revoked":
            return bool(data.get("session_id") == self.session_id)
        if self.kind == "supervisor":
            if self.site_id is not None:
                agent_id = data.get("agent_id")
                if agent_id is not None and agent_id not in self.site_agents:
                    return False
            return self.campaign_id is None or data.get("campaign_id") == self.campaign_id
        if message["type"] in CAMPAIGN_WIDE:
            return bool(data.get("campaign_id") == self.campaign_id)
        return self.agent_id is not None and data.get("agent_id") == self.agent_id

    def offer(self, item: Outgoing) -> None:
        if self.closing is not None:
            return
        if item.type == "auth.revoked":
            self.close(CloseCode.REVOKED)
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.close(CloseCode.SLOW_CONSUMER)

    def close(self, code: CloseCode) -> None:
        """Ask the screen's writer to close; it wakes on the sentinel."""
        self.closing = code
        while True:
            try:
                self.queue.put_nowait(CLOSE)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()  # drop the oldest: the screen resumes by seq anyway


class Hub:
    """The screens of this process, indexed by what they receive.

    Publishing looks up the screens an event is for (its agent's, its campaign's
    supervisors, the session's for a revocation) instead of asking every screen:
    it runs in the committing request, and a process may hold thousands of screens.
    The result is the same as asking each screen's ``wants``.
    """

    def __init__(self) -> None:
        self.screens: set[Screen] = set()
        self._by_session: dict[int, set[Screen]] = {}
        self._supervisors: dict[int | None, set[Screen]] = {}  # by campaign; None: all
        self._agents: dict[int | None, set[Screen]] = {}  # by agent id
        self._agents_by_campaign: dict[int | None, set[Screen]] = {}
        # Called after a screen is added (the feed reads what it passed over unread).
        self.added: list[Callable[[], None]] = []

    def _indexes(self, screen: Screen) -> list[tuple[dict[Any, set[Screen]], Any]]:
        found: list[tuple[dict[Any, set[Screen]], Any]] = [(self._by_session, screen.session_id)]
        if screen.kind == "supervisor":
            found.append((self._supervisors, screen.campaign_id))
        else:
            found.append((self._agents, screen.agent_id))
            found.append((self._agents_by_campaign, screen.campaign_id))
        return found

    def add(self, screen: Screen) -> None:
        self.screens.add(screen)
        for index, key in self._indexes(screen):
            index.setdefault(key, set()).add(screen)
        for hook in self.added:
            hook()

    def remove(self, screen: Screen) -> None:
        if screen not in self.screens:
            return
        self.screens.discard(screen)
        for index, key in self._indexes(screen):
            group = index.get(key)
            if group is not None:
                group.discard(screen)
                if not group:
                    del index[key]

    def watches(self, campaign_ids: Iterable[int | None]) -> bool:
        """Whether a screen here may want an event of one of these campaigns."""
        if not self.screens:
            return False
        if self._supervisors.get(None):
            return True  # an admin's dashboard: every campaign
        return any(
            campaign_id is None  # no campaign: an agent's own event, say; read it
            or campaign_id in self._supervisors
            or campaign_id in self._agents_by_campaign
            for campaign_id in campaign_ids
        )

    def audience(self, message: dict[str, Any]) -> list[Screen]:
        """The screens that want ``message`` (those whose ``wants`` is true)."""
        data = message["data"]
        if message["type"] == "auth.revoked":
            return list(self._by_session.get(data.get("session_id"), ()))
        campaign_id = data.get("campaign_id")
        found = list(self._supervisors.get(None, ()))
        if campaign_id is not None:
            agent_id = data.get("agent_id")
            found.extend(
                s
                for s in self._supervisors.get(campaign_id, ())
                # A site-scoped supervisor gets its own site's volunteers' events only.
                if s.site_id is None or agent_id is None or agent_id in s.site_agents
            )
        if message["type"] in CAMPAIGN_WIDE:
            found.extend(self._agents_by_campaign.get(campaign_id, ()))
        else:
            agent_id = data.get("agent_id")
            if agent_id is not None:
                found.extend(self._agents.get(agent_id, ()))
        return found

    def publish(self, messages: list[dict[str, Any]]) -> None:
        """Queue ``messages`` (in order) for every screen that wants them; never waits."""
        for message in messages:
            # Encoded at most once per kind of screen, however many screens want it
            # (every supervisor of a campaign gets every event of the campaign).
            by_kind: dict[str, Outgoing] = {}
            for screen in self.audience(message):
                item = by_kind.get(screen.kind)
                if item is None:
                    item = by_kind[screen.kind] = encode(screen.kind, message)
                screen.offer(item)

    def supervisors(self) -> Iterable[Screen]:
        return (s for group in self._supervisors.values() for s in group)

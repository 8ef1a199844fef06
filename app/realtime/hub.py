"""Fan-out of events to the screens connected to this process.

Each screen has a bounded queue. Publishing never waits: a screen whose queue is
full is cut (close code 4008) and resumes from its last ``seq`` when it comes back,
so one slow laptop never stalls the others.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 1000


class CloseCode(enum.IntEnum):
    UNAUTHORIZED = 4001
    FORBIDDEN = 4003
    SLOW_CONSUMER = 4008
    REVOKED = 4009
    IDLE = 4010
    FLOOD = 4029


# Events every screen of a campaign receives, whoever they concern.
CAMPAIGN_WIDE = frozenset({"supervisor.broadcast"})


@dataclass(eq=False)
class Screen:
    kind: str  # agent | supervisor
    campaign_id: int | None
    agent_id: int | None
    session_id: int
    queue_size: int = QUEUE_SIZE
    queue: asyncio.Queue[dict[str, Any]] = field(init=False)
    closing: CloseCode | None = None
    id: int = field(default_factory=itertools.count(1).__next__)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_size)

    def wants(self, message: dict[str, Any]) -> bool:
        data = message["data"]
        if message["type"] == "auth.revoked":
            return bool(data.get("session_id") == self.session_id)
        if self.kind == "supervisor":
            return self.campaign_id is None or data.get("campaign_id") == self.campaign_id
        if message["type"] in CAMPAIGN_WIDE:
            return bool(data.get("campaign_id") == self.campaign_id)
        return self.agent_id is not None and data.get("agent_id") == self.agent_id

    def offer(self, message: dict[str, Any]) -> None:
        if self.closing is not None:
            return
        if message["type"] == "auth.revoked":
            self.close(CloseCode.REVOKED)
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.close(CloseCode.SLOW_CONSUMER)

    def close(self, code: CloseCode) -> None:
        """Ask the screen's writer to close; it wakes on the sentinel."""
        self.closing = code
        while True:
            try:
                self.queue.put_nowait({"type": "__close__"})
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()  # drop the oldest: the screen resumes by seq anyway


class Hub:
    def __init__(self) -> None:
        self.screens: set[Screen] = set()

    def add(self, screen: Screen) -> None:
        self.screens.add(screen)

    def remove(self, screen: Screen) -> None:
        self.screens.discard(screen)

    async def publish(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            for screen in list(self.screens):
                if screen.wants(message):
                    screen.offer(message)

    def supervisors(self) -> Iterable[Screen]:
        return (s for s in self.screens if s.kind == "supervisor")

"""Campaigns, queues and seats, cached per process for the call path.

A call's path needs its campaign (by dialled number), its queue and the offered
agent's seat address on every step. They change rarely (an admin's PATCH), so each
process keeps one snapshot of them per database and drops it when any of them
changes: at once after a local commit that changed one (``invalidate_after_commit``),
and when the change events of another process arrive (``on_events``).

The cached rows are detached ORM objects: read them, never change or add them to a
session. A snapshot loaded while a change was committing is not kept (the
generation check), so a stale snapshot never outlives the change's event.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import AgentSkill, Campaign, Queue, Seat
from app.db import Database, UnitOfWork
from app.errors import NotFound
from app.phone_numbers import normalise

# Events that say a cached row changed.
CONFIG_EVENT_PREFIXES = ("campaign.", "queue.", "seat.", "agent.created", "agent.updated")


@dataclass
class ConfigSnapshot:
    campaigns: dict[int, Campaign] = field(default_factory=dict)
    queues: dict[int, Queue] = field(default_factory=dict)
    seat_addresses: dict[int, str] = field(default_factory=dict)
    queues_by_campaign: dict[int, list[Queue]] = field(default_factory=dict)
    # Each agent's skills: {skill: level}, 1 best.
    skills: dict[int, dict[str, int]] = field(default_factory=dict)

    def campaign_for_dialled(self, dialled: str) -> Campaign | None:
        """The campaign whose on-air numbers include ``dialled`` (E.164 or national)."""
        for campaign in self.campaigns.values():
            if dialled in (campaign.dialled_numbers or []):
                return campaign
        for campaign in self.campaigns.values():
            e164 = normalise(dialled, campaign.default_region).e164
            if e164 is not None and e164 in (campaign.dialled_numbers or []):
                return campaign
        return None

    def queue_for_call(self, campaign: Campaign, dialled: str) -> Queue:
        queues = self.queues_by_campaign.get(campaign.id, [])
        for queue in queues:
            if dialled in (queue.dialled_numbers or []):
                return queue
        for queue in queues:
            if queue.name == campaign.default_queue:
                return queue
        if not queues:
            raise NotFound(
                "campaign {campaign} has no queue", field="dialled", campaign=campaign.name
            )
        return queues[0]

    def queue_named(self, campaign_id: int, name: str) -> Queue | None:
        for queue in self.queues_by_campaign.get(campaign_id, []):
            if queue.name == name:
                return queue
        return None

    def queue(self, queue_id: int) -> Queue:
        queue = self.queues.get(queue_id)
        if queue is None:
            raise NotFound("queue {queue_id} not found", field="queue_id", queue_id=queue_id)
        return queue

    def campaign(self, campaign_id: int) -> Campaign:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            raise NotFound(
                "campaign {campaign_id} not found", field="campaign_id", campaign_id=campaign_id
            )
        return campaign

    def eligible_queues(
        self, campaign_id: int, agent_id: int, site_id: int | None = None, *, trained: bool = True
    ) -> list[tuple[Queue, int]]:
        """The campaign's queues this agent may take calls of: (queue, seconds of wait
        a call needs before this agent may take it: 0 = at once). The wait is the
        tier reached by the agent's level, and, for a queue preferring another site
        than the agent's (``site_id``), its ``site_widen_seconds`` too. An untrained
        agent (``trained`` False) may take no call of a ``trained_only`` queue."""
        skills = self.skills.get(agent_id, {})
        out: list[tuple[Queue, int]] = []
        for queue in self.queues_by_campaign.get(campaign_id, []):
            if queue.trained_only and not trained:
                continue
            site_wait = 0
            if queue.site_id is not None and queue.site_id != site_id:
                site_wait = queue.site_widen_seconds
            if not queue.required_skill:
                out.append((queue, site_wait))
                continue
            level = skills.get(queue.required_skill)
            if level is None:
                continue
            if level <= queue.required_level:
                out.append((queue, site_wait))
                continue
            waits = [after for after, tier in (queue.tiers or []) if level <= tier]
            if waits:
                out.append((queue, max(min(waits), site_wait)))
        return out

    def seat_address(self, seat_id: int | None, agent_id: int) -> str:
        if seat_id is not None and seat_id in self.seat_addresses:
            return self.seat_addresses[seat_id]
        return f"agent:{agent_id}"


class ConfigCache:
    def __init__(self) -> None:
        self._snapshot: ConfigSnapshot | None = None
        self._generation = 0

    def invalidate(self) -> None:
        self._generation += 1
        self._snapshot = None

    async def get(self, session: AsyncSession) -> ConfigSnapshot:
        snapshot = self._snapshot
        if snapshot is not None:
            return snapshot
        generation = self._generation
        snapshot = await _load(session)
        if generation == self._generation:
            self._snapshot = snapshot
        return snapshot


async def _load(session: AsyncSession) -> ConfigSnapshot:
    snapshot = ConfigSnapshot()
    # Read as plain rows and built as transient objects: the session's identity map
    # is left alone, and nothing cached can be flushed through it by mistake.
    for row in (await session.execute(select(Campaign.__table__))).mappings():
        campaign = Campaign(**row)
        snapshot.campaigns[campaign.id] = campaign
    for row in (await session.execute(select(Queue.__table__).order_by(Queue.id))).mappings():
        queue = Queue(**row)
        snapshot.queues[queue.id] = queue
        snapshot.queues_by_campaign.setdefault(queue.campaign_id, []).append(queue)
    for seat_id, address in (await session.execute(select(Seat.id, Seat.address))).all():
        snapshot.seat_addresses[seat_id] = address
    skills = await session.execute(select(AgentSkill.agent_id, AgentSkill.skill, AgentSkill.level))
    for agent_id, skill, level in skills.all():
        snapshot.skills.setdefault(agent_id, {})[skill] = level
    return snapshot


_caches: weakref.WeakKeyDictionary[Database, ConfigCache] = weakref.WeakKeyDictionary()


def cache_of(db: Database) -> ConfigCache:
    cache = _caches.get(db)
    if cache is None:
        cache = _caches[db] = ConfigCache()
    return cache


async def snapshot(uow: UnitOfWork) -> ConfigSnapshot:
    return await cache_of(uow.db).get(uow.session)


async def skills_of(db: Database, agent_id: int) -> dict[str, int]:
    """An agent's skills, from the snapshot (read once if there is none)."""
    cache = cache_of(db)
    snapshot = cache._snapshot
    if snapshot is None:
        async with db.read() as session:
            snapshot = await cache.get(session)
    return dict(snapshot.skills.get(agent_id, {}))


async def campaign_of(db: Database, campaign_id: int) -> Campaign | None:
    """A campaign from the snapshot (read once if there is none): a transient copy."""
    cache = cache_of(db)
    snapshot = cache._snapshot
    if snapshot is None:
        async with db.read() as session:
            snapshot = await cache.get(session)
    return snapshot.campaigns.get(campaign_id)


def invalidate_after_commit(uow: UnitOfWork) -> None:
    """This unit of work changes configuration: drop the snapshot now and after commit."""
    cache = cache_of(uow.db)
    cache.invalidate()

    async def drop() -> None:
        cache.invalidate()

    uow.after_commit(drop)


def on_events(db: Database, events: Iterable[Any]) -> None:
    """Events from any process (rows, or their wire form): a configuration change
    drops the snapshot."""
    for event in events:
        kind = event.get("type") if isinstance(event, dict) else getattr(event, "type", None)
        if str(kind or "").startswith(CONFIG_EVENT_PREFIXES):
            cache_of(db).invalidate()
            return

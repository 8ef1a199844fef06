"""Where the other packages plug into a call's path.

The ACD is the core: it imports none of the rules, CTI, pledges, realtime,
telephony or web packages. At each step it calls the functions registered here,
inside the step's unit of work (or, for ``call_committed``, once it has
committed). The app factory registers them (``app/plugins.py``); hooks belong to
one database (one app), so two apps in one process keep theirs apart.

| hook | when | what the plugins do |
|---|---|---|
| ``call_received`` | a new call, before queueing | screen it: reject, choose a queue (rules) |
| ``call_committed`` | after a new call or leg commits | start the caller look-up (CTI) |
| ``call_queued`` | a call joined a queue | rules on ``call.queued`` |
| ``pop_for_offer`` | a call is being offered | the stored screen pop, if any (CTI) |
| ``call_offered`` | a call rings for an agent | rules, then the script (rules) |
| ``call_connected`` | the conversation starts | rules on ``call.connected`` |
| ``call_ended`` | hang-up, abandon | rules on ``call.ended`` |
| ``leg_created`` | a transfer or consult opened a leg | carry the first leg's pop (CTI) |
| ``timer_fired`` | a plugin's timer, a consult's fallback | rules on ``timer.<name>`` |
| ``agent_state_changed`` | an agent's state changed | (none shipped) |
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.db import Database, UnitOfWork

# Calls, agents and campaigns are handed to the hooks as the ACD's rows; they are
# typed loosely here so that a plugin importing the hooks imports no ACD table.
Call = Any
Agent = Any
Campaign = Any


@dataclass
class Screening:
    """What the ``call_received`` hooks decided."""

    rejected: bool = False
    queue: str | None = None
    priority: int | None = None


@dataclass(frozen=True)
class CommittedCall:
    """A call (or transferred leg) just committed, as a plugin needs to see it."""

    call_id: int
    campaign_id: int
    number: str | None
    issue: str | None
    received_at: dt.datetime


Received = Callable[[UnitOfWork, Call, Campaign, dt.datetime], Awaitable[Screening]]
Committed = Callable[[UnitOfWork, CommittedCall], None]
CallStep = Callable[[UnitOfWork, Call, dt.datetime, int | None], Awaitable[None]]
Offered = Callable[[UnitOfWork, Call, int, dt.datetime, dict[str, Any] | None], Awaitable[None]]
PopForOffer = Callable[[UnitOfWork, int], Awaitable[dict[str, Any] | None]]
LegCreated = Callable[[UnitOfWork, Call, Call], Awaitable[bool]]
TimerFired = Callable[[UnitOfWork, Call, str, dt.datetime], Awaitable[None]]
AgentChanged = Callable[[UnitOfWork, Agent, str], None]


class DispatchRequester(Protocol):
    """Who to tell that a campaign may now have a call to match (the router)."""

    def request(self, campaign_id: int | None) -> None: ...


@dataclass
class CallHooks:
    call_received: list[Received] = field(default_factory=list)
    call_committed: list[Committed] = field(default_factory=list)
    call_queued: list[CallStep] = field(default_factory=list)
    pop_for_offer: list[PopForOffer] = field(default_factory=list)
    call_offered: list[Offered] = field(default_factory=list)
    call_connected: list[CallStep] = field(default_factory=list)
    call_ended: list[CallStep] = field(default_factory=list)
    leg_created: list[LegCreated] = field(default_factory=list)
    timer_fired: list[TimerFired] = field(default_factory=list)
    agent_state_changed: list[AgentChanged] = field(default_factory=list)
    # The process's router (the background dispatcher), when it runs one.
    dispatcher: DispatchRequester | None = None


_hooks: weakref.WeakKeyDictionary[Database, CallHooks] = weakref.WeakKeyDictionary()


def of(db: Database) -> CallHooks:
    """The hooks registered for this database (empty ones the first time)."""
    hooks = _hooks.get(db)
    if hooks is None:
        hooks = _hooks[db] = CallHooks()
    return hooks


async def received(uow: UnitOfWork, call: Call, campaign: Campaign, now: dt.datetime) -> Screening:
    decided = Screening()
    for hook in of(uow.db).call_received:
        outcome = await hook(uow, call, campaign, now)
        if outcome.rejected:
            return outcome
        decided.queue = outcome.queue or decided.queue
        decided.priority = outcome.priority if outcome.priority is not None else decided.priority
    return decided


async def step(
    uow: UnitOfWork,
    which: str,
    call: Call,
    now: dt.datetime,
    agent_id: int | None = None,
) -> None:
    """``call_queued``, ``call_connected`` or ``call_ended``."""
    hooks: list[CallStep] = getattr(of(uow.db), which)
    for hook in hooks:
        await hook(uow, call, now, agent_id)


async def offered(
    uow: UnitOfWork, call: Call, agent_id: int, now: dt.datetime, pop: dict[str, Any] | None
) -> None:
    for hook in of(uow.db).call_offered:
        await hook(uow, call, agent_id, now, pop)


async def pop_for_offer(uow: UnitOfWork, call_id: int) -> dict[str, Any] | None:
    for hook in of(uow.db).pop_for_offer:
        pop = await hook(uow, call_id)
        if pop is not None:
            return pop
    return None


async def leg_created(uow: UnitOfWork, call: Call, leg: Call) -> bool:
    """True when a plugin carried what the first leg had (no new look-up needed)."""
    carried = False
    for hook in of(uow.db).leg_created:
        carried = await hook(uow, call, leg) or carried
    return carried


async def timer_fired(uow: UnitOfWork, call: Call, name: str, now: dt.datetime) -> None:
    for hook in of(uow.db).timer_fired:
        await hook(uow, call, name, now)


def agent_state_changed(uow: UnitOfWork, agent: Agent, action: str) -> None:
    for hook in of(uow.db).agent_state_changed:
        hook(uow, agent, action)


def request_dispatch(uow: UnitOfWork, campaign_id: int) -> None:
    """Ask the process's router to look for matches once this transaction commits."""
    uow.dispatch_campaigns.add(campaign_id)
    if "dispatch_requested" in uow.memo:
        return
    uow.memo["dispatch_requested"] = True
    dispatcher = of(uow.db).dispatcher
    if dispatcher is None:
        return  # no router in this process (tools, tests without background work)

    async def ask() -> None:
        for requested in uow.dispatch_campaigns:
            dispatcher.request(requested)

    uow.after_commit(ask)


def committed(uow: UnitOfWork, call: CommittedCall) -> None:
    """Tell the ``call_committed`` hooks about ``call`` once this transaction commits."""
    hooks = of(uow.db).call_committed
    if not hooks:
        return

    async def tell() -> None:
        for hook in hooks:
            hook(uow, call)  # the committed unit of work: what it read is in its memo

    uow.after_commit(tell)

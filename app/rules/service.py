"""Where the call path meets the rules: one function per kind of event.

``lifecycle`` calls these inside its unit of work; the volunteer's buttons
(``flag``, ``choose``) and committed ``pledge.saved`` events open their own.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
from typing import Any

from app.acd import config_cache, lifecycle
from app.acd.hooks import CallHooks, CallStep, Screening
from app.acd.models import Call, Campaign
from app.db import Database, UnitOfWork, utcnow
from app.errors import Conflict, Invalid
from app.realtime.outbox import emit
from app.rules import engine, scripts
from app.rules.facts import Situation, caller_record
from app.rules.loader import Rule
from app.settings import settings_of
from app.surge.hooks import SurgeHooks, SurgeSwitch

log = logging.getLogger(__name__)

FLAG_KINDS = ("prank", "needs_support")


async def _campaign(uow: UnitOfWork, call: Call) -> Campaign:
    return (await config_cache.snapshot(uow)).campaign(call.campaign_id)


async def call_event(
    uow: UnitOfWork,
    event: str,
    call: Call,
    now: dt.datetime,
    *,
    agent_id: int | None = None,
    campaign: Campaign | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> engine.Outcome:
    """Run the rules of ``event`` for a call; never raises for a rule's failure."""
    try:
        settings = settings_of(uow.db)
        ruleset = await engine.ruleset_for(uow.session, call.campaign_id, settings)
        if not ruleset.for_event(event):
            return engine.Outcome()  # the common case: nothing listens, nothing read
        campaign = campaign or await _campaign(uow, call)
        situation = Situation(
            campaign=campaign,
            call=call,
            now=now,
            agent_id=agent_id,
            extra=extra or {},
            memo=uow.memo,
        )
        return await engine.fire(uow, event, situation)
    except Exception:
        log.exception("rules for %s on call %s failed; the call goes on", event, call.id)
        return engine.Outcome()


async def refuse_if_blocked(
    uow: UnitOfWork, call: Call, campaign: Campaign, now: dt.datetime
) -> bool:
    """A blocked number hears a short message and is hung up on (``call.rejected`` blocked)."""
    if call.caller_number is None:
        return False
    # The record the call.received rules read next: one statement for both.
    record = await caller_record(uow.session, campaign.id, call.caller_number, now, uow.memo)
    if not record.blocked(now):
        return False
    settings = settings_of(uow.db)
    message = settings.rules_blocked_message
    await lifecycle.reject(uow, call, campaign, "blocked", now, message=message)
    return True


async def offered(
    uow: UnitOfWork,
    call: Call,
    agent_id: int,
    now: dt.datetime,
    *,
    pop: dict[str, Any] | None = None,
) -> None:
    """The call rings on a volunteer's screen: its rules, then its script on the screen."""
    outcome = await call_event(uow, "call.offered", call, now, agent_id=agent_id)
    if outcome.script_shown or call.agent_id != agent_id or call.state != "offered":
        return  # a rule showed a script already, or moved the call on
    try:
        settings = settings_of(uow.db)
        # The offer read the pop already: {} says "none yet" without asking again.
        known = pop if pop is not None else {}
        rendered = await engine.script_for_call(
            uow.session,
            settings,
            call,
            agent_id,
            now,
            pop=known,
            campaign=await _campaign(uow, call),
        )
        if rendered is not None:
            scripts.show(uow, call, agent_id, rendered)
    except Exception:
        log.exception("script for call %s could not be shown", call.id)


async def flag(db: Database, agent_id: int, kind: str) -> dict[str, Any]:
    """The volunteer's Prank or Needs-support button on their current call."""
    if kind not in FLAG_KINDS:
        raise Invalid("flag is one of {choices}", field="args.kind", choices=", ".join(FLAG_KINDS))
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        if call.state != "connected":
            raise Conflict("flag a call while talking to the caller", code="call_not_connected")
        if agent.state == "consulting":
            raise Conflict(
                "the caller is on hold for a specialist already", code="agent_consulting"
            )
        now = utcnow()
        # Only the kind is recorded: nothing about the caller's health.
        emit(
            uow,
            "agent.flagged",
            campaign_id=call.campaign_id,
            call_id=call.id,
            agent_id=agent.id,
            data={"kind": kind},
        )
        outcome = await call_event(
            uow, "agent.flagged", call, now, agent_id=agent.id, extra={"flag": {"kind": kind}}
        )
    return {"kind": kind, "rules": outcome.fired}


async def choose(db: Database, agent_id: int, script_name: str, button_id: str) -> dict[str, Any]:
    """A button of a script pressed: its actions, then the rules on ``script.choice``."""
    async with db.unit_of_work() as uow:
        call, agent = await lifecycle.agent_call(uow, agent_id)
        campaign = await _campaign(uow, call)
        settings = settings_of(uow.db)
        ruleset = await engine.ruleset_for(uow.session, campaign.id, settings)
        script = ruleset.scripts.get(script_name)
        buttons = [b for step in script.steps for b in step.buttons] if script else []
        button = next((b for b in buttons if b.id == button_id), None)
        if button is None:
            raise Invalid(
                "script {script_name!r} has no button {button_id!r}",
                field="args.button",
                script_name=script_name,
                button_id=button_id,
            )
        now = utcnow()
        emit(
            uow,
            "script.choice",
            campaign_id=call.campaign_id,
            call_id=call.id,
            agent_id=agent.id,
            data={"script": script_name, "button": button_id},
        )
        choice = {"choice": {"script": script_name, "button": button_id}}
        situation = Situation(
            campaign=campaign, call=call, now=now, agent_id=agent.id, extra=choice
        )
        outcome = engine.Outcome()
        if button.then:
            pressed = Rule(
                name=f"{script_name}/{button_id}",
                on="script.choice",
                when=None,
                then=button.then,
                line=0,
            )
            await engine.run_rules(
                uow, settings, ruleset, (pressed,), "script.choice", situation, outcome
            )
        await engine.fire(uow, "script.choice", situation, outcome=outcome)
    return {"script": script_name, "button": button_id, "rules": outcome.fired}


async def timer_fired(uow: UnitOfWork, call: Call, name: str, now: dt.datetime) -> None:
    await call_event(uow, f"timer.{name}", call, now, agent_id=call.agent_id)


async def on_committed(db: Database, events: list[Any]) -> None:
    """``db.on_events`` listener: rules on ``pledge.saved``, each in its own unit of work."""
    for event in events:
        if getattr(event, "type", None) != "pledge.saved":
            continue
        try:
            await _pledge_saved(db, event)
        except Exception:
            log.exception("rules for pledge.saved (event %s) failed", getattr(event, "seq", "?"))


class PledgeRules:
    """Runs the ``pledge.saved`` rules after the saving request, not inside it.

    ``on_events`` (a ``db.on_events`` listener) starts one task per committed batch
    holding a ``pledge.saved`` event, in a fresh context: the request answers once
    its own transaction is committed, and the rules (the large-pledge alert) follow
    a moment later in their own unit of work, in this process. ``idle`` waits for
    them (tests, shutdown).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_events(self, events: list[Any]) -> None:
        saved = [e for e in events if getattr(e, "type", None) == "pledge.saved"]
        if not saved:
            return
        task = asyncio.get_running_loop().create_task(
            on_committed(self.db, saved), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def _pledge_saved(db: Database, event: Any) -> None:
    data = dict(event.data or {})
    call_id = data.get("call_id") or event.call_id
    if not call_id or event.campaign_id is None:
        return
    settings = settings_of(db)
    async with db.read() as session:
        ruleset = await engine.ruleset_for(session, int(event.campaign_id), settings)
    if not ruleset.for_event("pledge.saved"):
        return  # no rule listens: no transaction
    amount = int(data.get("amount_minor") or 0)
    currency = str(data.get("currency") or "")
    pledge = {
        "amount": amount,
        "currency": currency,
        "reference": data.get("reference") or "",
        "amount_display": f"{amount / 100:,.2f} {currency}".strip(),
    }
    async with db.unit_of_work() as uow:
        call = await uow.session.get(Call, int(call_id))
        if call is None:
            return
        agent_id = data.get("agent_id") or event.agent_id
        await call_event(
            uow,
            "pledge.saved",
            call,
            utcnow(),
            agent_id=int(agent_id) if agent_id else None,
            extra={"pledge": pledge},
        )


# --- on the call path ------------------------------------------------------------


def register(hooks: CallHooks) -> None:
    """Plug the rules into the ACD's hooks (every call event runs its rules)."""

    async def received(
        uow: UnitOfWork, call: Call, campaign: Campaign, now: dt.datetime
    ) -> Screening:
        if await refuse_if_blocked(uow, call, campaign, now):
            return Screening(rejected=True)
        outcome = await call_event(uow, "call.received", call, now, campaign=campaign)
        return Screening(rejected=outcome.rejected, queue=outcome.queue, priority=outcome.priority)

    def on(event: str) -> CallStep:
        async def run(uow: UnitOfWork, call: Call, now: dt.datetime, agent_id: int | None) -> None:
            await call_event(uow, event, call, now, agent_id=agent_id)

        return run

    async def call_offered(
        uow: UnitOfWork, call: Call, agent_id: int, now: dt.datetime, pop: dict[str, Any] | None
    ) -> None:
        await offered(uow, call, agent_id, now, pop=pop)

    hooks.call_received.append(received)
    hooks.call_queued.append(on("call.queued"))
    hooks.call_offered.append(call_offered)
    hooks.call_connected.append(on("call.connected"))
    hooks.call_ended.append(on("call.ended"))
    hooks.timer_fired.append(timer_fired)


# --- surge (app/surge) -------------------------------------------------------------


async def surge_switched(uow: UnitOfWork, switch: SurgeSwitch) -> None:
    """A queue switched into or out of surge: its ``queue.surge_*`` rules run in the
    switch's transaction (a rule's ``page_standby`` commits with the switch)."""
    campaign = await uow.session.get(Campaign, switch.campaign_id)
    if campaign is None:
        return
    queue = {"id": switch.queue_id, "name": switch.queue_name, "surge": switch.started}
    situation = Situation(campaign=campaign, call=None, now=switch.at, extra={"queue": queue})
    await engine.fire(uow, switch.event, situation)


def register_surge(hooks: SurgeHooks) -> None:
    hooks.switched.append(surge_switched)

"""Practice calls: start, the volunteer's actions, the pledge form's saves, the scorecard.

Isolation by construction: a practice call is one row of ``practice_calls`` and
nothing else. No ``calls`` row, no ``pledges`` row, no strike or block, no pledge
counter: the totals, exports, statistics and blocklists read those tables only.
The pledge form's save runs the real checks (``app.pledges.service.check_new_pledge``:
card guard, amount, donor) and keeps the result in the practice row.

While practising, a volunteer gets no real call: a practice call starts only for
a volunteer holding no call, and an *available* one is paused (reason
``practice``) in the same transaction. A real call is never held back for
practice: if the volunteer presses Ready during a practice call, routing offers
them calls again and the practice call can only be ended.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd import lifecycle, repository
from app.acd.models import Agent, Campaign
from app.acd.states import AgentState
from app.auth.service import Principal, Role
from app.db import UnitOfWork, utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.i18n import N_, translate
from app.outbox import emit
from app.pledges.schemas import PledgeIn
from app.pledges.service import check_new_pledge, new_reference, normalise_reference
from app.practice.models import PracticeCall
from app.practice.scenarios import HANDOVER, PLEDGE, PRANK, SCENARIOS, Scenario
from app.rules import engine, scripts
from app.settings import settings_of

PAUSE_REASON = "practice"
BUSY = {AgentState.RESERVED, AgentState.ON_CALL, AgentState.CONSULTING, AgentState.WRAP_UP}
FLAG_SCRIPTS = {"flag_prank": "prank-close", "needs_support": "handover"}
ACTIONS = ("flag_prank", "needs_support", "script_choice", "read_back")
PRANK_CLOSE = ("prank-close", "end-call")


def scenario_named(name: str) -> Scenario:
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise Invalid(
            "unknown scenario; one of {choices}",
            field="scenario",
            code="unknown_scenario",
            choices=", ".join(SCENARIOS),
        )
    return scenario


def _volunteer(principal: Principal) -> int:
    if principal.role != Role.AGENT or principal.agent_id is None:
        raise Forbidden("only volunteers take practice calls", code="volunteers_only")
    return principal.agent_id


async def _script(
    uow: UnitOfWork, campaign: Campaign, agent: Agent, name: str, pop: dict[str, Any], call_id: int
) -> dict[str, Any] | None:
    """One of the campaign's real scripts, rendered as the screen draws it."""
    settings = settings_of(uow.db)
    ruleset = await engine.ruleset_for(uow.session, campaign.id, settings)
    script = ruleset.scripts.get(name)
    if script is None:
        return None
    values = scripts.placeholder_values({}, campaign, settings, agent=agent, pop=pop)
    return scripts.render(script, values, call_id)


async def start(uow: UnitOfWork, principal: Principal, scenario_name: str) -> dict[str, Any]:
    agent_id = _volunteer(principal)
    scenario = scenario_named(scenario_name)
    agent = await repository.get_agent(uow.session, agent_id, lock=True)
    if agent.state in BUSY or agent.current_call_id is not None:
        raise Conflict("finish your call before a practice call", code="on_a_call")
    already = await uow.session.scalar(
        select(PracticeCall.id).where(
            PracticeCall.agent_id == agent.id, PracticeCall.state == "open"
        )
    )
    if already is not None:
        raise Conflict(
            "practice call {id} is still open: end it first", code="practice_open", id=already
        )
    now = utcnow()
    if agent.state == AgentState.AVAILABLE:
        # No real call while practising: paused through the real step, same transaction.
        await lifecycle.pause(uow, agent, PAUSE_REASON, now)
    call = PracticeCall(
        campaign_id=agent.campaign_id,
        agent_id=agent.id,
        scenario=scenario.name,
        state="open",
        started_at=now,
        actions=[],
        card_attempts=0,
    )
    uow.session.add(call)
    await uow.session.flush()
    emit(
        uow,
        "practice.started",
        campaign_id=call.campaign_id,
        agent_id=agent.id,
        data={"practice_call_id": call.id, "scenario": scenario.name},
    )
    return await view(uow, call, agent=agent)


async def view(
    uow: UnitOfWork, call: PracticeCall, *, agent: Agent | None = None
) -> dict[str, Any]:
    scenario = SCENARIOS[call.scenario]
    pop = scenario.pop()
    script = None
    if call.state == "open":
        agent = agent or await repository.get_agent(uow.session, call.agent_id)
        campaign = await repository.get_campaign(uow.session, call.campaign_id)
        name = _current_script(call)
        script = await _script(uow, campaign, agent, name, pop, call.id)
    return {
        "id": call.id,
        "campaign_id": call.campaign_id,
        "agent_id": call.agent_id,
        "scenario": scenario.out(),
        "state": call.state,
        "caller": pop["caller"],
        "pop": pop,
        "lines": list(scenario.lines),
        "script": script,
        "pledge": call.draft,
        "card_attempts": call.card_attempts,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "scorecard": call.scorecard,
        "passed": call.passed,
    }


def _current_script(call: PracticeCall) -> str:
    name = scripts.DEFAULT_SCRIPT
    for action in call.actions:
        name = FLAG_SCRIPTS.get(action.get("action"), name)
    return name


async def own_open(uow: UnitOfWork, principal: Principal, call_id: int) -> PracticeCall:
    agent_id = _volunteer(principal)
    call = await uow.session.get(PracticeCall, call_id, with_for_update=True)
    if call is None:
        raise NotFound("practice call {id} not found", field="id", id=call_id)
    if call.agent_id != agent_id:
        raise Forbidden("this is another volunteer's practice call", code="not_yours")
    if call.state != "open":
        raise Conflict("this practice call has ended", code="practice_ended")
    return call


def _log(call: PracticeCall, action: str, **data: Any) -> None:
    # A new list: the JSON column is written only when the attribute changes.
    call.actions = [*call.actions, {"at": utcnow().isoformat(), "action": action, **data}]


def card_refused(call: PracticeCall, field: str) -> None:
    """The form sent card data: refused as for a real pledge, and counted (never kept)."""
    call.card_attempts += 1
    _log(call, "card_refused", field=field)


async def save_pledge(uow: UnitOfWork, call: PracticeCall, body: PledgeIn) -> dict[str, Any]:
    """The pledge form's save on a practice call: the real checks, no pledge row."""
    if body.call_id is not None or body.campaign_id is not None:
        raise Invalid("a practice pledge names no call or campaign", field="call_id")
    campaign = await repository.get_campaign(uow.session, call.campaign_id)
    derived = check_new_pledge(campaign, body)
    values = body.model_dump(exclude={"call_id", "campaign_id"})
    reference = (call.draft or {}).get("reference") or new_reference()
    draft = {
        **values,
        **derived,
        "reference": reference,
        "currency": campaign.currency,
        "practice": True,
        "flagged_for_review": False,
    }
    call.draft = draft
    _log(call, "pledge_saved", amount_minor=body.amount_minor)
    return draft


async def act(
    uow: UnitOfWork, principal: Principal, call_id: int, action: str, **args: Any
) -> dict[str, Any]:
    """A button of the practice call: Prank, Needs support, a script's button, read-back."""
    call = await own_open(uow, principal, call_id)
    if action == "script_choice":
        _log(call, action, script=args.get("script") or "", button=args.get("button") or "")
    elif action == "read_back":
        typed = normalise_reference(args.get("reference") or "")
        _log(call, action, reference=typed)
    elif action in FLAG_SCRIPTS:
        _log(call, action)
    else:
        raise Invalid("action is one of {choices}", field="action", choices=", ".join(ACTIONS))
    out = await view(uow, call)
    return {"action": action, "script": out["script"], "rules": [action]}


async def end(uow: UnitOfWork, principal: Principal, call_id: int) -> dict[str, Any]:
    call = await own_open(uow, principal, call_id)
    scenario = SCENARIOS[call.scenario]
    card = scorecard(scenario, call)
    call.scorecard = card
    call.passed = all(item["passed"] for item in card)
    call.state = "ended"
    call.ended_at = utcnow()
    emit(
        uow,
        "practice.ended",
        campaign_id=call.campaign_id,
        agent_id=call.agent_id,
        data={"practice_call_id": call.id, "scenario": call.scenario, "passed": call.passed},
    )
    agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
    needed = settings_of(uow.db).practice_passes_to_train
    passes = await passed_count(uow.session, agent.id)
    out = await view(uow, call)
    if call.passed and not agent.trained and passes >= needed:
        agent.trained = True
        emit(
            uow,
            "agent.trained",
            campaign_id=agent.campaign_id,
            agent_id=agent.id,
            data={"passed_practice_calls": passes},
        )
    out["trained"] = agent.trained
    out["passes"] = passes
    out["passes_needed"] = needed
    return out


async def passed_count(session: AsyncSession, agent_id: int) -> int:
    await session.flush()
    count = await session.scalar(
        select(func.count(PracticeCall.id)).where(
            PracticeCall.agent_id == agent_id, PracticeCall.passed.is_(True)
        )
    )
    return int(count or 0)


# --- the scorecard -----------------------------------------------------------------


def _plain(text: str) -> str:
    """A name as compared: no accents, no case, no spaces around hyphens."""
    bare = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(bare.casefold().replace(" -", "-").replace("- ", "-").split())


def _item(
    criterion: str, passed: bool, words: str, say: list[tuple[str, dict[str, str]]] | None = None
) -> dict[str, Any]:
    """A criterion, with its sentences: ``words`` in English, ``say`` as message ids and
    their parameters for the page to translate (one sentence: ``words`` is the id)."""
    say = say or [(words, {})]
    english = " ".join(translate("en", id_, params) for id_, params in say)
    return {"criterion": criterion, "passed": passed, "words": english, "say": say}


def scorecard(scenario: Scenario, call: PracticeCall) -> list[dict[str, Any]]:
    """Each criterion the scenario calls for: passed or not, and why, in words."""
    expected = scenario.expected
    draft = call.draft
    done = [a.get("action") for a in call.actions]
    items: list[dict[str, Any]] = []
    if expected.outcome == PLEDGE:
        problems: list[tuple[str, dict[str, str]]] = []
        if draft is None:
            problems.append((N_("No pledge was saved."), {}))
        else:
            if draft.get("amount_minor") != expected.amount_minor:
                amount = f"{expected.amount_minor / 100:.2f}"
                problems.append((N_("The amount should be {amount}."), {"amount": amount}))
            if draft.get("frequency") != expected.frequency:
                problems.append(
                    (N_("The pledge should be monthly."), {})
                    if expected.frequency == "monthly"
                    else (N_("The pledge should be one-off."), {})
                )
            if _plain(str(draft.get("last_name") or "")) != _plain(expected.last_name):
                name = expected.last_name
                problems.append((N_("The last name should be {name}."), {"name": name}))
            if expected.postcode and draft.get("postcode") != expected.postcode:
                code = expected.postcode
                problems.append((N_("The postcode should be {postcode}."), {"postcode": code}))
        items.append(
            _item(
                "form_complete",
                not problems,
                N_("Pledge form complete and right."),
                problems or None,
            )
        )
        read = [a.get("reference") for a in call.actions if a.get("action") == "read_back"]
        reference = (draft or {}).get("reference")
        right = reference is not None and reference in read
        items.append(
            _item(
                "reference_read_back",
                right,
                N_("Reference read back to the caller.")
                if right
                else N_("The pledge reference was not read back (or not the right one)."),
            )
        )
    if expected.card or call.card_attempts:
        ok = call.card_attempts == 0
        items.append(
            _item(
                "card_refused",
                ok,
                N_("Card number refused: the donor pays through the link."),
                None
                if ok
                else [
                    (
                        N_(
                            "A card number was typed into the form {count} time(s): "
                            "never take card details by phone."
                        ),
                        {"count": str(call.card_attempts)},
                    )
                ],
            )
        )
    if expected.outcome == PRANK:
        flagged = "flag_prank" in done
        closed = flagged and any(
            (a.get("script"), a.get("button")) == PRANK_CLOSE
            for a in call.actions[done.index("flag_prank") :]
            if a.get("action") == "script_choice"
        )
        ok = closed and draft is None
        items.append(
            _item(
                "prank_closed",
                ok,
                N_("Prank flagged and closed with the script.")
                if ok
                else N_(
                    "Flag the prank, then close the call with the script's End call button "
                    "(and save no pledge)."
                )
                if draft is not None
                else N_("Flag the prank, then close the call with the script's End call button."),
            )
        )
    if expected.outcome == HANDOVER:
        ok = "needs_support" in done and draft is None
        items.append(
            _item(
                "handover_used",
                ok,
                N_("Handed over to the specialists.")
                if ok
                else N_("This caller needed the hand-over (Needs support), not a pledge.")
                if draft is not None
                else N_("This caller needed the hand-over (Needs support)."),
            )
        )
    elif "needs_support" in done:
        items.append(_item("handover_used", False, N_("This caller did not need a hand-over.")))
    return items


# --- reads -------------------------------------------------------------------------


async def readable(session: AsyncSession, principal: Principal, call_id: int) -> PracticeCall:
    call = await session.get(PracticeCall, call_id)
    if call is None:
        raise NotFound("practice call {id} not found", field="id", id=call_id)
    if principal.role == Role.AGENT:
        if call.agent_id != principal.agent_id:
            raise Forbidden("this is another volunteer's practice call", code="not_yours")
    elif principal.role == Role.SUPERVISOR:
        if principal.campaign_id != call.campaign_id:
            raise Forbidden("this belongs to another campaign")
        if principal.site_id is not None:
            agent = await session.get(Agent, call.agent_id)
            if agent is None or agent.site_id != principal.site_id:
                raise Forbidden("this belongs to another site", code="other_site")
    elif principal.role != Role.ADMIN:
        raise Forbidden("a {role} may not do this", role=principal.role)
    return call

"""Running the rules of a campaign for one event, inside the caller's unit of work.

Rule sets are cached per process: the newest version put through the API, else
the campaign's file in ``PLEDGELINE_RULES_DIR``, else the shipped defaults. The
source is looked at again at most every ``PLEDGELINE_RULES_RECHECK_SECONDS``, so a
new version takes effect without a restart, in every process. A source that fails
to load leaves the rules in force as they were (and is logged).

Rules are indexed by event: an event no rule listens to costs a dictionary
look-up. A rule that fails while running is logged and skipped; its writes are
undone (savepoint) and the call goes on.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, Call, Campaign
from app.db import UnitOfWork
from app.rules import facts as facts_module
from app.rules.facts import FACTS, Situation
from app.rules.loader import PLACEHOLDER, Rule, RuleSet, RulesRefused, Script, facts_read, load
from app.rules.models import RuleFile
from app.settings import Settings, settings_of

log = logging.getLogger(__name__)

DEFAULTS_NAME = "defaults/rules.yaml"
# Rules run by the actions of rules (a transfer that queues a call...) nest this deep.
MAX_DEPTH = 3
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("rules_depth", default=0)


def default_source() -> str:
    return (resources.files("app.rules") / "defaults" / "rules.yaml").read_text("utf-8")


_DEFAULTS: RuleSet | None = None


def defaults() -> RuleSet:
    global _DEFAULTS
    if _DEFAULTS is None:
        _DEFAULTS = load(default_source(), DEFAULTS_NAME)
    return _DEFAULTS


def load_for_campaign(source: str, file: str) -> RuleSet:
    """A campaign's file: its own rules; its scripts, else the shipped ones."""
    return load(source, file, base=defaults())


# --- the per-process cache ---------------------------------------------------------


@dataclass
class _Entry:
    ruleset: RuleSet
    origin: str  # "default", "file:<path>:<mtime>" or "api:<version>"
    checked_at: float


_cache: dict[tuple[str, int], _Entry] = {}


# The database a session is bound to, by URL (rendering a URL is slow: kept per engine).
_bind_keys: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_engine_numbers = itertools.count(1)


def db_key(session: AsyncSession) -> str:
    bind = session.bind
    if bind is None:
        return ""
    key = _bind_keys.get(bind)
    if key is None:
        # One key per engine, not per URL: a new app on the same database (a restart,
        # a test) starts with an empty cache, since only events keep it fresh.
        key = _bind_keys[bind] = f"{getattr(bind, 'url', '')}#{next(_engine_numbers)}"
    return key


def invalidate(campaign_id: int | None = None) -> None:
    """Forget cached rule sets (after an API change in this process)."""
    for key in list(_cache):
        if campaign_id is None or key[1] == campaign_id:
            del _cache[key]


def rules_file(settings: Settings, campaign_id: int) -> Path | None:
    if not settings.rules_dir:
        return None
    return Path(settings.rules_dir) / f"{campaign_id}.yaml"


def on_events(events: Iterable[Any]) -> None:
    """Committed events of any process: a rules file put through the API anywhere
    drops that campaign's cached rule set here."""
    for event in events:
        if isinstance(event, dict):  # the wire form: ids are in its data
            kind, campaign_id = event.get("type"), (event.get("data") or {}).get("campaign_id")
        else:
            kind, campaign_id = getattr(event, "type", None), getattr(event, "campaign_id", None)
        if kind == "rules.replaced":
            invalidate(campaign_id)


async def ruleset_for(session: AsyncSession, campaign_id: int, settings: Settings) -> RuleSet:
    """The campaign's rule set, from this process's cache.

    A version put through the API is announced by its ``rules.replaced`` event
    (:func:`on_events`), so the database is asked only when nothing is cached; a
    rules file is looked at (its modification time, no query) at most every
    ``rules_recheck_seconds``.
    """
    key = (db_key(session), campaign_id)
    entry = _cache.get(key)
    now = time.monotonic()
    if entry is not None and now - entry.checked_at < settings.rules_recheck_seconds:
        return entry.ruleset
    if entry is not None and entry.origin.startswith("api:"):
        entry.checked_at = now  # only an API change replaces it, and it says so
        return entry.ruleset
    if entry is not None:
        origin, loader = _file_origin(campaign_id, settings)
    else:
        origin, loader = await _current_origin(session, campaign_id, settings)
    ruleset: RuleSet
    if entry is not None and entry.origin == origin:
        entry.checked_at = now
        return entry.ruleset
    try:
        ruleset = await loader()
    except RulesRefused as exc:
        log.error(
            "rules for campaign %s refused, the rules in force stay: %s",
            campaign_id,
            "; ".join(f"{p.file}:{p.line}: {p.reason}" for p in exc.problems),
        )
        ruleset = entry.ruleset if entry is not None else defaults()
    except OSError:
        log.exception("rules file for campaign %s unreadable; the rules in force stay", campaign_id)
        ruleset = entry.ruleset if entry is not None else defaults()
    _cache[key] = _Entry(ruleset=ruleset, origin=origin, checked_at=now)
    return ruleset


async def _current_origin(
    session: AsyncSession, campaign_id: int, settings: Settings
) -> tuple[str, Any]:
    stmt = select(func.max(RuleFile.version)).where(RuleFile.campaign_id == campaign_id)
    version = (await session.execute(stmt)).scalar_one_or_none()
    if version is not None:

        async def from_api() -> RuleSet:
            row = await latest_file(session, campaign_id)
            assert row is not None
            # Checking a large file takes a while: off the event loop.
            name = f"campaign {campaign_id} rules v{row.version}"
            return await asyncio.to_thread(load_for_campaign, row.source, name)

        return f"api:{version}", from_api
    return _file_origin(campaign_id, settings)


def _file_origin(campaign_id: int, settings: Settings) -> tuple[str, Any]:
    path = rules_file(settings, campaign_id)
    if path is not None and path.is_file():
        mtime = path.stat().st_mtime_ns

        async def from_file() -> RuleSet:
            text = path.read_text("utf-8")
            return await asyncio.to_thread(load_for_campaign, text, str(path))

        return f"file:{path}:{mtime}", from_file

    async def from_defaults() -> RuleSet:
        return defaults()

    return "default", from_defaults


async def latest_file(session: AsyncSession, campaign_id: int) -> RuleFile | None:
    stmt = (
        select(RuleFile)
        .where(RuleFile.campaign_id == campaign_id)
        .order_by(RuleFile.version.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


# --- running -----------------------------------------------------------------------


@dataclass
class Outcome:
    """What the rules decided that the calling step must honour."""

    rejected: bool = False
    script_shown: bool = False  # a rule already pushed a script to the volunteer
    queue: str | None = None
    priority: int | None = None
    fired: list[str] = field(default_factory=list)


@dataclass
class Run:
    """One rule's actions being applied: what they act on."""

    uow: UnitOfWork
    settings: Settings
    ruleset: RuleSet
    rule: str
    event: str
    campaign: Campaign
    call: Call | None
    agent_id: int | None
    now: Any
    facts: dict[str, dict[str, Any]]
    outcome: Outcome
    values: dict[str, Any] | None = None


async def fire(
    uow: UnitOfWork,
    event: str,
    situation: Situation,
    *,
    outcome: Outcome | None = None,
) -> Outcome:
    """Run the campaign's rules for ``event``; never raises for a rule's failure."""
    outcome = outcome or Outcome()
    settings = settings_of(uow.db)
    ruleset = await ruleset_for(uow.session, situation.campaign.id, settings)
    # The rules' texts (alerts...) in the campaign's language; scripts are rendered
    # in each volunteer's (render_for).
    ruleset = ruleset.in_language(situation.campaign.language)
    rules = ruleset.for_event(event)
    if not rules:
        return outcome
    return await run_rules(uow, settings, ruleset, rules, event, situation, outcome)


async def run_rules(
    uow: UnitOfWork,
    settings: Settings,
    ruleset: RuleSet,
    rules: tuple[Rule, ...],
    event: str,
    situation: Situation,
    outcome: Outcome,
) -> Outcome:
    """Run these rules (the event's, or a script button's actions) in order."""
    depth = _depth.get()
    if depth >= MAX_DEPTH:
        log.warning("rules for %s not run: rules nested %s deep", event, depth)
        return outcome
    token = _depth.set(depth + 1)
    try:
        own = rules is ruleset.for_event(event)  # else a script button's actions
        needed = ruleset.facts_for(event) if own else facts_read(rules)
        facts = await facts_module.gather(uow.session, situation, needed)
        for rule in rules:
            if outcome.rejected:
                break
            await _run_rule(uow, settings, ruleset, rule, event, situation, facts, outcome)
    finally:
        _depth.reset(token)
    return outcome


async def _run_rule(
    uow: UnitOfWork,
    settings: Settings,
    ruleset: RuleSet,
    rule: Rule,
    event: str,
    situation: Situation,
    facts: dict[str, dict[str, Any]],
    outcome: Outcome,
) -> None:
    from app.rules import actions  # actions drive the ACD, which calls back into here

    try:
        if rule.when is not None and not rule.when.evaluate(facts):
            return
    except Exception:
        log.exception("rule %s (%s) failed to evaluate; skipped", rule.name, event)
        return
    run = Run(
        uow=uow,
        settings=settings,
        ruleset=ruleset,
        rule=rule.name,
        event=event,
        campaign=situation.campaign,
        call=situation.call,
        agent_id=situation.agent_id,
        now=situation.now,
        facts=facts,
        outcome=outcome,
    )
    outbox_before = uow.mark()
    dispatch_before = set(uow.dispatch_campaigns)
    try:
        async with uow.session.begin_nested():
            for action in rule.then:
                await actions.apply(run, action)
    except Exception:
        # Undone by the savepoint: its events, commands and timers must go too.
        uow.rollback_to(outbox_before)
        uow.dispatch_campaigns.intersection_update(dispatch_before)
        log.exception("rule %s (%s) failed; skipped", rule.name, event)
        if situation.call is not None:
            await uow.session.refresh(situation.call)
        return
    outcome.fired.append(rule.name)
    if run.call is not None and run.call is not situation.call:
        situation.call = run.call  # a transfer: later rules act on the new leg


async def render_for(
    session: AsyncSession,
    settings: Settings,
    ruleset: RuleSet,
    script: Script,
    campaign: Campaign,
    call: Call | None,
    agent_id: int | None,
    now: Any,
    known_facts: dict[str, dict[str, Any]] | None = None,
    pop: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A script rendered for a call and a volunteer, in the volunteer's language."""
    from app.rules import scripts

    if ruleset.multilingual:
        language = await scripts.volunteer_language(session, agent_id, campaign)
        script = ruleset.in_language(language).scripts.get(script.name, script)
    facts = known_facts
    if facts is None:
        needed = frozenset(
            p
            for step in script.steps
            for text in (step.text, *step.items)
            for p in PLACEHOLDER.findall(text)
            if p in FACTS
        )
        situation = Situation(campaign=campaign, call=call, now=now, agent_id=agent_id)
        facts = await facts_module.gather(session, situation, needed)
    agent = await session.get(Agent, agent_id) if agent_id else None
    if pop is None:
        pop = await scripts.pop_of(session, call)
    values = scripts.placeholder_values(facts, campaign, settings, agent=agent, pop=pop)
    return scripts.render(script, values, call.id if call is not None else None)


async def script_for_call(
    session: AsyncSession,
    settings: Settings,
    call: Call,
    agent_id: int | None,
    now: Any,
    *,
    pop: dict[str, Any] | None = None,
    campaign: Campaign | None = None,
) -> dict[str, Any] | None:
    """The script a volunteer sees for this call (snapshots, offers)."""
    from app.rules.scripts import DEFAULT_SCRIPT

    campaign = campaign or await session.get(Campaign, call.campaign_id)
    if campaign is None:
        return None
    ruleset = await ruleset_for(session, campaign.id, settings)
    name = (call.context or {}).get("script") or DEFAULT_SCRIPT
    script = ruleset.scripts.get(name) or ruleset.scripts.get(DEFAULT_SCRIPT)
    if script is None:
        return None
    return await render_for(
        session, settings, ruleset, script, campaign, call, agent_id, now, pop=pop
    )

"""The facts a rule's ``when`` may read, their types, and reading them for one event.

Facts are grouped (``caller.*``, ``call.*``...). Only the facts the event's rules
name are read, with one query for the caller's history and one for their strikes,
so an event whose rules read nothing from the database costs no query at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd import expected_wait, hours
from app.acd.models import AgentSkill, Call, Campaign, Queue
from app.db import UTCDateTime, built_once
from app.rules.models import NumberBlock
from app.surge.models import QueueSurge

log = logging.getLogger(__name__)

CALL_EVENTS = ("call.received", "call.queued", "call.offered", "call.connected", "call.ended")
# A queue switched into or out of surge (app/surge): no call, the queue's facts.
SURGE_EVENTS = ("queue.surge_started", "queue.surge_ended")
EVENTS = (*CALL_EVENTS, "agent.flagged", "script.choice", "pledge.saved", *SURGE_EVENTS)
TIMER_PREFIX = "timer."

# name -> (type, description); docs/rules.md lists the same.
FACTS: dict[str, tuple[str, str]] = {
    "caller.number": ("string", "E.164 number; empty when withheld or invalid"),
    "caller.withheld": ("bool", "the number is withheld, anonymous or invalid"),
    "caller.unrecognised": (
        "bool",
        "a number came but is not a phone number (invalid; caller.withheld is true too)",
    ),
    "caller.calls_last_10_minutes": ("int", "calls from this number in 10 minutes, this one too"),
    "caller.calls_last_hour": ("int", "calls from this number in the last hour, this one too"),
    "caller.calls_today": ("int", "calls today (campaign time zone), this one too"),
    "caller.distinct_days": ("int", "days (campaign time zone) with a call from this number"),
    "caller.prank_strikes": ("int", "prank strikes against the number"),
    "caller.blocked": ("bool", "the number is blocked now"),
    "caller.pledged_total": ("int", "pledged so far from this number, minor units"),
    "call.id": ("int", "the call (leg) id"),
    "call.queue": ("string", "name of the call's queue; empty before it has one"),
    "call.dialled": ("string", "the number dialled (E.164)"),
    "call.state": (
        "string",
        "received, queued, offered, connected, wrap_up (a callback also dialing, retry_wait)"
        " or an end state",
    ),
    "call.wait_seconds": ("double", "seconds waited so far (or until answered)"),
    "call.talk_seconds": ("double", "seconds talked so far (or until hang-up)"),
    "call.tags": ("list<string>", "labels put on the call"),
    "call.kind": ("string", "inbound (a caller on the line) or callback"),
    "call.expected_wait_seconds": (
        "double",
        "expected wait of the queued call at its place; 0 when not waiting, -1 when unknown",
    ),
    "queue.id": ("int", "the call's queue (or the queue that switched surge); 0 when none"),
    "queue.name": ("string", "name of that queue; empty when none"),
    "queue.surge": ("bool", "that queue is in surge mode now (app/surge)"),
    "queue.waiting": ("int", "calls and callbacks waiting in the call's queue"),
    "queue.expected_wait_seconds": (
        "double",
        "expected wait of a caller joining the call's queue now; -1 when unknown",
    ),
    "time.hour": ("int", "hour of day, 0-23, campaign time zone"),
    "time.weekday": ("int", "day of week, 1 = Monday ... 7 = Sunday, campaign time zone"),
    "time.open": ("bool", "inside the campaign's opening hours"),
    "pledge.amount": ("int", "pledge amount in minor units (cents)"),
    "pledge.currency": ("string", "ISO 4217 currency of the pledge"),
    "agent.id": ("int", "the volunteer's agent id; 0 when no volunteer"),
    "agent.skills": ("list<string>", "the volunteer's skills; empty when no volunteer"),
    "flag.kind": ("string", "what the volunteer flagged: prank or needs_support"),
    "choice.script": ("string", "the script whose button was pressed"),
    "choice.button": ("string", "the id of the button pressed"),
}
FACT_TYPES = {name: typ for name, (typ, _) in FACTS.items()}
GROUPS = frozenset(name.split(".")[0] for name in FACTS)

_AGENT_EVENTS = frozenset(
    {"call.offered", "call.connected", "call.ended", "agent.flagged", "script.choice"}
    | {"pledge.saved"}
)
_ONLY_ON: dict[str, frozenset[str]] = {
    "pledge": frozenset({"pledge.saved"}),
    "flag": frozenset({"agent.flagged"}),
    "choice": frozenset({"script.choice"}),
    "agent": _AGENT_EVENTS,
}


def is_event(name: str) -> bool:
    return name in EVENTS or (name.startswith(TIMER_PREFIX) and len(name) > len(TIMER_PREFIX))


def available(path: str, event: str) -> bool:
    group = path.split(".")[0]
    allowed = _ONLY_ON.get(group)
    if allowed is None:
        return True
    # Timers fire on a call, with its agent if it still has one.
    return event in allowed or (group == "agent" and event.startswith(TIMER_PREFIX))


@dataclass
class Situation:
    """What an event is about: the call (and its campaign), maybe a volunteer and extras."""

    campaign: Campaign
    call: Call | None
    now: dt.datetime
    agent_id: int | None = None
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The unit of work's memo: the caller's record is read once per transaction.
    memo: dict[Any, Any] | None = None


async def gather(
    session: AsyncSession, situation: Situation, needed: frozenset[str]
) -> dict[str, dict[str, Any]]:
    """The fact groups ``needed`` names, read for this situation."""
    facts: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
    for group, values in situation.extra.items():
        facts[group] = dict(values)
    call, campaign, now = situation.call, situation.campaign, situation.now
    tz = ZoneInfo(campaign.timezone)
    local = now.astimezone(tz)
    facts["time"] = {
        "hour": local.hour,
        "weekday": local.isoweekday(),
        "open": hours.is_open(campaign.opening_hours, campaign.timezone, now)
        if "time.open" in needed
        else True,
    }
    number = call.caller_number if call is not None else None
    caller: dict[str, Any] = {
        "number": number or "",
        "withheld": number is None,
        "unrecognised": call is not None and call.caller_number_issue == "invalid",
        "calls_last_10_minutes": 0,
        "calls_last_hour": 0,
        "calls_today": 0,
        "distinct_days": 0,
        "prank_strikes": 0,
        "blocked": False,
        "pledged_total": 0,
    }
    if number is not None and needed & _RECORD:
        record = await caller_record(session, campaign.id, number, now, situation.memo)
        caller.update(record.history(now, tz))
        caller["prank_strikes"] = record.strikes
        caller["blocked"] = record.blocked(now)
        caller["pledged_total"] = record.pledged_total
    facts["caller"] = caller
    facts["call"] = await _call_facts(session, call, now, needed)
    facts["queue"] = await _queue_facts(session, call, facts.get("queue") or {}, needed)
    if needed & _WAIT and call is not None:
        await _wait_facts(session, call, now, needed, facts)
    agent = facts.get("agent") or {}
    facts["agent"] = {"id": situation.agent_id or 0, "skills": agent.get("skills", [])}
    if "agent.skills" in needed and situation.agent_id:
        stmt = select(AgentSkill.skill).where(AgentSkill.agent_id == situation.agent_id)
        facts["agent"]["skills"] = list((await session.execute(stmt)).scalars())
    for group, values in _DEFAULTS.items():
        for name, value in values.items():
            facts[group].setdefault(name, value)
    return facts


_HISTORY = frozenset(
    {
        "caller.calls_last_10_minutes",
        "caller.calls_last_hour",
        "caller.calls_today",
        "caller.distinct_days",
    }
)
_STRIKES = frozenset({"caller.prank_strikes", "caller.blocked"})
_RECORD = _HISTORY | _STRIKES | {"caller.pledged_total"}
_WAIT = frozenset({"call.expected_wait_seconds", "queue.waiting", "queue.expected_wait_seconds"})
UNKNOWN_WAIT = -1.0
_DEFAULTS: dict[str, dict[str, Any]] = {
    "pledge": {"amount": 0, "currency": ""},
    "flag": {"kind": ""},
    "choice": {"script": "", "button": ""},
}
HISTORY_DAYS = 400


@dataclass(frozen=True)
class CallerRecord:
    """What the hotline knows of a number: its calls, strikes, block and pledges."""

    times: list[dt.datetime]
    strikes: int
    blocked_until: dt.datetime | None
    pledged_total: int

    def blocked(self, now: dt.datetime) -> bool:
        return self.blocked_until is not None and self.blocked_until > now

    def history(self, now: dt.datetime, tz: ZoneInfo) -> dict[str, int]:
        """Counts of the number's calls (first legs only: a transfer is not a new call)."""
        times = self.times
        today = now.astimezone(tz).date()
        days = {t.astimezone(tz).date() for t in times}
        return {
            "calls_last_10_minutes": sum(1 for t in times if t >= now - dt.timedelta(minutes=10)),
            "calls_last_hour": sum(1 for t in times if t >= now - dt.timedelta(hours=1)),
            "calls_today": sum(1 for t in times if t.astimezone(tz).date() == today),
            "distinct_days": len(days),
        }


def known_caller_record(memo: dict[Any, Any], campaign_id: int, number: str) -> CallerRecord | None:
    """The record a step of this transaction read already, if any."""
    record = memo.get(("caller_record", campaign_id, number))
    return record if isinstance(record, CallerRecord) else None


def forget_caller_records(memo: dict[Any, Any]) -> None:
    """A strike or block was written: the next read of a record goes to the table."""
    for key in [k for k in memo if isinstance(k, tuple) and k[:1] == ("caller_record",)]:
        del memo[key]


def _caller_record_statements() -> tuple[Any, Any]:
    """The record's statement (calls, with strikes, block and pledged total on each
    row) and its fallback for a number that never called; built once, bound each time."""
    return built_once(("caller record",), _build_caller_record_statements)  # type: ignore[no-any-return]


def _build_caller_record_statements() -> tuple[Any, Any]:
    campaign: Any = bindparam("p_campaign")
    number: Any = bindparam("p_number")
    block = (NumberBlock.campaign_id == campaign, NumberBlock.number == number)
    strikes = select(NumberBlock.strikes).where(*block).scalar_subquery()
    blocked_until = select(NumberBlock.blocked_until).where(*block).scalar_subquery()
    pledged = _pledged_total_subquery(campaign, number)
    with_calls = select(Call.received_at, strikes, blocked_until, pledged).where(
        Call.caller_number == number,
        Call.received_at >= bindparam("p_since", type_=UTCDateTime()),
        Call.campaign_id == campaign,
        Call.leg == 0,
    )
    return with_calls, select(strikes, blocked_until, pledged)


async def caller_record(
    session: AsyncSession,
    campaign_id: int,
    number: str,
    now: dt.datetime,
    memo: dict[Any, Any] | None = None,
) -> CallerRecord:
    """One statement: the number's calls, with its strikes, block and pledged total
    as scalar subqueries on each row (a second one only if it never called)."""
    key = ("caller_record", campaign_id, number)
    if memo is not None and key in memo:
        return memo[key]  # type: ignore[no-any-return]
    params = {
        "p_campaign": campaign_id,
        "p_number": number,
        "p_since": now - dt.timedelta(days=HISTORY_DAYS),
    }
    with_calls, alone = _caller_record_statements()
    rows = (await session.execute(with_calls, params)).all()
    others = rows[0][1:] if rows else (await session.execute(alone, params)).one()
    n_strikes, until, total = others
    if isinstance(until, str):  # SQLite hands a subquery's timestamp back raw
        until = dt.datetime.fromisoformat(until)
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=dt.UTC)
    record = CallerRecord(
        times=[row[0] for row in rows],
        strikes=int(n_strikes or 0),
        blocked_until=until,
        pledged_total=int(total or 0),
    )
    if memo is not None:
        memo[key] = record
    return record


async def strikes_of(session: AsyncSession, campaign_id: int, number: str) -> NumberBlock | None:
    stmt = select(NumberBlock).where(
        NumberBlock.campaign_id == campaign_id, NumberBlock.number == number
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _wait_facts(
    session: AsyncSession,
    call: Call,
    now: dt.datetime,
    needed: frozenset[str],
    facts: dict[str, dict[str, Any]],
) -> None:
    """The expected-wait facts (app/acd/expected_wait.py): a few counts, read only
    when a rule names one of them."""
    facts["call"]["expected_wait_seconds"] = 0.0
    if call.queue_id is None:
        return
    load = (await expected_wait.queue_loads(session, [call.queue_id], now)).get(call.queue_id)
    if load is None:
        return
    facts["queue"]["waiting"] = load.waiting
    queue_wait = load.expected_wait_seconds
    facts["queue"]["expected_wait_seconds"] = UNKNOWN_WAIT if queue_wait is None else queue_wait
    if call.state == "queued" and "call.expected_wait_seconds" in needed:
        wait = load.wait_at(await expected_wait.position_of(session, call))
        facts["call"]["expected_wait_seconds"] = UNKNOWN_WAIT if wait is None else wait


def _pledged_total_subquery(campaign_id: Any, number: Any) -> Any:
    try:
        from app.pledges import repository as pledges
    except ImportError:
        return literal(0)  # no pledges module in this build
    return pledges.pledged_total_subquery(campaign_id, number)


async def _queue_facts(
    session: AsyncSession, call: Call | None, given: dict[str, Any], needed: frozenset[str]
) -> dict[str, Any]:
    """The queue's facts: given by a surge event, else the call's queue, read only
    when a rule names them (``queue.surge``: one primary-key read)."""
    queue_id = int(given.get("id") or (call.queue_id if call is not None else 0) or 0)
    facts = {
        "id": queue_id,
        "name": given.get("name", ""),
        "surge": given.get("surge", False),
        # Set by _wait_facts when a rule names them.
        "waiting": 0,
        "expected_wait_seconds": 0.0,
    }
    if queue_id and "name" not in given and "queue.name" in needed:
        queue = await session.get(Queue, queue_id)
        facts["name"] = queue.name if queue is not None else ""
    if queue_id and "surge" not in given and "queue.surge" in needed:
        stmt = select(QueueSurge.surge).where(QueueSurge.queue_id == queue_id)
        facts["surge"] = bool((await session.execute(stmt)).scalar_one_or_none())
    return facts


async def _call_facts(
    session: AsyncSession, call: Call | None, now: dt.datetime, needed: frozenset[str]
) -> dict[str, Any]:
    if call is None:
        return {
            "id": 0,
            "queue": "",
            "dialled": "",
            "state": "",
            "wait_seconds": 0.0,
            "talk_seconds": 0.0,
            "tags": [],
            "kind": "",
            "expected_wait_seconds": 0.0,
        }
    queue_name = ""
    if call.queue_id is not None and "call.queue" in needed:
        queue = await session.get(Queue, call.queue_id)
        queue_name = queue.name if queue is not None else ""
    if call.wait_seconds is not None:
        wait = call.wait_seconds
    else:
        start = call.queued_at or call.received_at
        wait = max(0.0, (now - start).total_seconds())
    talk = 0.0
    if call.answered_at is not None:
        talk = max(0.0, ((call.hangup_at or now) - call.answered_at).total_seconds())
    return {
        "id": call.id,
        "queue": queue_name,
        "dialled": call.dialled,
        "state": call.state,
        "wait_seconds": float(wait),
        "talk_seconds": float(talk),
        "tags": list(call.tags or []),
        "kind": call.kind or "inbound",
        "expected_wait_seconds": 0.0,
    }

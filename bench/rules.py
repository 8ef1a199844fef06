"""Rules benchmark: what the rules cost per event, and their share of an offer.

``pledgeline bench rules --json [key=value ...]`` prints one JSON object:

* ``evaluation``: 50 rules loaded (10 on each call event), the conditions of one
  event's rules evaluated against its facts, per event (p50/p99 in ms). This is the
  engine's own cost, the figure the target (<= 0.2 ms p99) is about.
* ``offer``: the offer step (``lifecycle.offer`` in its own transaction, on a
  SQLite file built by the migrations), ``calls`` times with the shipped default
  rules (which render and push the pledge script with every offer) and ``calls``
  times with every rules hook of the call path made a no-op, interleaved; the
  difference of the medians is the rules' share of the offer. ``rules_hook_ms``
  times the rules' part of the offer alone (``call.offered`` rules, rendering the
  script and its event). ``receive_*`` time the step that takes a new call in
  (blocklist check, ``call.received`` rules with the caller's history, queueing).

Options: ``events`` (default 20000), ``calls`` (default 300), ``db`` (a directory
for the SQLite file; default a temporary one).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import percentiles

EVENTS = ("call.received", "call.queued", "call.offered", "call.connected", "call.ended")
CONDITIONS = (
    "caller.calls_last_hour >= {n} && !caller.withheld",
    'call.queue == "q{n}" && call.wait_seconds > {n}.5',
    "time.hour in [{n}, 23, 0] || time.weekday == 7",
    '"skill{n}" in agent.skills && caller.pledged_total > {n}00',
    'caller.number.startsWith("+33{n}") && size(call.tags) < 3',
    "caller.prank_strikes >= 2 && caller.distinct_days > {n} ? true : caller.blocked",
    "call.talk_seconds > 60.0 && caller.calls_today == {n}",
    "(caller.calls_last_10_minutes + {n}) % 3 == 0",
    '"vip" in call.tags || call.dialled == "+3380000000{n}"',
    "double(caller.calls_today) / 2.0 > {n}.0",
)


def fifty_rules() -> str:
    lines = ["rules:"]
    for e, event in enumerate(EVENTS):
        for c, condition in enumerate(CONDITIONS):
            uses_agent = "agent." in condition
            if uses_agent and event in ("call.received", "call.queued"):
                condition = "caller.calls_today > 5"
            lines += [
                f"  - name: r{e}-{c}",
                f"    on: {event}",
                f"    when: '{condition.format(n=c)}'",
                "    then: [tag: t]",
            ]
    return "\n".join(lines) + "\n"


def _facts() -> dict[str, dict[str, Any]]:
    return {
        "caller": {
            "number": "+33612345678",
            "withheld": False,
            "calls_last_10_minutes": 1,
            "calls_last_hour": 1,
            "calls_today": 1,
            "distinct_days": 1,
            "prank_strikes": 0,
            "blocked": False,
            "pledged_total": 0,
        },
        "call": {
            "id": 1,
            "queue": "pledges",
            "dialled": "+33800000001",
            "state": "offered",
            "wait_seconds": 3.2,
            "talk_seconds": 0.0,
            "tags": [],
        },
        "time": {"hour": 21, "weekday": 6, "open": True},
        "agent": {"id": 1, "skills": ["pledges"]},
        "pledge": {"amount": 0, "currency": ""},
        "flag": {"kind": ""},
        "choice": {"script": "", "button": ""},
    }


def evaluation(events: int) -> dict[str, Any]:
    from app.rules.engine import load_for_campaign

    started = time.perf_counter()
    ruleset = load_for_campaign(fifty_rules(), "bench.yaml")
    load_ms = (time.perf_counter() - started) * 1000
    facts = _facts()
    timings: list[float] = []
    fired = 0
    for i in range(events):
        rules = ruleset.for_event(EVENTS[i % len(EVENTS)])
        t0 = time.perf_counter()
        for rule in rules:
            if rule.when is None or rule.when.evaluate(facts):
                fired += 1
        timings.append((time.perf_counter() - t0) * 1000)
    return {
        "rules_loaded": len(ruleset.rules),
        "rules_per_event": len(ruleset.for_event("call.offered")),
        "load_and_check_ms": round(load_ms, 1),
        "per_event_ms": percentiles(timings, digits=4),
        "matched": fired,
    }


async def _offer_step(directory: Path, calls: int) -> dict[str, Any]:
    from sqlalchemy import update

    from app import plugins
    from app.acd import config, lifecycle, repository
    from app.acd.models import Agent
    from app.acd.schemas import AgentIn, CampaignIn, QueueIn
    from app.db import Database, make_engine, utcnow
    from app.migrate import upgrade_async
    from app.rules import engine, service
    from app.settings import Settings
    from app.settings import bind as bind_settings

    url = f"sqlite+aiosqlite:///{directory / 'bench-rules.db'}"
    await upgrade_async(url)
    db = Database(make_engine(url))
    bind_settings(db, Settings(database_url=url, directory_url="", rules_recheck_seconds=3600))
    plugins.install(db, None)  # the rules on the call path, as the app factory does
    hook: list[float] = []
    real = (service.offered, service.call_event, service.refuse_if_blocked)

    async def timed_offered(*args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        await real[0](*args, **kwargs)
        hook.append((time.perf_counter() - t0) * 1000)

    async def no_offer_hook(*args: Any, **kwargs: Any) -> None:
        return None

    async def no_rules(*args: Any, **kwargs: Any) -> engine.Outcome:
        return engine.Outcome()

    async def never_blocked(*args: Any, **kwargs: Any) -> bool:
        return False

    def rules_on(on: bool) -> None:
        """The call path with the rules (defaults) or with every rules hook a no-op."""
        service.offered = timed_offered if on else no_offer_hook  # type: ignore[assignment]
        service.call_event = real[1] if on else no_rules  # type: ignore[assignment]
        service.refuse_if_blocked = real[2] if on else never_blocked  # type: ignore[assignment]

    try:
        async with db.unit_of_work() as uow:
            campaign = await config.create_campaign(
                uow, CampaignIn(name="bench", dialled_numbers=["+33800000011"])
            )
            queue = await config.create_queue(uow, QueueIn(campaign_id=campaign.id, name="pledges"))
            agent = await config.create_agent(
                uow, AgentIn(campaign_id=campaign.id, login="a", display_name="A")
            )
            queue_id, agent_id = queue.id, agent.id
        engine.invalidate()
        timings: dict[str, list[float]] = {"defaults": [], "none": []}
        received: dict[str, list[float]] = {"defaults": [], "none": []}
        for i in range(calls):
            for kind in ("defaults", "none"):
                rules_on(kind == "defaults")
                t0 = time.perf_counter()
                async with db.unit_of_work() as uow:
                    call = await lifecycle.receive(
                        uow,
                        provider_call_id=f"b-{kind}-{i}",
                        caller=f"+3361{i:07d}",
                        dialled="+33800000011",
                        now=utcnow(),
                    )
                    call_id = call.id
                received[kind].append((time.perf_counter() - t0) * 1000)
                async with db.unit_of_work() as uow:
                    await uow.session.execute(
                        update(Agent).where(Agent.id == agent_id).values(state="available")
                    )
                t0 = time.perf_counter()
                async with db.unit_of_work() as uow:
                    call = await repository.lock_call(uow.session, call_id)
                    agent = await repository.get_agent(uow.session, agent_id, lock=True)
                    queue = await repository.get_queue(uow.session, queue_id)
                    await lifecycle.offer(uow, call, agent, queue, "sip:a", utcnow())
                timings[kind].append((time.perf_counter() - t0) * 1000)
                async with db.unit_of_work() as uow:
                    call = await repository.lock_call(uow.session, call_id)
                    agent = await repository.get_agent(uow.session, agent_id, lock=True)
                    await lifecycle.connect(uow, call, agent, utcnow())
                    await lifecycle.start_wrap_up(uow, call, agent, utcnow(), by="agent")
                    await lifecycle.end_wrap_up(uow, call, agent, utcnow(), None)
    finally:
        service.offered, service.call_event, service.refuse_if_blocked = real  # type: ignore[assignment]
        await db.dispose()
    with_rules = percentiles(timings["defaults"], digits=3)
    without = percentiles(timings["none"], digits=3)
    rules_hook = percentiles(hook, digits=3)
    share = (with_rules["p50"] - without["p50"]) / with_rules["p50"] if with_rules["n"] else None
    receive_with = percentiles(received["defaults"], digits=3)
    receive_without = percentiles(received["none"], digits=3)
    return {
        "database": "sqlite",
        "receive_with_default_rules_ms": receive_with,
        "receive_without_rules_ms": receive_without,
        "calls": calls,
        "with_default_rules_ms": with_rules,
        "without_rules_ms": without,
        "rules_hook_ms": rules_hook,
        "rules_share_of_offer_p50": round(share, 3) if share is not None else None,
        "hook_share_of_offer_p50": round(rules_hook["p50"] / with_rules["p50"], 3)
        if with_rules["n"] and rules_hook["n"]
        else None,
    }


def run(options: dict[str, str]) -> dict[str, Any]:
    events = int(options.get("events", 20000))
    calls = int(options.get("calls", 300))
    figures: dict[str, Any] = {"benchmark": "rules", "evaluation": evaluation(events)}
    p99 = figures["evaluation"]["per_event_ms"]["p99"]
    figures["target_p99_ms"] = 0.2
    figures["meets_target"] = p99 <= 0.2
    if options.get("db"):
        directory = Path(options["db"])
        directory.mkdir(parents=True, exist_ok=True)
        figures["offer"] = asyncio.run(_offer_step(directory, calls))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
            figures["offer"] = asyncio.run(_offer_step(Path(tmp), calls))
    return figures

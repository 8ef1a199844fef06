"""200 calls race for 50 agents across two server processes, with ring timeouts and
hang-ups at random moments; every call is connected at most once and no agent
ever holds two live calls.

Two uvicorn processes share a fresh PostgreSQL database. One caller in five lets
its first offer ring out (a one-second ring timeout hands the call to another
agent, in the timer's transaction); one in six hangs up while waiting or ringing
at a random moment; the others talk for a random moment and are hung up on by the
caller or by the volunteer. With four calls per agent the queue is long, and the
matches are made in every kind of transaction at once: the incoming call's, the
wrap-up's, the ring timeout's and the background router's.

The audit replays the events timeline: no double booking, legal steps only, rows
agreeing with their events. Nothing asserts on timing; the bounds only catch a
hang.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.routing import (
    Lifecycle,
    LoadClient,
    OfferWatcher,
    audit,
    fetch,
    run_lifecycle,
    setup_hotline,
)
from tests import procs
from tests.test_multiprocess_pg import _require_pg, _wait_all_ended

pytestmark = pytest.mark.pg_only

SERVERS = 2
AGENTS = 50
CALLS = 200
SECRET = "race-test-secret-that-is-long-enough-32b"


async def test_calls_racing_for_few_agents_are_each_connected_at_most_once(
    tmp_path: Path,
) -> None:
    await _require_pg()
    rng = random.Random(20261206)
    plans = []
    for n in range(CALLS):
        abandon = n % 6 == 1
        plans.append(
            {
                "hangup_by": rng.choice(("caller", "agent")),
                "abandon_after": rng.uniform(0.0, 1.5) if abandon else None,
                "ring_out": 1 if (not abandon and n % 5 == 2) else 0,
                "talk": rng.uniform(0.0, 0.3),
            }
        )
    async with procs.fresh_pg_database("pledgeline_race") as url:
        # Missed offers never pause an agent here: every agent stays in service.
        settings = {"missed_offers_before_pause": 1000}
        async with procs.running_servers(
            url, SERVERS, secret=SECRET, log_dir=tmp_path, settings=settings
        ) as servers:
            admin = await procs.bootstrap_admin(url)
            assert admin is not None
            token = await procs.bearer_token(servers[0].base_url, *admin)
            client = LoadClient([s.base_url for s in servers], SECRET, connections=32, token=token)
            try:
                hotline = await setup_hotline(
                    client, AGENTS, queue={"ring_timeout_seconds": 1, "wrapup_seconds": 300}
                )
                watcher = OfferWatcher(client, hotline["campaign_id"], interval=0.02)
                watcher.start()
                started = time.monotonic()
                try:
                    results = await asyncio.wait_for(
                        asyncio.gather(
                            *(
                                run_lifecycle(
                                    client, watcher, n, prefix="race", offer_timeout=120.0, **plan
                                )
                                for n, plan in enumerate(plans)
                            ),
                            return_exceptions=True,
                        ),
                        timeout=300,
                    )
                finally:
                    await watcher.stop()
                print(f"{CALLS} callers done in {time.monotonic() - started:.1f}s")
            finally:
                await client.aclose()
            states = dict(await _wait_all_ended(url))
            server_errors = [e for s in servers for e in s.errors()]
        result = await audit(url)
        connections = await fetch(
            url,
            "SELECT call_id, count(*) FROM events WHERE type = 'call.connected'"
            " GROUP BY call_id HAVING count(*) > 1",
        )
        requeued = await fetch(url, "SELECT count(*) FROM events WHERE type = 'call.requeued'")

    lives = [
        r if isinstance(r, Lifecycle) else Lifecycle(n, f"race-{n}", 0.0, outcome=f"failed:{r!r}")
        for n, r in enumerate(results)
    ]
    outcomes = Counter(life.outcome for life in lives)
    abandoners = sum(1 for p in plans if p["abandon_after"] is not None)
    # An abandoner may have been connected before its hang-up came: then it completes.
    assert set(outcomes) <= {"completed", "abandoned"}, outcomes
    assert outcomes["completed"] >= CALLS - abandoners, outcomes
    assert not client.unexpected, client.unexpected[:10]
    assert not server_errors, server_errors[:3]
    # The ring timeouts really happened, and handed calls on.
    assert requeued[0][0] >= sum(1 for p in plans if p["ring_out"]), requeued

    assert set(states) <= {"completed", "abandoned"}, states
    assert dict(result.agent_states) == {"available": AGENTS}, result.agent_states
    assert connections == []  # every call connected at most once
    assert not result.double_bookings, result.double_bookings[:10]
    assert not result.illegal_transitions, result.illegal_transitions[:10]
    assert not result.mismatches, result.mismatches[:10]

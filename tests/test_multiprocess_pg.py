"""Several real server processes on one PostgreSQL database route without double-booking.

Two uvicorn processes share a fresh database. 200 agents are created, logged in and
made ready through both; then 400 callers run at once through the webhook and the
agent API of both servers: most are answered (seat.answered once the offer's
bridge command appears), hang up (call.hangup from the caller's side, or the
agent's POST /agents/{id}/hangup) and are wrapped up; one in eight hangs up while
still waiting; one in ten has its call.incoming delivered twice at once, to both
servers. With twice as many calls as agents the
queue fills and both dispatchers compete for the same rows.

Afterwards the database must tell one consistent story: in the ``events`` timeline
no agent holds two calls and no call is offered twice at once, every recorded
transition is legal, every call has ended and every agent is available, and the
rows agree with their last events. Nothing asserts on timing; the only bounds are
generous guards against a hang.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

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

pytestmark = pytest.mark.pg_only

SERVERS = 2
AGENTS = 200
CALLS = 400
SECRET = "mp-test-telephony-Rk8vC2nX6qTz0bMw4jHs"
IN_CI = os.environ.get("CI", "").lower() == "true"


async def _require_pg() -> None:
    problem = await procs.pg_unreachable()
    if problem is None:
        return
    message = f"PostgreSQL at {procs.PG_ADMIN_URL} is unreachable ({problem})"
    if IN_CI:
        pytest.fail(message + "; CI=true requires it", pytrace=False)
    pytest.skip(message + "; set PLEDGELINE_TEST_PG_URL to run this test")


async def _wait_all_ended(url: str, timeout: float = 30.0) -> list[tuple[str, int]]:
    """Poll the database until no call is live (the callers are done, timers may lag)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = await fetch(url, "SELECT state, count(*) FROM calls GROUP BY state")
        live = [r for r in rows if r[0] not in ("completed", "abandoned")]
        if not live or loop.time() > deadline:
            return [(str(r[0]), int(r[1])) for r in rows]
        await asyncio.sleep(0.2)


async def _drive(
    url: str, rng: random.Random, log_dir: Path
) -> tuple[list[Lifecycle], list[dict[str, Any]], LoadClient, dict[str, int], list[str]]:
    """Run the servers and the callers; returns what the callers saw, once servers stopped."""
    async with (
        procs.running_servers(
            url,
            SERVERS,
            secret=SECRET,
            log_dir=log_dir,
        ) as servers,
    ):
        admin = await procs.bootstrap_admin(url)
        token = None if admin is None else await procs.bearer_token(servers[0].base_url, *admin)
        client = LoadClient([s.base_url for s in servers], SECRET, connections=32, token=token)
        try:
            # Generous ring and wrap-up timeouts: the callers, not the timers, end every
            # step, so the expected end states are exact even on a slow machine.
            started = time.monotonic()
            hotline = await setup_hotline(
                client,
                AGENTS,
                queue={"ring_timeout_seconds": 300, "wrapup_seconds": 300},
            )
            print(f"{AGENTS} agents ready in {time.monotonic() - started:.1f}s")
            started = time.monotonic()
            watcher = OfferWatcher(client, hotline["campaign_id"], interval=0.02)
            watcher.start()
            plans = []
            for n in range(CALLS):
                abandon = n % 8 == 3
                plans.append(
                    {
                        "hangup_by": "agent" if n % 2 else "caller",
                        "abandon_after": rng.uniform(0.0, 0.3) if abandon else None,
                        "duplicate_incoming": n % 10 == 7,
                    }
                )
            try:
                # The bound only catches a hang (a deadlock would leave callers waiting
                # for ever); a slow machine finishes well within it.
                results = await asyncio.wait_for(
                    asyncio.gather(
                        *(
                            run_lifecycle(
                                client, watcher, n, prefix="mp", offer_timeout=120.0, **plan
                            )
                            for n, plan in enumerate(plans)
                        ),
                        return_exceptions=True,
                    ),
                    timeout=240,
                )
                lives = [
                    r
                    if isinstance(r, Lifecycle)
                    else Lifecycle(n, f"mp-{n}", 0.0, outcome=f"failed:{r!r}")
                    for n, r in enumerate(results)
                ]
            finally:
                await watcher.stop()
            print(f"{CALLS} callers done in {time.monotonic() - started:.1f}s")
        finally:
            await client.aclose()
        states = await _wait_all_ended(url)
        server_errors = [e for s in servers for e in s.errors()]
    return lives, plans, client, dict(states), server_errors


async def test_two_servers_never_double_book(tmp_path: Path) -> None:
    await _require_pg()
    rng = random.Random(20261123)
    async with procs.fresh_pg_database("pledgeline_mp") as url:
        lives, plans, client, states, server_errors = await _drive(url, rng, tmp_path)
        result = await audit(url)
        connected = await fetch(url, "SELECT count(*) FROM events WHERE type = 'call.connected'")
        answered = await fetch(url, "SELECT count(*) FROM calls WHERE answered_at IS NOT NULL")
        incoming = await fetch(
            url, "SELECT count(*) FROM telephony_inbound WHERE type = 'call.incoming'"
        )

    # Every caller got what it asked for, through both servers, with no error answer.
    outcomes = Counter(life.outcome for life in lives)
    abandoners = sum(1 for p in plans if p["abandon_after"] is not None)
    assert outcomes == {"completed": CALLS - abandoners, "abandoned": abandoners}, outcomes
    assert not client.unexpected, client.unexpected[:10]
    assert not server_errors, server_errors[:3]
    used = {key.rsplit(" ", 1)[0] for key in client.tally}
    assert {
        "call.incoming",
        "seat.answered",
        "call.hangup",
        "POST agent hangup",
        "POST wrap-up/end",
    } <= used
    assert min(client.per_server) > CALLS, client.per_server  # both servers took their share

    # The rows: every call ended as its caller decided, every agent is free again.
    assert dict(states) == {"completed": CALLS - abandoners, "abandoned": abandoners}, states
    assert result.calls == CALLS
    assert dict(result.agent_states) == {"available": AGENTS}, result.agent_states

    # The events timeline: one call per agent, one agent per call, legal steps only.
    assert not result.double_bookings, result.double_bookings[:10]
    assert not result.illegal_transitions, result.illegal_transitions[:10]
    # ...and it tells the same story as the rows (last state, offers, connections).
    assert not result.mismatches, result.mismatches[:10]
    assert connected[0][0] == answered[0][0] == CALLS - abandoners
    # A call.incoming delivered twice at once, to both servers, was handled once.
    assert incoming[0][0] == CALLS

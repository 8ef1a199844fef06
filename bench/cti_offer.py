"""The offer latency of the real call path with a healthy, a timing-out and no directory.

Part of ``pledgeline bench cti``: the app runs in this process (its lifespan, its
router and its caller look-up), reached through ``httpx.ASGITransport``. One
volunteer is ready; ``calls`` calls come in one after another through the signed
telephony webhook, each is offered to that volunteer and then hung up by the
caller (the volunteer is free again). The latency of a call is
``call.received.at`` → ``call.offered.at`` from the events table (server clocks).
The three modes run in the same process, on the same database, in turn, so
``offer_added_ms`` (timing-out minus no-directory, at p50 and p99) is the cost the
directory adds to an offer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select

from app import signing
from app.auth.service import Role
from app.main import create_app
from app.realtime.models import Event
from app.settings import Settings
from bench.stats import percentiles
from tests.users import user_with_token

SECRET = "bench-cti-offer-telephony-Lm2xQ8vB4nRt"
WARMUP_CALLS = 3  # per mode, not counted: first requests warm caches and connections
# One campaign per mode, each on its own freephone number.
DIALLED = {"no_directory": "+33800000091", "healthy": "+33800000092", "timing_out": "+33800000093"}


@asynccontextmanager
async def running_app(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Any]]:
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        db = app.state.db
        _, token = await user_with_token(
            db,
            username=f"bench-{uuid.uuid4().hex[:8]}",
            role=Role.ADMIN,
            secret="bench-pass",
            client="bench",
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client, db, app.state.caller_lookup
    finally:
        await lifespan.__aexit__(None, None, None)


async def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


async def _telephony(client: httpx.AsyncClient, event: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"event_id": f"evt-{uuid.uuid4().hex}", **event}).encode()
    headers = {"Content-Type": "application/json", **signing.signed_headers(SECRET, body)}
    return await _ok(await client.post("/telephony/events", content=body, headers=headers))


async def _ready_volunteer(client: httpx.AsyncClient, mode: str) -> None:
    campaign = await _ok(
        await client.post(
            "/campaigns", json={"name": f"Bench offer {mode}", "dialled_numbers": [DIALLED[mode]]}
        ),
        201,
    )
    await _ok(
        await client.post("/queues", json={"campaign_id": campaign["id"], "name": "pledges"}), 201
    )
    agent = await _ok(
        await client.post(
            "/agents",
            json={"campaign_id": campaign["id"], "login": f"v-{mode}", "display_name": mode},
        ),
        201,
    )
    await _ok(await client.post(f"/agents/{agent['id']}/login", json={}))
    await _ok(await client.post(f"/agents/{agent['id']}/ready"))


async def _offer_ms(db: Any, call_id: int) -> float | None:
    async with db.read() as session:
        stmt = select(Event.type, Event.at).where(
            Event.call_id == call_id, Event.type.in_(("call.received", "call.offered"))
        )
        times = {kind: at for kind, at in (await session.execute(stmt)).all()}
    if "call.offered" not in times:
        return None
    return float((times["call.offered"] - times["call.received"]).total_seconds() * 1000)


async def measure_mode(
    settings: Settings, mode: str, calls: int, numbers: list[str]
) -> dict[str, Any]:
    """Offer latencies of ``calls`` calls, one at a time, in one mode (``numbers`` are
    the callers, used in turn; give ``calls + WARMUP_CALLS`` fresh ones for no cache)."""
    samples: list[float] = []
    async with running_app(settings) as (client, db, lookup):
        await _ready_volunteer(client, mode)
        for i in range(WARMUP_CALLS + calls):
            provider_id = f"offer-{mode}-{i}"
            answer = await _telephony(
                client,
                {
                    "type": "call.incoming",
                    "call_id": provider_id,
                    "caller": numbers[i % len(numbers)],
                    "dialled": DIALLED[mode],
                },
            )
            call_id = answer["call"]["id"]
            latency = None
            for _ in range(400):
                latency = await _offer_ms(db, call_id)
                if latency is not None:
                    break
                await asyncio.sleep(0.005)
            if latency is None:
                raise RuntimeError(f"call {call_id} was not offered in {mode} mode")
            if i >= WARMUP_CALLS:
                samples.append(latency)
            await _telephony(client, {"type": "call.hangup", "call_id": provider_id})
        metrics = lookup.metrics()["directory"] if lookup is not None else None
    return {
        "offer_ms": percentiles(samples),
        "directory": (
            {k: metrics[k] for k in ("hits", "misses", "timeouts", "errors", "lookups")}
            if metrics
            else None
        ),
    }


def settings_for(base: Settings, directory_url: str) -> Settings:
    return base.model_copy(
        update={
            "directory_url": directory_url,
            "telephony_secret": SECRET,
            "simulate": False,
            "directory_breaker_failures": 10**9,  # every look-up reaches the slow directory
        }
    )

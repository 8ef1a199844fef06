"""Commands pushed to the platform's callback URL: signed, retried, at least once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import signing
from app.errors import Unauthorized
from tests.conftest import SECRET, Hotline, wait_for
from tests.procs import free_port


class FakePlatform:
    """A real HTTP server standing in for the telephony platform's callback endpoint."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.accepted: list[dict[str, Any]] = []
        self.bad_signatures = 0

    async def receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:  # as a platform would: signature and timestamp window
            signing.verify(SECRET, body, request.headers)
        except Unauthorized as refusal:
            self.bad_signatures += 1
            return JSONResponse({"error": refusal.code}, 401)
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return JSONResponse({"error": "busy"}, 503)
        self.accepted.append(json.loads(body))
        return JSONResponse({"ok": True})


@contextlib.asynccontextmanager
async def serve(platform: FakePlatform) -> AsyncIterator[str]:
    port = free_port()
    app = Starlette(routes=[Route("/commands", platform.receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await wait_for(started, interval=0.01)
    try:
        yield f"http://127.0.0.1:{port}/commands"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def platform() -> AsyncIterator[tuple[FakePlatform, str]]:
    fake = FakePlatform(fail_first=2)
    async with serve(fake) as url:
        yield fake, url


async def test_commands_reach_the_callback_after_retries(
    hotline_factory: Any, platform: tuple[FakePlatform, str]
) -> None:
    fake, url = platform
    hotline: Hotline = await hotline_factory(telephony_callback_url=url)
    r = await hotline.http.post(
        "/campaigns", json={"name": "Callbacks", "dialled_numbers": ["+33800000001"]}
    )
    # No expected-wait announcement: the call's two commands are the two refused.
    await hotline.http.post(
        "/queues",
        json={"campaign_id": r.json()["id"], "name": "pledges", "wait_announce_seconds": 0},
    )
    assert (await hotline.incoming("cb-1")).status_code == 200

    async def all_delivered() -> bool:
        rows = await hotline.sql("select delivery from telephony_commands")
        return bool(rows) and all(row[0] == "delivered" for row in rows)

    await wait_for(all_delivered, timeout=15)
    sent = [(c["command"], c["call_id"]) for c in fake.accepted]
    assert sent[:2] == [("answer", "cb-1"), ("play", "cb-1")]
    assert fake.bad_signatures == 0
    assert fake.attempts >= 2 + len(fake.accepted)  # the two refusals were retried
    attempts = await hotline.sql("select attempts from telephony_commands order by id")
    assert attempts[0][0] >= 2


async def test_a_command_the_platform_never_takes_is_marked_failed(hotline_factory: Any) -> None:
    fake = FakePlatform(fail_first=10_000)
    async with serve(fake) as url:
        hotline: Hotline = await hotline_factory(
            telephony_callback_url=url, telephony_callback_retries=2
        )
        r = await hotline.http.post(
            "/campaigns", json={"name": "Never", "dialled_numbers": ["+33800000001"]}
        )
        await hotline.http.post("/queues", json={"campaign_id": r.json()["id"], "name": "pledges"})
        await hotline.incoming("cb-2")

        async def all_failed() -> bool:
            rows = await hotline.sql("select delivery, attempts from telephony_commands")
            return bool(rows) and all(d == "failed" and a == 2 for d, a in rows)

        await wait_for(all_failed, timeout=15)
    assert fake.accepted == []

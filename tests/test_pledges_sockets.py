"""Pledge events reach the screens: a supervisor's socket gets ``pledge.saved`` and
the coalesced ``totals.updated`` with the new figures (a real uvicorn process, both
databases; the socket helpers are those of ``tests/test_sockets.py``)."""

from __future__ import annotations

import json
import uuid

from tests.test_sockets import (  # noqa: F401 - server is the module's fixture
    Server,
    _connect,
    _is,
    _supervisor_token,
    _until,
    _volunteer,
    server,
)


async def test_supervisor_screen_gets_pledge_and_totals_events(server: Server) -> None:  # noqa: F811
    volunteer = await _volunteer(server)
    token = await _supervisor_token(server, volunteer.campaign_id)
    async with await _connect(server, "supervisor", token) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        for amount in (2500, 1500):
            r = await server.admin.post(
                "/pledges",
                json={
                    "campaign_id": volunteer.campaign_id,
                    "amount_minor": amount,
                    "last_name": "Socket",
                    "email": "socket@example.org",
                },
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert r.status_code == 201, r.text
        seen = await _until(ws, _is("totals.updated", promised_minor=4000, count=2))
    saved = [m for m in seen if m["type"] == "pledge.saved"]
    assert [m["data"]["amount_minor"] for m in saved] == [2500, 1500]
    update = seen[-1]["data"]
    assert update["currency"] == "EUR" and update["average_minor"] == 2000
    assert update["campaign_id"] == volunteer.campaign_id
    # No personal data on the screens' events.
    assert "Socket" not in json.dumps(seen) and "socket@example.org" not in json.dumps(seen)

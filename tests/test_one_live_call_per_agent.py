"""An agent holds at most one live call: a unique index says so on both databases.

The router's row locks and the transitions' state checks already keep it so; the
partial unique index ``uq_calls_agent_live`` makes it a guarantee of the database
itself, which refuses a second live call for an agent however it is written.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.conftest import Hotline, setup_campaign


async def _insert_call(hotline: Hotline, provider_id: str, state: str, agent_id: int) -> None:
    async with hotline.db.unit_of_work() as uow:
        campaign_id = (await uow.session.execute(text("SELECT id FROM campaigns"))).scalar_one()
        await uow.session.execute(
            text(
                "INSERT INTO calls (campaign_id, provider_call_id, leg, dialled, state, priority,"
                " rank_key, received_at, agent_id, offers, tags, context)"
                " VALUES (:c, :p, 0, '+33800000001', :s, 0, 0, CURRENT_TIMESTAMP, :a, 1,"
                " '[]', '{}')"
            ),
            {"c": campaign_id, "p": provider_id, "s": state, "a": agent_id},
        )


async def test_a_second_live_call_for_an_agent_is_refused_by_the_database(
    hotline: Hotline,
) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    assert (await hotline.http.post(f"/agents/{agent_id}/ready")).status_code == 200
    r = await hotline.incoming("live-1")
    assert r.json()["call"]["state"] == "offered"  # offered in the incoming's transaction

    for state in ("offered", "connected", "wrap_up"):
        with pytest.raises(IntegrityError):
            await _insert_call(hotline, f"live-second-{state}", state, agent_id)
    # Ended calls are history: an agent has many.
    for n, state in enumerate(("completed", "abandoned", "transferred")):
        await _insert_call(hotline, f"ended-{n}", state, agent_id)
    rows = await hotline.sql(
        "SELECT count(*) FROM calls WHERE agent_id = :a AND state IN "
        "('offered', 'connected', 'wrap_up')",
        a=agent_id,
    )
    assert rows[0][0] == 1

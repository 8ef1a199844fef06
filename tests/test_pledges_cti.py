"""Returning donors in the screen pop: a caller who pledged before is pre-filled from
the hotline's own pledge records (the real app, the built-in directory as a separate
process, both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import select

from app.cti.directory_server import DirectoryProcess
from app.realtime.models import Event
from tests.conftest import Hotline, wait_for
from tests.pledge_helpers import connected_call, key, pledge_body, pledge_setup

UNLISTED = "06 98 76 54 32"  # not in the sample directory


@pytest.fixture
async def cti(
    hotline_factory: Callable[..., Awaitable[Hotline]], directory: DirectoryProcess
) -> AsyncIterator[Hotline]:
    yield await hotline_factory(directory_url=directory.base_url, directory_budget_ms=500)


async def pop_of(hotline: Hotline, call_id: int) -> dict[str, object]:
    async def ready() -> list[Event]:
        async with hotline.db.read() as session:
            stmt = select(Event).where(Event.call_id == call_id, Event.type == "call.cti_ready")
            return list((await session.execute(stmt)).scalars())

    [event] = await wait_for(ready)
    return dict(event.data)


async def test_a_returning_donor_is_pre_filled_from_their_last_pledge(cti: Hotline) -> None:
    setup = await pledge_setup(cti)
    agent_id = setup["agent_id"]
    # The first call (from the helper's number) ends; the donor calls again from another.
    await cti.http.post(f"/agents/{agent_id}/hangup")
    await cti.http.post(f"/agents/{agent_id}/wrap-up/end", json={})
    first = await connected_call(cti, agent_id, "donor-1", caller=UNLISTED)
    first_pop = await pop_of(cti, first)
    assert first_pop["returning_donor"] is False
    r = await cti.http.post(
        "/pledges",
        json=pledge_body(first, amount_minor=4000, address="3 place Bellecour\nBât. B"),
        headers={**setup["agent_headers"], **key()},
    )
    assert r.status_code == 201, r.text
    await cti.http.post(f"/agents/{agent_id}/hangup")
    await cti.http.post(f"/agents/{agent_id}/wrap-up/end", json={})

    second = await connected_call(cti, agent_id, "donor-2", caller=UNLISTED)
    pop = await pop_of(cti, second)
    assert pop["returning_donor"] is True
    fields = pop["fields"]
    assert isinstance(fields, dict)
    assert fields["first_name"]["value"] == "Marie"
    assert fields["last_name"]["source"] == "pledges"
    assert fields["address_lines"]["value"] == ["3 place Bellecour", "Bât. B"]
    assert fields["email"]["value"] == "marie@example.org"
    history = pop["history"]
    assert isinstance(history, dict)
    assert history["pledges"]["count"] == 1 and history["pledges"]["total_minor"] == 4000

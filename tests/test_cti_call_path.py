"""The screen pop on the call path: look-up started when the call comes in, carried
by the offer when ready, else sent as ``call.cti_ready``; directory faults never
touch the call.

Each test runs the real app (SQLite and PostgreSQL) with the built-in directory as a
separate process, with fault injection. The offer never waiting for the look-up is
shown by order (the offer's event comes before the look-up's answer while the
directory is slow), not by a clock: timings belong to ``pledgeline bench cti``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.cti.directory_server import DirectoryProcess
from app.cti.models import ScreenPop
from app.cti.service import CallerLookup
from app.realtime.hub import view_for
from app.realtime.models import Event
from tests.conftest import Hotline, setup_campaign, wait_for
from tests.procs import free_port

LISTED = "01 23 45 67 89"  # in the sample directory: Marie Dupont
# The look-up's budget: long enough that a directory answering at once (even with
# an error) answers within it on a loaded machine (at 300 ms a CI run once saw an
# HTTP 500 arrive too late and counted as a timeout); the slow faults are
# multiples of it.
BUDGET_MS = 1500


@pytest.fixture
async def cti(
    hotline_factory: Callable[..., Awaitable[Hotline]], directory: DirectoryProcess
) -> AsyncIterator[Hotline]:
    await directory.set_faults()
    hotline = await hotline_factory(
        directory_url=directory.base_url,
        directory_budget_ms=BUDGET_MS,
        directory_breaker_failures=3,
        directory_breaker_reset_seconds=0.5,
    )
    yield hotline
    await directory.set_faults()


def lookup_of(hotline: Hotline) -> CallerLookup:
    service = hotline.app.state.caller_lookup
    assert service is not None, "the app starts a caller look-up when a directory is set"
    return service


async def events(hotline: Hotline, call_id: int, *types: str) -> list[Event]:
    async with hotline.db.read() as session:
        stmt = select(Event).where(Event.call_id == call_id, Event.type.in_(types))
        return list((await session.execute(stmt.order_by(Event.seq))).scalars())


async def incoming(hotline: Hotline, provider_id: str, caller: str | None) -> int:
    r = await hotline.incoming(provider_id, caller)
    assert r.status_code == 200, r.text
    call_id: int = r.json()["call"]["id"]
    return call_id


async def ready(hotline: Hotline, agent_id: int) -> None:
    r = await hotline.http.post(f"/agents/{agent_id}/ready")
    assert r.status_code == 200, r.text


async def offered_event(hotline: Hotline, call_id: int) -> Event:
    async def offered() -> list[Event]:
        return await events(hotline, call_id, "call.offered")

    await wait_for(offered)
    [event] = await offered()
    return event


async def cti_ready_event(hotline: Hotline, call_id: int) -> Event:
    async def arrived() -> list[Event]:
        return await events(hotline, call_id, "call.cti_ready")

    await wait_for(arrived)
    [event] = await arrived()
    return event


async def test_a_pop_ready_before_the_offer_rides_on_it(cti: Hotline) -> None:
    setup = await setup_campaign(cti, agents=1)
    [agent_id] = setup["agent_ids"]
    call_id = await incoming(cti, "pop-early", LISTED)
    cti_ready = await cti_ready_event(cti, call_id)  # started by the call coming in
    assert cti_ready.agent_id is None
    await ready(cti, agent_id)

    offer = await offered_event(cti, call_id)

    pop = offer.data["screen_pop"]
    assert pop == cti_ready.data
    assert pop["status"] == "found"
    fields = {name: f["value"] for name, f in pop["fields"].items()}
    assert (fields["first_name"], fields["last_name"]) == ("Marie", "Dupont")
    assert pop["fields"]["phone"]["source"] == "caller_id"
    metrics = lookup_of(cti).metrics()
    assert metrics["pops_by_status"] == {"found": 1}
    assert metrics["directory"]["hits"] == 1


async def test_a_slow_directory_sends_the_pop_after_the_offer_to_the_agent(
    cti: Hotline, directory: DirectoryProcess
) -> None:
    setup = await setup_campaign(cti, agents=1)
    [agent_id] = setup["agent_ids"]
    await ready(cti, agent_id)
    await directory.set_faults(mode="slow", delay_ms=BUDGET_MS // 2)

    call_id = await incoming(cti, "pop-late", LISTED)
    offer = await offered_event(cti, call_id)
    cti_ready = await cti_ready_event(cti, call_id)

    assert offer.data["screen_pop"] is None  # the offer did not wait
    assert cti_ready.seq > offer.seq
    assert cti_ready.agent_id == agent_id  # routed to the volunteer holding the call
    assert cti_ready.data["status"] == "found"


@pytest.mark.parametrize(
    ("fault", "status", "counter"),
    [
        ({"mode": "slow", "delay_ms": 3 * BUDGET_MS}, "timeout", "timeouts"),
        ({"mode": "http500"}, "error", "errors"),
        ({"mode": "malformed"}, "error", "errors"),
        ({"mode": "wrong_content_type"}, "error", "errors"),
    ],
)
async def test_directory_faults_never_touch_the_call(
    cti: Hotline,
    directory: DirectoryProcess,
    fault: dict[str, Any],
    status: str,
    counter: str,
) -> None:
    setup = await setup_campaign(cti, agents=1)
    [agent_id] = setup["agent_ids"]
    await ready(cti, agent_id)
    await directory.set_faults(**fault)

    call_id = await incoming(cti, f"fault-{fault['mode']}", LISTED)
    offer = await offered_event(cti, call_id)
    cti_ready = await cti_ready_event(cti, call_id)

    call = (await cti.http.get(f"/calls/{call_id}")).json()
    assert call["state"] == "offered" and call["agent_id"] == agent_id
    assert offer.data["screen_pop"] is None or offer.data["screen_pop"]["status"] == status
    pop = cti_ready.data
    assert pop["status"] == status
    assert pop["note"] == "Directory unavailable: ask for details."
    assert pop["fields"]["phone"]["value"] == "+33123456789"  # the caller id still helps
    directory_metrics = lookup_of(cti).metrics()["directory"]
    assert directory_metrics[counter] == 1
    assert directory_metrics["hits"] == 0
    if fault["mode"] == "slow":
        assert cti_ready.seq > offer.seq


async def test_refused_connection_and_the_breaker(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await hotline_factory(
        directory_url=f"http://127.0.0.1:{free_port()}",  # nobody listens
        directory_breaker_failures=2,
        directory_breaker_reset_seconds=60,
    )
    await setup_campaign(hotline, agents=0)
    ids = [await incoming(hotline, f"refused-{n}", f"01 23 45 67 0{n}") for n in range(3)]
    pops = [(await cti_ready_event(hotline, call_id)).data for call_id in ids]

    assert [p["status"] for p in pops] == ["error", "error", "breaker_open"]
    metrics = lookup_of(hotline).metrics()["directory"]
    assert metrics["errors_by_kind"]["connect"] == 2
    assert metrics["breaker_state"] == "open"
    assert metrics["breaker_rejections"] == 1
    for call_id in ids:
        call = (await hotline.http.get(f"/calls/{call_id}")).json()
        assert call["state"] == "queued"


async def test_the_breaker_opens_on_errors_and_closes_when_the_directory_is_back(
    cti: Hotline, directory: DirectoryProcess
) -> None:
    await setup_campaign(cti, agents=0)
    await directory.set_faults(mode="http500")
    for n in range(4):
        await cti_ready_event(cti, await incoming(cti, f"breaker-{n}", f"01 45 45 45 0{n}"))
    metrics = lookup_of(cti).metrics()["directory"]
    assert metrics["breaker_opens"] == 1
    assert metrics["breaker_rejections"] == 1  # the fourth call never asked the directory
    await directory.set_faults()
    probes = iter(range(1000))

    async def closed_again() -> bool:
        call_id = await incoming(cti, f"probe-{next(probes)}", LISTED)
        pop = (await cti_ready_event(cti, call_id)).data
        return bool(pop["status"] == "found")

    await wait_for(closed_again, timeout=5)
    assert lookup_of(cti).metrics()["directory"]["breaker_state"] == "closed"


async def test_withheld_and_invalid_numbers_skip_the_look_up(cti: Hotline) -> None:
    setup = await setup_campaign(cti, agents=1)
    [agent_id] = setup["agent_ids"]
    await ready(cti, agent_id)

    call_id = await incoming(cti, "withheld", "anonymous")
    offer = await offered_event(cti, call_id)

    call = (await cti.http.get(f"/calls/{call_id}")).json()
    assert call["caller_number"] is None
    assert call["caller_number_issue"] == "withheld"  # the reason, on the call
    assert offer.data["caller_issue"] == "withheld"
    assert offer.data["screen_pop"] is None
    async with cti.db.read() as session:
        assert await session.get(ScreenPop, call_id) is None
    assert lookup_of(cti).metrics()["directory"]["lookups"] == 0


def test_supervisors_see_the_look_up_outcome_but_not_the_caller() -> None:
    pop = {"status": "found", "returning_donor": False, "cached": True, "note": "n",
           "caller": {"number": "+33123456789"}, "fields": {"last_name": {"value": "Dupont"}},
           "history": {}}  # fmt: skip
    routing = {"campaign_id": 1, "queue_id": 2, "call_id": 3, "agent_id": 4}
    cti_ready = {"type": "call.cti_ready", "seq": 9, "at": "t", "data": {**pop, **routing}}
    offered = {"type": "call.offered", "seq": 8, "at": "t",
               "data": {"screen_pop": pop, "caller": "+33123456789", **routing}}  # fmt: skip

    assert view_for("agent", cti_ready) is cti_ready
    assert view_for("supervisor", cti_ready)["data"] == {
        "status": "found", "returning_donor": False, "cached": True, **routing
    }  # fmt: skip
    assert "screen_pop" not in view_for("supervisor", offered)["data"]
    assert view_for("agent", offered)["data"]["screen_pop"] == pop


async def test_a_transferred_caller_keeps_the_pop_on_the_next_leg(cti: Hotline) -> None:
    setup = await setup_campaign(cti, agents=2)
    first, specialist = setup["agent_ids"]
    r = await cti.http.post(
        "/queues",
        json={"campaign_id": setup["campaign_id"], "name": "specialists", "required_skill": "sp"},
    )
    assert r.status_code == 201, r.text
    specialists_id = r.json()["id"]
    await cti.http.patch(f"/agents/{specialist}", json={"skills": {"sp": 1}})
    call_id = await incoming(cti, "transfer-pop", LISTED)
    pop = (await cti_ready_event(cti, call_id)).data
    await ready(cti, first)
    await offered_event(cti, call_id)
    assert (await cti.http.post(f"/agents/{first}/answer")).status_code == 200

    r = await cti.http.post(f"/agents/{first}/transfer", json={"queue_id": specialists_id})
    assert r.status_code == 200, r.text
    [(leg_id,)] = await cti.sql("select id from calls where parent_call_id = :p", p=call_id)
    await ready(cti, specialist)
    offer = await offered_event(cti, leg_id)

    assert offer.agent_id == specialist
    assert offer.data["screen_pop"] == pop  # no second look-up
    assert lookup_of(cti).metrics()["directory"]["lookups"] == 1

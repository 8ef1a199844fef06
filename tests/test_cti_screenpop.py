"""Screen pops: the merge and its precedence, then ``CallerLookup.lookup`` end to end.

The end-to-end tests run on SQLite and PostgreSQL (the ``hotline`` fixture) with the
built-in directory as a separate process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from app.acd.call_records import CALL_RECORDS
from app.acd.models import Call
from app.cti.directory import DirectoryResult, ErrorKind, Status
from app.cti.directory_server import DirectoryProcess
from app.cti.models import ScreenPop
from app.cti.screenpop import CallHistory, ReturningDonor, assemble
from app.cti.service import EVENT_TYPE, CallerLookup, stored_pop
from app.realtime.models import Event
from tests.conftest import Hotline, setup_campaign, wait_for
from tests.procs import free_port

NUMBER = "+33123456789"
WHEN = dt.datetime(2026, 11, 20, 18, 30, tzinfo=dt.UTC)

DIRECTORY = DirectoryResult(
    Status.FOUND,
    number=NUMBER,
    first_name="Marie",
    last_name="Dupont",
    address_lines=("12 rue de Rivoli",),
    postcode="75004",
    city="Paris",
    email="marie.dupont@example.org",
)
DONOR = ReturningDonor(
    first_name="Marie",
    last_name="Dupont-Leroy",
    address_lines=("5 place de la Mairie",),
    postcode="35000",
    city="Rennes",
    email="mdl@example.org",
    phone=NUMBER,
    pledges=2,
    total_minor=7500,
    currency="EUR",
    last_pledge_at=WHEN,
)


def values(pop: dict[str, Any]) -> dict[str, Any]:
    return {name: f["value"] for name, f in pop["fields"].items()}


def sources(pop: dict[str, Any]) -> dict[str, Any]:
    return {name: f["source"] for name, f in pop["fields"].items()}


# --- assembly ----------------------------------------------------------------------


def test_directory_details_are_to_be_confirmed() -> None:
    pop = assemble(number=NUMBER, issue=None, directory=DIRECTORY, history=CallHistory())
    assert values(pop) == {
        "first_name": "Marie",
        "last_name": "Dupont",
        "address_lines": ["12 rue de Rivoli"],
        "postcode": "75004",
        "city": "Paris",
        "email": "marie.dupont@example.org",
        "phone": NUMBER,
    }
    assert set(sources(pop).values()) == {"directory", "caller_id"}
    assert sources(pop)["phone"] == "caller_id"
    assert all(f["confirm"] for f in pop["fields"].values())
    assert pop["fields"]["phone"]["display"] == "01 23 45 67 89"
    assert pop["status"] == "found"
    assert pop["history"] == {"earlier_calls": 0, "last_call_at": None, "pledges": None}
    assert pop["note"] == "Details from the phone directory: confirm them with the caller."
    assert pop["caller"] == {"number": NUMBER, "display": "01 23 45 67 89", "issue": None}


def test_own_pledge_records_beat_the_directory() -> None:
    pop = assemble(
        number=NUMBER,
        issue=None,
        directory=DIRECTORY,
        history=CallHistory(2, WHEN),
        donor=DONOR,
    )
    assert values(pop) == {
        "first_name": "Marie",
        "last_name": "Dupont-Leroy",
        "address_lines": ["5 place de la Mairie"],
        "postcode": "35000",
        "city": "Rennes",
        "email": "mdl@example.org",
        "phone": NUMBER,
    }
    assert {n: s for n, s in sources(pop).items() if n != "phone"} == dict.fromkeys(
        ("first_name", "last_name", "address_lines", "postcode", "city", "email"), "pledges"
    )
    assert not pop["fields"]["city"]["confirm"]  # the donor gave it
    assert pop["fields"]["phone"]["confirm"]
    assert pop["returning_donor"] is True
    assert pop["history"] == {
        "earlier_calls": 2,
        "last_call_at": "2026-11-20T18:30:00+00:00",
        "pledges": {
            "count": 2,
            "total_minor": 7500,
            "currency": "EUR",
            "last_pledge_at": "2026-11-20T18:30:00+00:00",
        },
    }
    assert pop["note"] == (
        "Returning donor (2 pledges): check you are speaking to Marie Dupont-Leroy. "
        "Called before: 2 earlier calls."
    )


def test_directory_fills_what_the_pledges_lack_group_by_group() -> None:
    donor = ReturningDonor(
        first_name=None,
        last_name="Dupont",
        address_lines=(),
        postcode=None,
        city=None,
        email=None,
        phone=NUMBER,
        pledges=1,
        total_minor=2000,
        currency="EUR",
        last_pledge_at=WHEN,
    )
    pop = assemble(
        number=NUMBER, issue=None, directory=DIRECTORY, history=CallHistory(), donor=donor
    )
    # The name is the donor's, whole: no first name borrowed from the directory.
    assert pop["fields"]["first_name"] == {"value": None, "source": None, "confirm": False}
    assert pop["fields"]["last_name"]["source"] == "pledges"
    # Address and e-mail the donor never gave come from the directory, to confirm.
    assert pop["fields"]["city"] == {"value": "Paris", "source": "directory", "confirm": True}
    assert pop["fields"]["email"]["source"] == "directory"


@pytest.mark.parametrize(
    ("issue", "status", "note"),
    [
        ("withheld", Status.SKIPPED_WITHHELD, "Number withheld: ask for details."),
        ("invalid", Status.SKIPPED_INVALID, "Caller number not recognised: ask for details."),
    ],
)
def test_no_usable_number_gives_an_empty_form(issue: str, status: Status, note: str) -> None:
    pop = assemble(
        number=None, issue=issue, directory=DirectoryResult(status), history=CallHistory()
    )
    assert values(pop) == {
        "first_name": None,
        "last_name": None,
        "address_lines": [],
        "postcode": None,
        "city": None,
        "email": None,
        "phone": None,
    }
    assert all(f["source"] is None and not f["confirm"] for f in pop["fields"].values())
    assert pop["status"] == status.value
    assert pop["note"] == note
    assert pop["caller"] == {"number": None, "display": None, "issue": issue}


@pytest.mark.parametrize(
    "result",
    [
        DirectoryResult(Status.TIMEOUT, number=NUMBER),
        DirectoryResult(Status.ERROR, number=NUMBER, error_kind=ErrorKind.HTTP_5XX),
        DirectoryResult(Status.BREAKER_OPEN, number=NUMBER),
    ],
)
def test_directory_trouble_keeps_the_caller_id(result: DirectoryResult) -> None:
    pop = assemble(number=NUMBER, issue=None, directory=result, history=CallHistory(1, WHEN))
    assert values(pop)["phone"] == NUMBER
    assert values(pop)["last_name"] is None
    assert pop["status"] == result.status.value
    assert pop["note"] == "Directory unavailable: ask for details. Called before: 1 earlier call."


def test_not_listed_and_foreign_number() -> None:
    number = "+442079460018"
    pop = assemble(
        number=number,
        issue=None,
        directory=DirectoryResult(Status.NOT_FOUND, number=number),
        history=CallHistory(),
    )
    assert pop["fields"]["phone"]["display"] == "+44 20 7946 0018"
    assert pop["note"] == "Number not in the directory: ask for details."


# --- CallerLookup end to end -------------------------------------------------------


@pytest.fixture
async def caller_lookup(
    hotline: Hotline, directory: DirectoryProcess
) -> AsyncIterator[CallerLookup]:
    # These tests are about answers, not time: a budget a loaded machine cannot miss.
    settings = hotline.settings.model_copy(
        update={"directory_url": directory.base_url, "directory_budget_ms": 5000}
    )
    service = CallerLookup(settings, CALL_RECORDS)
    await service.start()
    yield service
    await service.stop()


async def incoming(hotline: Hotline, provider_id: str, caller: str | None, **kw: Any) -> int:
    r = await hotline.incoming(provider_id, caller, **kw)
    assert r.status_code == 200, r.text
    call_id: int = r.json()["call"]["id"]
    return call_id


async def cti_events(hotline: Hotline, call_id: int) -> list[Event]:
    async with hotline.db.read() as session:
        stmt = select(Event).where(Event.type == EVENT_TYPE, Event.call_id == call_id)
        return list((await session.execute(stmt.order_by(Event.seq))).scalars())


async def test_lookup_stores_the_pop_and_emits_cti_ready(
    hotline: Hotline, caller_lookup: CallerLookup
) -> None:
    setup = await setup_campaign(hotline, agents=1)
    call_id = await incoming(hotline, "cti-found", "01 23 45 67 89")

    pop = await caller_lookup.lookup(hotline.db, call_id)

    assert pop["status"] == "found"
    assert values(pop)["last_name"] == "Dupont"
    assert pop["fields"]["phone"] == {
        "value": NUMBER,
        "source": "caller_id",
        "confirm": True,
        "display": "01 23 45 67 89",
    }
    async with hotline.db.read() as session:
        assert await stored_pop(session, call_id) == pop
        row = await session.get(ScreenPop, call_id)
        assert row is not None and row.status == "found"
        assert row.created_at.tzinfo is not None
    [event] = await cti_events(hotline, call_id)
    assert event.campaign_id == setup["campaign_id"]
    assert event.queue_id == setup["queue_id"]
    assert event.agent_id is None  # nobody offered yet: the offer step reads the stored pop
    assert event.data == pop
    metrics = caller_lookup.metrics()
    assert metrics["pops"] == 1
    assert metrics["pops_by_status"] == {"found": 1}
    assert metrics["directory"]["hits"] == 1


async def test_earlier_calls_from_the_same_number_to_the_same_campaign(
    hotline: Hotline, caller_lookup: CallerLookup
) -> None:
    await setup_campaign(hotline, agents=1)
    other = await setup_campaign(hotline, agents=0, campaign={"dialled_numbers": ["+33800000002"]})
    assert other["campaign_id"]
    first = await incoming(hotline, "cti-1", "0612345678")
    r = await hotline.telephony({"type": "call.hangup", "call_id": "cti-1"})
    assert r.status_code == 200, r.text
    await incoming(hotline, "cti-elsewhere", "0612345678", dialled="+33800000002")
    await incoming(hotline, "cti-stranger", "0145454545")
    second = await incoming(hotline, "cti-2", "06 12 34 56 78")

    pop = await caller_lookup.lookup(hotline.db, second)

    async with hotline.db.read() as session:
        first_call = await session.get(Call, first)
        assert first_call is not None
        first_at = first_call.received_at.isoformat()
    assert pop["history"] == {"earlier_calls": 1, "last_call_at": first_at, "pledges": None}
    assert pop["status"] == "not_found"
    assert pop["note"] == (
        "Number not in the directory: ask for details. Called before: 1 earlier call."
    )
    # The first call had no earlier call.
    assert (await caller_lookup.lookup(hotline.db, first))["history"]["earlier_calls"] == 0


async def test_withheld_caller_gets_an_empty_form(
    hotline: Hotline, caller_lookup: CallerLookup
) -> None:
    await setup_campaign(hotline, agents=1)
    call_id = await incoming(hotline, "cti-withheld", None)
    pop = await caller_lookup.lookup(hotline.db, call_id)
    assert pop["status"] == "skipped_withheld"
    assert pop["note"] == "Number withheld: ask for details."
    assert all(f["value"] in (None, []) for f in pop["fields"].values())
    assert len(await cti_events(hotline, call_id)) == 1
    assert caller_lookup.metrics()["directory"]["skipped_withheld"] == 1


async def test_cti_ready_goes_to_the_agent_holding_the_call(
    hotline: Hotline, caller_lookup: CallerLookup
) -> None:
    setup = await setup_campaign(hotline, agents=1)
    [agent_id] = setup["agent_ids"]
    call_id = await incoming(hotline, "cti-offered", "01 23 45 67 89")
    r = await hotline.http.post(f"/agents/{agent_id}/ready")
    assert r.status_code == 200, r.text

    async def offered() -> bool:
        call = (await hotline.http.get(f"/calls/{call_id}")).json()
        return bool(call["state"] == "offered")

    await wait_for(offered)
    await caller_lookup.lookup(hotline.db, call_id)
    [event] = await cti_events(hotline, call_id)
    assert event.agent_id == agent_id


async def test_a_second_lookup_replaces_the_pop(
    hotline: Hotline, caller_lookup: CallerLookup
) -> None:
    await setup_campaign(hotline, agents=1)
    call_id = await incoming(hotline, "cti-twice", "01 23 45 67 89")
    first = await caller_lookup.lookup(hotline.db, call_id)
    second = await caller_lookup.spawn(hotline.db, call_id)
    assert second is not None and second["cached"] and not first["cached"]
    async with hotline.db.read() as session:
        rows = (await session.execute(select(ScreenPop).where(ScreenPop.call_id == call_id))).all()
        assert len(rows) == 1
        assert await stored_pop(session, call_id) == second
    assert len(await cti_events(hotline, call_id)) == 2


async def test_directory_down_still_gives_a_pop(hotline: Hotline) -> None:
    settings = hotline.settings.model_copy(
        update={"directory_url": f"http://127.0.0.1:{free_port()}"}
    )
    service = CallerLookup(settings, CALL_RECORDS)
    await service.start()
    try:
        await setup_campaign(hotline, agents=1)
        call_id = await incoming(hotline, "cti-down", "01 23 45 67 89")
        pop = await service.lookup(hotline.db, call_id)
    finally:
        await service.stop()
    assert pop["status"] == "error"
    assert values(pop)["phone"] == NUMBER
    assert pop["note"] == "Directory unavailable: ask for details."
    assert service.metrics()["directory"]["errors_by_kind"]["connect"] == 1
    async with hotline.db.read() as session:
        assert await stored_pop(session, call_id) == pop


async def test_unknown_call_is_refused_and_spawn_logs_it(
    hotline: Hotline, caller_lookup: CallerLookup
) -> None:
    from app.errors import NotFound

    with pytest.raises(NotFound):
        await caller_lookup.lookup(hotline.db, 987654321)
    assert await caller_lookup.spawn(hotline.db, 987654321) is None
    assert caller_lookup.metrics()["failed"] == 1


async def test_the_caller_number_given_with_the_call_starts_the_directory_early(
    hotline: Hotline, caller_lookup: CallerLookup
) -> None:
    from app.phone_numbers import CallerNumber

    await setup_campaign(hotline, agents=1)
    call_id = await incoming(hotline, "cti-early", "01 23 45 67 89")
    pop = await caller_lookup.lookup(hotline.db, call_id, CallerNumber(NUMBER, None))
    assert values(pop)["last_name"] == "Dupont"
    # A number that is not the call's is not trusted: the call's own number is used.
    other = await incoming(hotline, "cti-early-2", "0612345678")
    pop = await caller_lookup.lookup(hotline.db, other, CallerNumber(NUMBER, None))
    assert pop["caller"]["number"] == "+33612345678"
    assert pop["status"] == "not_found"

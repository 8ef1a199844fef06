"""A volunteer transfers a caller out only to numbers the campaign allows.

Toll fraud: a transfer out is a call the hotline pays for, so a premium-rate number
would earn its holder money on the hotline's bill. The campaign lists exact numbers
and prefixes (``+3314*``); premium-rate and special numbers are refused even under a
prefix, unless listed exactly (app/acd/transfer_numbers.py, app/special_numbers.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.special_numbers import SPECIAL_PREFIXES, short_number, special_kind
from tests.conftest import Hotline, setup_campaign, wait_for


async def _connected_call(hotline: Hotline, agent_id: int, provider_id: str) -> int:
    await hotline.http.post(f"/agents/{agent_id}/ready")
    r = await hotline.incoming(provider_id)
    call_id: int = r.json()["call"]["id"]

    async def offered() -> bool:
        return (await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "offered"

    await wait_for(offered)
    await hotline.telephony({"type": "seat.answered", "call_id": provider_id})
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "on_call"
    return call_id


async def _transfer_commands(hotline: Hotline, provider_id: str) -> list[str]:
    rows = await hotline.sql(
        "select args from telephony_commands where provider_call_id = :p and command = 'transfer'",
        p=provider_id,
    )
    return [(json.loads(a) if isinstance(a, str) else a)["number"] for (a,) in rows]


async def _trace(hotline: Hotline, call_id: int, agent_id: int) -> tuple[Any, ...]:
    """What a transfer would change: the call, the agent, the commands and events."""
    call = (await hotline.http.get(f"/calls/{call_id}")).json()
    agent = (await hotline.http.get(f"/agents/{agent_id}")).json()
    counts = await hotline.sql(
        "select (select count(*) from telephony_commands),"
        " (select count(*) from events where call_id = :c or agent_id = :a)",
        c=call_id,
        a=agent_id,
    )
    return call["state"], call["end_reason"], agent["state"], agent["current_call_id"], counts


# --- the campaign's list ----------------------------------------------------------------


async def test_transfer_numbers_are_stored_in_e164_and_patterns_without_spaces(
    hotline: Hotline,
) -> None:
    r = await hotline.http.post(
        "/campaigns",
        json={
            "name": "Telethon",
            "transfer_numbers": ["01 42 00 00 00", "+33 1 43*", "+33142000000", "0899 00 00 01"],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["transfer_numbers"] == ["+33142000000", "+33143*", "+33899000001"]
    campaign_id = r.json()["id"]
    assert (await hotline.http.get(f"/campaigns/{campaign_id}")).json()["transfer_numbers"] == [
        "+33142000000",
        "+33143*",
        "+33899000001",
    ]
    r = await hotline.http.patch(f"/campaigns/{campaign_id}", json={"transfer_numbers": ["+44*"]})
    assert r.status_code == 200, r.text
    assert r.json()["transfer_numbers"] == ["+44*"]
    # A campaign made without the field allows no transfer out.
    r = await hotline.http.post("/campaigns", json={"name": "Other"})
    assert r.json()["transfer_numbers"] == []


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        (["3949"], "transfer_numbers.0"),  # French short number: no outside form
        (["+33142000000", "118 712"], "transfer_numbers.1"),  # directory enquiries
        (["1014"], "transfer_numbers.0"),  # operator's service number
        (["hello"], "transfer_numbers.0"),
        (["+33 1 23 45 67 89 0"], "transfer_numbers.0"),  # too long: not a valid number
        (["*"], "transfer_numbers.0"),
        (["+*"], "transfer_numbers.0"),
        (["+33*1*"], "transfer_numbers.0"),
        (["0142*"], "transfer_numbers.0"),  # patterns are E.164 prefixes
        (["+0*"], "transfer_numbers.0"),
        ([""], "transfer_numbers.0"),
        (["+33142000000"] * 201, "transfer_numbers"),
        (None, "transfer_numbers"),
    ],
)
async def test_bad_transfer_numbers_are_refused_and_change_nothing(
    hotline: Hotline, entries: list[str] | None, field: str
) -> None:
    r = await hotline.http.post(
        "/campaigns", json={"name": "Telethon", "transfer_numbers": ["+33142000000"]}
    )
    campaign = r.json()
    r = await hotline.http.patch(f"/campaigns/{campaign['id']}", json={"transfer_numbers": entries})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("invalid", field), r.json()
    assert (await hotline.http.get(f"/campaigns/{campaign['id']}")).json() == campaign
    if entries is not None:
        r = await hotline.http.post(
            "/campaigns", json={"name": "Another", "transfer_numbers": entries}
        )
        assert r.status_code == 422, r.text
        assert (r.json()["code"], r.json()["field"]) == ("invalid", field), r.json()
    assert len((await hotline.http.get("/campaigns")).json()) == 1


# --- the transfer ------------------------------------------------------------------------


async def test_refused_transfers_change_nothing_and_allowed_ones_go_out(hotline: Hotline) -> None:
    setup = await setup_campaign(
        hotline,
        agents=1,
        campaign={
            "transfer_numbers": [
                "+33*",  # any French number...
                "+44*",
                "+979*",
                "+33899000001",  # ...and this one premium-rate number, listed exactly
            ]
        },
    )
    agent_id = setup["agent_ids"][0]
    call_id = await _connected_call(hotline, agent_id, "tn-1")
    before = await _trace(hotline, call_id, agent_id)
    assert before[:4] == ("connected", None, "on_call", call_id)
    refused = [
        "+33899123456",  # 089: premium rate, under "+33*" but not listed exactly
        "+33891000000",
        "+33812345678",  # 081: value-added
        "+33821234567",  # 082: shared cost
        "+449012345678",  # UK 09 premium rate, under "+44*"
        "+447012345678",  # UK 070 personal number
        "+979123456789",  # ITU International Premium Rate Service, under "+979*"
        "+3214000000",  # Belgium: not listed at all
        "+331234567890",  # too long: not a valid number
    ]
    for number in refused:
        r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"number": number})
        assert r.status_code == 422, (number, r.text)
        body = r.json()
        assert (body["code"], body["field"]) == ("transfer_number_not_allowed", "number"), body
        assert await _trace(hotline, call_id, agent_id) == before, number
    assert await _transfer_commands(hotline, "tn-1") == []

    # The premium-rate number listed exactly goes out.
    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"number": "+33899000001"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "wrap_up"
    assert (await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "transferred"
    assert await _transfer_commands(hotline, "tn-1") == ["+33899000001"]

    # An ordinary number under a prefix goes out too.
    assert (await hotline.http.post(f"/agents/{agent_id}/wrap-up/end", json={})).status_code == 200
    second = await _connected_call(hotline, agent_id, "tn-2")
    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"number": "+33612345678"})
    assert r.status_code == 200, r.text
    assert (await hotline.http.get(f"/calls/{second}")).json()["end_reason"] == "transferred_out"
    assert await _transfer_commands(hotline, "tn-2") == ["+33612345678"]


async def test_a_campaign_without_transfer_numbers_allows_no_transfer_out(
    hotline: Hotline,
) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    call_id = await _connected_call(hotline, agent_id, "tn-3")
    before = await _trace(hotline, call_id, agent_id)
    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"number": "+33142000000"})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("transfer_number_not_allowed", "number")
    assert await _trace(hotline, call_id, agent_id) == before
    # Once the admin lists it, the same transfer goes out.
    r = await hotline.http.patch(
        f"/campaigns/{setup['campaign_id']}", json={"transfer_numbers": ["+33142000000"]}
    )
    assert r.status_code == 200, r.text
    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"number": "+33142000000"})
    assert r.status_code == 200, r.text
    assert await _transfer_commands(hotline, "tn-3") == ["+33142000000"]


# --- the special ranges ---------------------------------------------------------------


@pytest.mark.parametrize("prefix", sorted(SPECIAL_PREFIXES))
def test_every_listed_prefix_is_special(prefix: str) -> None:
    number = (prefix + "1234567890123")[:13]
    assert special_kind(number) == SPECIAL_PREFIXES[prefix]


@pytest.mark.parametrize(
    "number",
    [
        "+33142000000",  # Paris, fixed line
        "+33612345678",  # mobile
        "+33800123456",  # free phone
        "+33806123456",  # 0806: ordinary rate
        "+33912345678",  # VoIP
        "+442079460000",  # London
        "+441182000000",  # Reading (0118: a geographic area code, not directory enquiries)
        "+4930123456",  # Berlin
        "+12125550100",  # New York
    ],
)
def test_ordinary_numbers_are_not_special(number: str) -> None:
    assert special_kind(number) is None


@pytest.mark.parametrize(
    "number", ["+19005550100", "+34803123456", "+39899123456", "+41900123456", "+3290012345"]
)
def test_premium_ranges_of_other_countries_come_from_the_numbering_metadata(number: str) -> None:
    assert special_kind(number) is not None


def test_french_short_numbers() -> None:
    assert all(short_number(n) for n in ["3949", "36 65", "118 712", "118218", "1014"])
    assert not any(short_number(n) for n in ["01 42 00 00 00", "15", "+33142000000", "39490"])

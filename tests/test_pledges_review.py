"""The review of large pledges over the real API, on both databases: a pledge over
the campaign's review amount is listed as flagged until a supervisor or organiser
approves it (audited with their note), corrects its amount or cancels it with a
reason; volunteers and other campaigns are refused, a card number in the note is
refused with nothing changed."""

from __future__ import annotations

from typing import Any

from app.auth.service import Role
from tests.conftest import Hotline
from tests.pledge_helpers import key, pledge_body, pledge_setup, user_headers

CARD = "4111 1111 1111 1111"


async def _large_pledge(hotline: Hotline, setup: dict[str, Any]) -> str:
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(setup["call_id"], amount_minor=80_000),
        headers={**setup["agent_headers"], **key()},
    )
    assert r.status_code == 201 and r.json()["flagged_for_review"] is True, r.text
    return str(r.json()["reference"])


async def _flagged(hotline: Hotline) -> tuple[dict[str, Any], str, dict[str, str]]:
    setup = await pledge_setup(hotline, pledge_review_minor=50_000)
    ref = await _large_pledge(hotline, setup)
    boss = await user_headers(hotline, Role.SUPERVISOR, campaign_id=setup["campaign_id"])
    return setup, ref, boss


async def _review_list(hotline: Hotline, headers: dict[str, str]) -> list[str]:
    r = await hotline.http.get("/pledges", params={"flagged": "true"}, headers=headers)
    return [p["reference"] for p in r.json()]


async def test_a_supervisor_approves_with_a_note(hotline: Hotline) -> None:
    setup, ref, boss = await _flagged(hotline)
    assert await _review_list(hotline, boss) == [ref]
    r = await hotline.http.post(
        f"/pledges/{ref}/approve", json={"note": "Called the donor back: confirmed"}, headers=boss
    )
    assert r.status_code == 200, r.text
    assert r.json()["flagged_for_review"] is False
    assert await _review_list(hotline, boss) == []
    audit = (await hotline.http.get(f"/pledges/{ref}/audit")).json()
    approved = [a for a in audit if a["action"] == "approved"]
    assert len(approved) == 1 and approved[0]["actor"].startswith("supervisor-")
    assert approved[0]["after"] == {
        "flagged_for_review": False,
        "review_note": "Called the donor back: confirmed",
    }
    updated = await hotline.sql(
        "SELECT count(*) FROM events WHERE type = 'pledge.updated' AND campaign_id = :c",
        c=setup["campaign_id"],
    )
    assert updated == [(1,)]
    # Approved once: again is a conflict; an address fix keeps it approved.
    r = await hotline.http.post(f"/pledges/{ref}/approve", json={}, headers=boss)
    assert (r.status_code, r.json()["code"]) == (409, "not_flagged")
    r = await hotline.http.patch(f"/pledges/{ref}", json={"city": "Lyon"}, headers=boss)
    assert r.status_code == 200 and r.json()["flagged_for_review"] is False
    # A new large amount is looked at again.
    r = await hotline.http.patch(f"/pledges/{ref}", json={"amount_minor": 90_000}, headers=boss)
    assert r.json()["flagged_for_review"] is True


async def test_a_correction_or_a_cancellation_takes_it_off_the_list(hotline: Hotline) -> None:
    setup, ref, boss = await _flagged(hotline)
    other = await _large_pledge(hotline, setup)
    # The donor meant 800.00, not 80 000.00 (in cents: a typing slip).
    r = await hotline.http.patch(f"/pledges/{ref}", json={"amount_minor": 8_000}, headers=boss)
    assert r.status_code == 200 and r.json()["flagged_for_review"] is False
    assert await _review_list(hotline, boss) == [other]
    r = await hotline.http.post(f"/pledges/{other}/cancel", json={"reason": "fake"}, headers=boss)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await hotline.http.post(f"/pledges/{other}/approve", json={}, headers=boss)
    assert (r.status_code, r.json()["code"]) == (409, "pledge_cancelled")


async def test_who_may_approve_and_bad_notes(hotline: Hotline) -> None:
    setup, ref, boss = await _flagged(hotline)
    r = await hotline.http.post(f"/pledges/{ref}/approve", json={}, headers=setup["agent_headers"])
    assert r.status_code == 403, r.text
    b = await hotline.http.post(
        "/campaigns", json={"name": "Campaign B", "dialled_numbers": ["+33800000002"]}
    )
    stranger = await user_headers(hotline, Role.SUPERVISOR, campaign_id=b.json()["id"])
    r = await hotline.http.post(f"/pledges/{ref}/approve", json={}, headers=stranger)
    assert r.status_code == 403, r.text
    r = await hotline.http.post(
        f"/pledges/{ref}/approve", json={"note": f"card {CARD}"}, headers=boss
    )
    assert (r.status_code, r.json()["field"]) == (422, "note")
    assert CARD not in r.text
    r = await hotline.http.post(f"/pledges/{ref}/approve", json={"note": "x" * 501}, headers=boss)
    assert (r.status_code, r.json()["field"]) == (422, "note")
    r = await hotline.http.post("/pledges/ZZZ-ZZZ/approve", json={}, headers=boss)
    assert r.status_code == 404, r.text
    assert await _review_list(hotline, boss) == [ref]
    audit = (await hotline.http.get(f"/pledges/{ref}/audit")).json()
    assert [a["action"] for a in audit] == ["created"]
    # An organiser may approve too.
    organiser = await user_headers(hotline, Role.ORGANISER)
    r = await hotline.http.post(f"/pledges/{ref}/approve", json={}, headers=organiser)
    assert r.status_code == 200, r.text

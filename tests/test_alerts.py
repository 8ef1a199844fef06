"""Supervisor alerts kept and acknowledged (app/alerts) over the real API, on both
databases: the alerts the shipped rules raise from the webhook are listed after the
fact, filtered by kind and acknowledgement; the first acknowledgement is kept, with
its one event; other campaigns and bad ids are refused."""

from __future__ import annotations

from typing import Any

from app.auth.service import Role
from tests.conftest import Hotline, setup_campaign
from tests.pledge_helpers import user_headers

PRANKSTER = "06 11 22 33 44"


async def _prank_alerts(hotline: Hotline) -> dict[str, Any]:
    """A campaign whose shipped prank rule raised three alerts (calls 3, 4 and 5)."""
    setup = await setup_campaign(hotline, agents=0)
    for n in range(5):
        provider_id = f"alert-{setup['campaign_id']}-{n}"
        r = await hotline.incoming(provider_id, caller=PRANKSTER)
        assert r.status_code == 200, r.text
        r = await hotline.telephony({"type": "call.hangup", "call_id": provider_id})
        assert r.status_code == 200, r.text
    setup["boss"] = await user_headers(hotline, Role.SUPERVISOR, campaign_id=setup["campaign_id"])
    setup["other_boss"] = await user_headers(
        hotline, Role.SUPERVISOR, campaign_id=setup["campaign_id"]
    )
    return setup


async def test_alerts_are_kept_filtered_and_acknowledged_once(hotline: Hotline) -> None:
    setup = await _prank_alerts(hotline)
    http, boss = hotline.http, setup["boss"]
    r = await http.get("/alerts", headers=boss)
    assert r.status_code == 200, r.text
    alerts = r.json()
    assert len(alerts) == 3
    assert [a["seq"] for a in alerts] == sorted((a["seq"] for a in alerts), reverse=True)
    assert {a["kind"] for a in alerts} == {"rule"}
    assert all("a appelé" in a["text"] for a in alerts)  # the campaign's language
    assert all(a["acknowledged_by"] is None for a in alerts)
    assert (await http.get("/alerts/kinds", headers=boss)).json() == ["rule"]

    first = alerts[-1]["seq"]
    r = await http.post(f"/alerts/{first}/acknowledge", headers=boss)
    assert r.status_code == 200, r.text
    acked = r.json()
    assert acked["acknowledged_by"].startswith("supervisor-") and acked["acknowledged_at"]
    # A second supervisor's click keeps the first acknowledgement, and says so.
    r = await http.post(f"/alerts/{first}/acknowledge", headers=setup["other_boss"])
    assert r.json()["acknowledged_by"] == acked["acknowledged_by"]
    events = await hotline.sql(
        "SELECT count(*) FROM events WHERE type = 'supervisor.alert_acknowledged'"
    )
    assert events == [(1,)]

    # After a reload: the same list, the acknowledgement in it; filters.
    listed = {a["seq"]: a for a in (await http.get("/alerts", headers=boss)).json()}
    assert listed[first]["acknowledged_by"] == acked["acknowledged_by"]
    open_ = (await http.get("/alerts", params={"acknowledged": "false"}, headers=boss)).json()
    assert first not in {a["seq"] for a in open_} and len(open_) == 2
    done = (await http.get("/alerts", params={"acknowledged": "true"}, headers=boss)).json()
    assert [a["seq"] for a in done] == [first]
    assert len((await http.get("/alerts", params={"kind": "rule"}, headers=boss)).json()) == 3
    assert (await http.get("/alerts", params={"kind": "stale_call"}, headers=boss)).json() == []


async def test_other_campaigns_and_bad_ids_are_refused(hotline: Hotline) -> None:
    setup = await _prank_alerts(hotline)
    other = await setup_campaign(hotline, agents=0, campaign={"dialled_numbers": ["+33800000002"]})
    stranger = await user_headers(hotline, Role.SUPERVISOR, campaign_id=other["campaign_id"])
    seq = (await hotline.http.get("/alerts", headers=setup["boss"])).json()[0]["seq"]
    r = await hotline.http.post(f"/alerts/{seq}/acknowledge", headers=stranger)
    assert r.status_code == 403, r.text
    r = await hotline.http.get(
        "/alerts", params={"campaign_id": setup["campaign_id"]}, headers=stranger
    )
    assert r.status_code == 403, r.text
    # Their own campaign has none.
    assert (await hotline.http.get("/alerts", headers=stranger)).json() == []
    r = await hotline.http.post("/alerts/999999999/acknowledge", headers=setup["boss"])
    assert (r.status_code, r.json()["field"]) == (404, "seq")
    # An event that is not an alert is not one.
    (not_alert,) = (
        await hotline.sql("SELECT min(seq) FROM events WHERE type <> 'supervisor.alert'")
    )[0]
    r = await hotline.http.post(f"/alerts/{not_alert}/acknowledge", headers=setup["boss"])
    assert r.status_code == 404, r.text
    # An admin names the campaign.
    r = await hotline.http.get("/alerts")
    assert (r.status_code, r.json()["field"]) == (422, "campaign_id")
    r = await hotline.http.get("/alerts", params={"campaign_id": setup["campaign_id"]})
    assert len(r.json()) == 3
    assert await hotline.sql("SELECT count(*) FROM alert_acknowledgements") == [(0,)]

"""The running roll-ups equal a full recount (issue 12, point 2), on both databases.

A seeded, deterministic mix of pledges (volunteers on calls, in several partner
organisations, and a supervisor's without a call), corrections (amount,
postcode, so the département moves), payments, cancelled payments and cancelled
pledges goes through the real HTTP API; then every roll-up row (campaign,
dimension, key: shards summed) equals what a scan of the pledges gives, and the
organiser's totals, read from the roll-ups only, agree with the pledges too.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import text

from app.auth.service import Role
from app.pledges import rollups
from tests.conftest import Hotline, setup_campaign
from tests.pledge_helpers import connected_call, key, pledge_body, user_headers

POSTCODES = ("75002", "69001", "13001", "20000", "97110", "")
PARTNERS = ("Rotary", "Lions Club", None)


async def _campaign(hotline: Hotline) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    slot = {
        "name": "Soirée",
        "starts_at": (now - dt.timedelta(hours=1)).isoformat(),
        "ends_at": (now + dt.timedelta(hours=2)).isoformat(),
    }
    setup = await setup_campaign(hotline, agents=3, campaign={"time_slots": [slot]})
    campaign_id = setup["campaign_id"]
    volunteers = []
    for n, agent_id in enumerate(setup["agent_ids"]):
        async with hotline.db.unit_of_work() as uow:
            await uow.session.execute(
                text("UPDATE agents SET partner_org = :p WHERE id = :a"),
                {"p": PARTNERS[n], "a": agent_id},
            )
        call_id = await connected_call(hotline, agent_id, f"roll-{campaign_id}-{n}")
        headers = await user_headers(
            hotline, Role.AGENT, campaign_id=campaign_id, agent_id=agent_id
        )
        volunteers.append((call_id, headers))
    return {
        "campaign_id": campaign_id,
        "volunteers": volunteers,
        "supervisor": await user_headers(hotline, Role.SUPERVISOR, campaign_id=campaign_id),
        "organiser": await user_headers(hotline, Role.ORGANISER),
    }


async def _mix(hotline: Hotline, setup: dict[str, Any], rng: random.Random, steps: int) -> None:
    http, organiser = hotline.http, setup["organiser"]
    references: list[str] = []
    for _ in range(steps):
        action = rng.choices(
            ("pledge", "correct", "pay", "unpay", "cancel"), weights=(5, 2, 3, 1, 1)
        )[0]
        if action == "pledge" or not references:
            postcode = rng.choice(POSTCODES)
            fields = {"amount_minor": rng.randrange(100, 200_000), "postcode": postcode}
            if not postcode:
                fields.update(city="", consent_tax_receipt=False)
            if rng.random() < 0.2:  # a supervisor's pledge without a call
                body = {
                    **pledge_body(0, **fields),
                    "call_id": None,
                    "campaign_id": setup["campaign_id"],
                }
                headers = setup["supervisor"]
            else:
                call_id, headers = rng.choice(setup["volunteers"])
                body = pledge_body(call_id, **fields)
            r = await http.post("/pledges", json=body, headers={**headers, **key()})
            assert r.status_code == 201, r.text
            references.append(r.json()["reference"])
            continue
        reference = rng.choice(references)
        if action == "correct":
            patch: dict[str, Any] = {"amount_minor": rng.randrange(100, 200_000)}
            if rng.random() < 0.5:
                patch["postcode"] = rng.choice(POSTCODES[:-1])
            r = await http.patch(f"/pledges/{reference}", json=patch, headers=organiser)
            assert r.status_code in (200, 409), r.text  # 409: cancelled
        elif action == "pay":
            amount = rng.randrange(100, 50_000)
            r = await http.post(
                f"/pledges/{reference}/payments", json={"amount_minor": amount}, headers=organiser
            )
            assert r.status_code in (200, 409), r.text
        elif action == "unpay":
            r = await http.get(f"/pledges/{reference}/payments", headers=organiser)
            assert r.status_code == 200, r.text
            live = [p for p in r.json() if p.get("cancelled_at") is None]
            if live:
                payment = rng.choice(live)
                r = await http.post(
                    f"/pledges/{reference}/payments/{payment['id']}/cancel",
                    json={"reason": "bounced cheque"},
                    headers=organiser,
                )
                assert r.status_code == 200, r.text
        else:
            r = await http.post(
                f"/pledges/{reference}/cancel",
                json={"reason": rng.choice(("fake", "duplicate", "donor_request"))},
                headers=setup["supervisor"],
            )
            assert r.status_code in (200, 409), r.text  # 409: paid in part already


async def test_every_rollup_equals_a_full_recount(hotline: Hotline) -> None:
    setup = await _campaign(hotline)
    await _mix(hotline, setup, random.Random(12), steps=120)
    campaign_id = setup["campaign_id"]
    async with hotline.db.read() as session:
        kept = await rollups.stored(session, campaign_id)
        counted = await rollups.recount(session, campaign_id)
    assert kept == counted
    dimensions = {dimension for dimension, _ in kept}
    assert dimensions == set(rollups.DIMENSIONS)
    assert any(figures[3] for figures in kept.values()), "no cancelled pledge in the mix"
    assert any(figures[2] for figures in kept.values()), "no payment in the mix"
    # The rebuild from the pledges (migration 0022's backfill, bulk loads) agrees.
    async with hotline.db.unit_of_work() as uow:
        await rollups.rebuild(uow, campaign_id)
    async with hotline.db.read() as session:
        assert await rollups.stored(session, campaign_id) == counted

    # The organiser's totals (read from the roll-ups) agree with the pledges.
    r = await hotline.http.get(
        "/pledges/totals", params={"campaign_id": campaign_id}, headers=setup["organiser"]
    )
    assert r.status_code == 200, r.text
    totals = r.json()
    rows = await hotline.sql(
        "SELECT count(*), coalesce(sum(amount_minor), 0), coalesce(sum(paid_minor), 0) "
        "FROM pledges WHERE campaign_id = :c AND status <> 'cancelled'",
        c=campaign_id,
    )
    count, promised, paid = (int(v) for v in rows[0])
    overall = totals["overall"]
    assert (overall["count"], overall["promised_minor"], overall["paid_minor"]) == (
        count,
        promised,
        paid,
    )
    for table in ("by_slot", "by_hour", "by_queue", "by_agent", "by_partner", "by_departement"):
        assert sum(row["count"] for row in totals[table]) == count, table
        assert sum(row["promised_minor"] for row in totals[table]) == promised, table
    by_partner = {row["key"]: row["count"] for row in totals["by_partner"]}
    assert set(by_partner) <= {"Rotary", "Lions Club", None}

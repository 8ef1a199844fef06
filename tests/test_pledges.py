"""Pledges over the real API on both databases: saving, corrections and their audit,
the lifecycle, bad input (nothing written), exactly-once saves, payments and the
provider webhook, totals and the public tote board."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import time
from typing import Any

import httpx
import pytest

from app import signing
from app.auth.service import Role
from tests.conftest import Hotline, wait_for
from tests.pledge_helpers import (
    call_state,
    key,
    pledge_body,
    pledge_setup,
    user_headers,
)


def assert_error(r: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message", "field"}, body
    assert (body["code"], body["field"]) == (code, field), body


async def count(hotline: Hotline, table: str) -> int:
    return int((await hotline.sql(f"SELECT count(*) FROM {table}"))[0][0])


async def stored_keys(hotline: Hotline) -> int:
    """Idempotency keys kept: on the pledge rows (migration 0022) and legacy records."""
    claimed = await hotline.sql("SELECT count(*) FROM pledges WHERE idem_key IS NOT NULL")
    return int(claimed[0][0]) + await count(hotline, "idempotency_keys")


async def counts(hotline: Hotline) -> dict[str, int]:
    """What a pledge writes, counted: a refusal or a replay changes none of it."""
    tables = ("pledges", "pledge_audit", "pledge_payments")
    rolled_up = await hotline.sql("SELECT COALESCE(SUM(count), 0) FROM pledge_rollups")
    return {
        **{t: await count(hotline, t) for t in tables},
        "idempotency_keys": await stored_keys(hotline),
        "pledge.saved events": len(await events(hotline, "pledge.saved")),
        "pledges rolled up": int(rolled_up[0][0]),
    }


async def save(hotline: Hotline, setup: dict[str, Any], **fields: Any) -> httpx.Response:
    return await hotline.http.post(
        "/pledges",
        json=pledge_body(setup["call_id"], **fields),
        headers={**setup["agent_headers"], **key()},
    )


async def events(hotline: Hotline, type_: str) -> list[dict[str, Any]]:
    rows = await hotline.sql("SELECT data FROM events WHERE type = :t ORDER BY seq", t=type_)
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


async def assert_live_totals_agree(hotline: Hotline, campaign_id: int) -> None:
    """The running counters (live figures) equal the figures aggregated from pledges."""
    board = (await hotline.http.get("/board/totals", params={"campaign_id": campaign_id})).json()
    totals = (await hotline.http.get("/pledges/totals", params={"campaign_id": campaign_id})).json()
    overall = totals["overall"]
    live = (board["count"], board["promised_minor"], board["paid_minor"])
    assert live == (overall["count"], overall["promised_minor"], overall["paid_minor"])


# --- saving ------------------------------------------------------------------------


async def test_volunteer_saves_a_pledge_for_their_call(hotline: Hotline) -> None:
    setup = await pledge_setup(
        hotline,
        payment_link_template="https://donate.example.org/pay?ref={reference}&amount={amount}",
    )
    r = await save(hotline, setup, amount_minor=2550, frequency="monthly")
    assert r.status_code == 201, r.text
    pledge = r.json()
    ref = pledge["reference"]
    assert len(ref) == 7 and ref[3] == "-"
    assert pledge["campaign_id"] == setup["campaign_id"]
    assert pledge["call_id"] == setup["call_id"]
    assert pledge["agent_id"] == setup["agent_id"]
    assert pledge["queue_id"] == setup["queue_id"]
    assert pledge["amount_minor"] == 2550 and pledge["currency"] == "EUR"
    assert pledge["frequency"] == "monthly" and pledge["channel"] == "web_link"
    assert pledge["status"] == "promised" and pledge["paid_minor"] == 0
    assert pledge["departement"] == "75"
    assert pledge["flagged_for_review"] is False
    assert pledge["payment_link"] == (f"https://donate.example.org/pay?ref={ref}&amount=25.50")
    # The reference is read back, typed in any case, with or without its dash.
    got = await hotline.http.get(f"/pledges/{ref.replace('-', '').lower()}")
    assert got.status_code == 200 and got.json()["id"] == pledge["id"]
    # Saved with its event and an audit row, in the same transaction.
    [saved] = await events(hotline, "pledge.saved")
    assert saved == {
        "pledge_id": pledge["id"],
        "reference": ref,
        "amount_minor": 2550,
        "currency": "EUR",
        "call_id": setup["call_id"],
        "agent_id": setup["agent_id"],
        "flagged_for_review": False,
        "frequency": "monthly",
    }
    audit = (await hotline.http.get(f"/pledges/{ref}/audit")).json()
    assert [a["action"] for a in audit] == ["created"]
    assert audit[0]["after"]["amount_minor"] == 2550 and audit[0]["before"] == {}


async def test_large_pledge_is_flagged_for_review(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline, pledge_review_minor=50_000)
    assert (await save(hotline, setup, amount_minor=50_000)).json()["flagged_for_review"] is False
    r = await save(hotline, setup, amount_minor=50_001)
    assert r.json()["flagged_for_review"] is True
    assert (await events(hotline, "pledge.saved"))[-1]["flagged_for_review"] is True


async def test_time_slot_and_departements(hotline: Hotline) -> None:
    setup = await pledge_setup(
        hotline,
        time_slots=[
            {
                "name": "Before",
                "starts_at": "2020-01-01T00:00:00Z",
                "ends_at": "2020-01-02T00:00:00Z",
            },
            {"name": "Now", "starts_at": "2020-01-02T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"},
        ],
    )
    cases = {
        "20000": "2A",
        "20190": "2A",
        "20200": "2B",
        "20600": "2B",
        "97100": "971",
        "97600": "976",
        "01000": "01",
        "98000": None,
    }
    for postcode, expected in cases.items():
        r = await save(hotline, setup, postcode=postcode)
        assert r.status_code == 201, r.text
        assert r.json()["departement"] == expected, postcode
        assert r.json()["time_slot"] == "Now"
    r = await save(hotline, setup, country="BE", postcode="1000")
    assert r.status_code == 201 and r.json()["departement"] is None


async def test_volunteer_only_saves_for_their_own_calls(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    other = (
        await hotline.http.post(
            "/agents",
            json={"campaign_id": setup["campaign_id"], "login": "other", "display_name": "O"},
        )
    ).json()["id"]
    headers = await user_headers(
        hotline, Role.AGENT, campaign_id=setup["campaign_id"], agent_id=other
    )
    before = await counts(hotline)
    r = await hotline.http.post(
        "/pledges", json=pledge_body(setup["call_id"]), headers={**headers, **key()}
    )
    assert_error(r, 403, "forbidden", "call_id")
    assert await counts(hotline) == before
    organiser = await user_headers(hotline, Role.ORGANISER)
    r = await hotline.http.post(
        "/pledges", json=pledge_body(setup["call_id"]), headers={**organiser, **key()}
    )
    assert r.status_code == 403
    assert await count(hotline, "pledges") == 0


# --- bad input: 422 naming the field, nothing written ---------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"amount_minor": 0}, "amount_minor", "invalid"),
        ({"amount_minor": -500}, "amount_minor", "invalid"),
        ({"amount_minor": 12.5}, "amount_minor", "invalid"),
        ({"amount_minor": "2500"}, "amount_minor", "invalid"),
        ({"amount_minor": True}, "amount_minor", "invalid"),
        ({"amount_minor": 99}, "amount_minor", "amount_too_small"),
        ({"amount_minor": 1_000_001}, "amount_minor", "amount_too_large"),
        ({"currency": "USD"}, "currency", "invalid"),
        ({"call_id": 999_999}, "call_id", "unknown_call"),
        ({"call_id": None, "campaign_id": 999_999}, "campaign_id", "unknown_campaign"),
        ({"email": "not-an-email"}, "email", "invalid"),
        ({"email": "a@b"}, "email", "invalid"),
        ({"postcode": "7500"}, "postcode", "invalid"),
        ({"postcode": "00100"}, "postcode", "invalid"),
        ({"postcode": "ABCDE"}, "postcode", "invalid"),
        ({"phone": "12"}, "phone", "invalid"),
        ({"country": "France"}, "country", "invalid"),
        ({"channel": "card"}, "channel", "invalid"),
        ({"frequency": "yearly"}, "frequency", "invalid"),
        ({"card_number": "x"}, "card_number", "invalid"),
        ({"first_name": "", "last_name": ""}, "last_name", "invalid"),
        ({"email": "", "phone": ""}, "email", "invalid"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    hotline: Hotline, fields: dict[str, Any], field: str, code: str
) -> None:
    setup = await pledge_setup(hotline)
    before = await counts(hotline)
    events_before = await count(hotline, "events")
    body = {**pledge_body(setup["call_id"]), **fields}
    if body["call_id"] is None:
        del body["call_id"]
    r = await hotline.http.post("/pledges", json=body, headers=key())
    assert_error(r, 422, code, field)
    assert await counts(hotline) == before
    assert await count(hotline, "events") == events_before


async def test_missing_or_malformed_idempotency_key(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    r = await hotline.http.post("/pledges", json=pledge_body(setup["call_id"]))
    assert_error(r, 422, "idempotency_key_missing", "Idempotency-Key")
    r = await hotline.http.post(
        "/pledges", json=pledge_body(setup["call_id"]), headers={"Idempotency-Key": "short"}
    )
    assert_error(r, 422, "invalid", "Idempotency-Key")
    assert await counts(hotline) == {
        "pledges": 0,
        "pledge_audit": 0,
        "pledge_payments": 0,
        "idempotency_keys": 0,
        "pledge.saved events": 0,
        "pledges rolled up": 0,
    }


# --- exactly once ------------------------------------------------------------------


async def test_same_key_same_body_returns_the_first_answer(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    headers = {**setup["agent_headers"], **key()}
    body = pledge_body(setup["call_id"])
    first = await hotline.http.post("/pledges", json=body, headers=headers)
    saved = await counts(hotline)
    again = await hotline.http.post("/pledges", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert saved["pledges"] == saved["pledge.saved events"] == saved["pledge_audit"] == 1
    assert saved["pledges rolled up"] == 7  # one row a dimension
    assert await counts(hotline) == saved
    # A different body under the same key: refused, nothing written.
    changed = await hotline.http.post(
        "/pledges", json={**body, "amount_minor": 9900}, headers=headers
    )
    assert_error(changed, 409, "idempotency_key_reused", "Idempotency-Key")
    assert await counts(hotline) == saved
    # A key is the caller's own: another user's identical key is another request.
    other = await user_headers(hotline, Role.SUPERVISOR, campaign_id=setup["campaign_id"])
    r = await hotline.http.post(
        "/pledges", json=body, headers={**other, "Idempotency-Key": headers["Idempotency-Key"]}
    )
    assert r.status_code == 201 and r.json()["reference"] != first.json()["reference"]


async def test_stored_answers_are_purged_after_a_day(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    r = await save(hotline, setup)
    assert r.status_code == 201, r.text
    now = dt.datetime.now(dt.UTC)

    async def purge(hours: int) -> int:
        as_of = (now + dt.timedelta(hours=hours)).isoformat()
        r = await hotline.http.post("/privacy/purge", json={"as_of": as_of})
        assert r.status_code == 200, r.text
        return int(r.json()["changed"]["idempotency_keys"])

    # Kept through any retry (a day by default), then only weight: removed, and the
    # pledge itself stays.
    assert await purge(23) == 0 and await stored_keys(hotline) == 1
    assert await purge(25) == 1 and await stored_keys(hotline) == 0
    assert await count(hotline, "pledges") == 1


async def test_a_refused_request_leaves_its_key_free(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    headers = {**setup["agent_headers"], **key()}
    bad = await hotline.http.post(
        "/pledges", json=pledge_body(setup["call_id"], email="bad"), headers=headers
    )
    assert bad.status_code == 422
    good = await hotline.http.post("/pledges", json=pledge_body(setup["call_id"]), headers=headers)
    assert good.status_code == 201, good.text


async def test_fifty_concurrent_identical_requests_create_one_pledge(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    headers = {**setup["agent_headers"], **key()}
    body = pledge_body(setup["call_id"])
    answers = await asyncio.gather(
        *(hotline.http.post("/pledges", json=body, headers=headers) for _ in range(50))
    )
    assert {r.status_code for r in answers} == {201}, {r.status_code: r.text for r in answers}
    assert len({r.json()["reference"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in answers) == 1
    assert await count(hotline, "pledges") == 1
    assert await stored_keys(hotline) == 1
    assert len(await events(hotline, "pledge.saved")) == 1


# --- corrections and the lifecycle -------------------------------------------------


async def test_volunteer_corrects_until_wrap_up_ends(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    ref = (await save(hotline, setup)).json()["reference"]
    agent = setup["agent_headers"]
    r = await hotline.http.patch(
        f"/pledges/{ref}",
        json={"amount_minor": 5000, "city": "Lyon", "postcode": "69001"},
        headers=agent,
    )
    assert r.status_code == 200, r.text
    assert r.json()["amount_minor"] == 5000 and r.json()["departement"] == "69"
    # Still editable in wrap-up...
    r = await hotline.http.post(f"/agents/{setup['agent_id']}/hangup")
    assert r.status_code == 200, r.text
    assert await call_state(hotline, setup["call_id"]) == "wrap_up"
    r = await hotline.http.patch(f"/pledges/{ref}", json={"note": "call back"}, headers=agent)
    assert r.status_code == 200, r.text
    # ...not once it ended.
    r = await hotline.http.post(f"/agents/{setup['agent_id']}/wrap-up/end", json={})
    assert r.status_code == 200, r.text
    r = await hotline.http.patch(f"/pledges/{ref}", json={"note": "later"}, headers=agent)
    assert_error(r, 403, "not_editable", None)
    # A supervisor still may; every correction is audited with who, before and after.
    supervisor = await user_headers(hotline, Role.SUPERVISOR, campaign_id=setup["campaign_id"])
    r = await hotline.http.patch(f"/pledges/{ref}", json={"amount_minor": 4000}, headers=supervisor)
    assert r.status_code == 200, r.text
    audit = (await hotline.http.get(f"/pledges/{ref}/audit")).json()
    assert [a["action"] for a in audit] == ["created", "corrected", "corrected", "corrected"]
    assert audit[1]["before"] == {
        "amount_minor": 2500,
        "city": "Paris",
        "postcode": "75002",
        "departement": "75",
    }
    assert audit[1]["after"] == {
        "amount_minor": 5000,
        "city": "Lyon",
        "postcode": "69001",
        "departement": "69",
    }
    assert audit[3]["actor"].startswith("supervisor-")
    assert audit[3]["before"] == {"amount_minor": 5000} and audit[3]["after"] == {
        "amount_minor": 4000
    }
    assert len(await events(hotline, "pledge.updated")) == 3
    await assert_live_totals_agree(hotline, setup["campaign_id"])


async def test_corrections_are_validated_like_new_pledges(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    ref = (await save(hotline, setup)).json()["reference"]
    audit_before = await count(hotline, "pledge_audit")
    for patch, field in (
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": 10**9}, "amount_minor"),
        ({"currency": "GBP"}, "currency"),
        ({"email": "x@"}, "email"),
        ({"postcode": "1"}, "postcode"),
        ({"amount_minor": None}, "amount_minor"),
    ):
        r = await hotline.http.patch(f"/pledges/{ref}", json=patch)
        assert_error(r, 422, r.json()["code"], field)
    assert await count(hotline, "pledge_audit") == audit_before
    assert (await hotline.http.get(f"/pledges/{ref}")).json()["amount_minor"] == 2500


async def test_lifecycle_link_sent_payments_and_cancel(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    ref = (await save(hotline, setup, amount_minor=10_000)).json()["reference"]
    organiser = await user_headers(hotline, Role.ORGANISER)
    r = await hotline.http.post(f"/pledges/{ref}/link-sent", headers=organiser)
    assert r.json()["status"] == "link_sent" and r.json()["link_sent_at"]
    r = await hotline.http.post(
        f"/pledges/{ref}/payments", json={"amount_minor": 4000}, headers=organiser
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["paid_minor"], r.json()["amount_minor"]) == (
        "partially_paid",
        4000,
        10_000,
    )
    r = await hotline.http.post(f"/pledges/{ref}/payments", json={"amount_minor": 6000})
    assert (r.json()["status"], r.json()["paid_minor"]) == ("paid", 10_000)
    # A paid pledge is not cancelled; a wrong currency is refused.
    assert_error(
        await hotline.http.post(f"/pledges/{ref}/cancel", json={"reason": "fake"}),
        409,
        "illegal_pledge_transition",
        None,
    )
    assert_error(
        await hotline.http.post(
            f"/pledges/{ref}/payments", json={"amount_minor": 100, "currency": "USD"}
        ),
        422,
        "invalid",
        "currency",
    )
    # Supervisors do not record payments.
    supervisor = await user_headers(hotline, Role.SUPERVISOR, campaign_id=setup["campaign_id"])
    r = await hotline.http.post(
        f"/pledges/{ref}/payments", json={"amount_minor": 1}, headers=supervisor
    )
    assert r.status_code == 403

    other = (await save(hotline, setup)).json()["reference"]
    r = await hotline.http.post(f"/pledges/{other}/cancel", json={"reason": "duplicate"})
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "duplicate")
    assert_error(
        await hotline.http.post(f"/pledges/{other}/cancel", json={"reason": "nope"}),
        422,
        "invalid",
        "reason",
    )
    assert_error(
        await hotline.http.post(f"/pledges/{other}/payments", json={"amount_minor": 100}),
        409,
        "illegal_pledge_transition",
        None,
    )
    statuses = [e["status"] for e in await events(hotline, "pledge.status")]
    assert statuses == ["link_sent", "partially_paid", "paid", "cancelled"]
    actions = [a["action"] for a in (await hotline.http.get(f"/pledges/{ref}/audit")).json()]
    assert actions == ["created", "link_sent", "payment", "payment"]
    await assert_live_totals_agree(hotline, setup["campaign_id"])


def _signed(secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"Content-Type": "application/json", **signing.signed_headers(secret, body)}


async def test_payment_webhook_is_signed_and_idempotent(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    ref = (await save(hotline, setup, amount_minor=3000)).json()["reference"]
    secret = hotline.settings.payment_webhook_secret
    payload = {"payment_id": "pay_123", "reference": ref, "amount_minor": 3000, "currency": "EUR"}
    body, headers = _signed(secret, payload)
    anonymous = httpx.AsyncClient(transport=hotline.http._transport, base_url="http://t")
    async with anonymous:
        bad = await anonymous.post(
            "/payments/webhook", content=body, headers={**headers, signing.HEADER: "sha256=00"}
        )
        assert_error(bad, 401, "bad_signature", signing.HEADER)
        first = await anonymous.post("/payments/webhook", content=body, headers=headers)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "reference": ref,
            "status": "paid",
            "paid_minor": 3000,
            "recorded": True,
        }
        # The provider retries: recorded once; twice at once: still once.
        again = await anonymous.post("/payments/webhook", content=body, headers=headers)
        assert again.json()["recorded"] is False and again.json()["paid_minor"] == 3000
        both = await asyncio.gather(
            *(anonymous.post("/payments/webhook", content=body, headers=headers) for _ in range(5))
        )
        assert {r.status_code for r in both} == {200}
        # The same payment id with other details is refused.
        body2, headers2 = _signed(secret, {**payload, "amount_minor": 1})
        r = await anonymous.post("/payments/webhook", content=body2, headers=headers2)
        assert_error(r, 409, "payment_conflict", "provider_payment_id")
        unknown, headers3 = _signed(secret, {**payload, "payment_id": "p2", "reference": "ZZZ-ZZZ"})
        r = await anonymous.post("/payments/webhook", content=unknown, headers=headers3)
        assert_error(r, 404, "not_found", "reference")
    assert await count(hotline, "pledge_payments") == 1
    pledge = (await hotline.http.get(f"/pledges/{ref}")).json()
    assert (pledge["status"], pledge["paid_minor"]) == ("paid", 3000)
    await assert_live_totals_agree(hotline, setup["campaign_id"])


async def test_payment_webhook_replayed_after_the_window_is_refused(hotline: Hotline) -> None:
    """A captured notification cannot be sent again later, nor freshened, nor post-dated."""
    setup = await pledge_setup(hotline)
    ref = (await save(hotline, setup, amount_minor=3000)).json()["reference"]
    secret = hotline.settings.payment_webhook_secret
    payload = {"payment_id": "pay_old", "reference": ref, "amount_minor": 3000, "currency": "EUR"}
    body = json.dumps(payload).encode()
    json_type = {"Content-Type": "application/json"}
    old = signing.signed_headers(secret, body, now=time.time() - 301)
    ahead = signing.signed_headers(secret, body, now=time.time() + 3600)
    freshened = {**old, signing.TIMESTAMP_HEADER: str(int(time.time()))}
    undated = {signing.HEADER: old[signing.HEADER]}
    before = await counts(hotline)
    anonymous = httpx.AsyncClient(transport=hotline.http._transport, base_url="http://t")
    async with anonymous:
        for headers, code, field in (
            (old, "stale_signature", signing.TIMESTAMP_HEADER),
            (ahead, "stale_signature", signing.TIMESTAMP_HEADER),
            (freshened, "bad_signature", signing.HEADER),
            (undated, "bad_timestamp", signing.TIMESTAMP_HEADER),
        ):
            r = await anonymous.post(
                "/payments/webhook", content=body, headers={**json_type, **headers}
            )
            assert_error(r, 401, code, field)
        assert await counts(hotline) == before
        pledge = (await hotline.http.get(f"/pledges/{ref}")).json()
        assert (pledge["status"], pledge["paid_minor"]) == ("promised", 0), pledge
        # The same bytes signed now are recorded: only the signing time was at fault.
        fresh = signing.signed_headers(secret, body)
        r = await anonymous.post("/payments/webhook", content=body, headers={**json_type, **fresh})
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["recorded"]) == ("paid", True)
    assert await count(hotline, "pledge_payments") == 1


# --- totals and the board ----------------------------------------------------------


async def test_totals_by_every_dimension(hotline: Hotline) -> None:
    setup = await pledge_setup(
        hotline,
        time_slots=[
            {
                "name": "Prime time",
                "starts_at": "2020-01-01T00:00:00Z",
                "ends_at": "2099-01-01T00:00:00Z",
            }
        ],
    )
    await hotline.http.patch(f"/agents/{setup['agent_id']}", json={"partner_org": "Lions Club"})
    refs = []
    for amount, postcode in ((1000, "75002"), (3000, "20000"), (5000, "97100")):
        r = await save(hotline, setup, amount_minor=amount, postcode=postcode)
        refs.append(r.json()["reference"])
    await hotline.http.post(f"/pledges/{refs[0]}/payments", json={"amount_minor": 1000})
    # Cancelled pledges count nowhere.
    cancelled = (await save(hotline, setup, amount_minor=7000)).json()["reference"]
    await hotline.http.post(f"/pledges/{cancelled}/cancel", json={"reason": "fake"})

    r = await hotline.http.get("/pledges/totals", params={"campaign_id": setup["campaign_id"]})
    assert r.status_code == 200, r.text
    totals = r.json()
    assert totals["currency"] == "EUR"
    assert totals["overall"] == {
        "key": None,
        "label": "all",
        "count": 3,
        "promised_minor": 9000,
        "paid_minor": 1000,
        "average_minor": 3000,
        "fulfilment_rate": round(1000 / 9000, 4),
    }
    assert [(x["label"], x["count"]) for x in totals["by_slot"]] == [("Prime time", 3)]
    assert [(x["label"], x["count"]) for x in totals["by_queue"]] == [("pledges", 3)]
    assert [(x["key"], x["label"], x["promised_minor"]) for x in totals["by_agent"]] == [
        (str(setup["agent_id"]), "Vol 0", 9000)
    ]
    assert [(x["label"], x["count"]) for x in totals["by_partner"]] == [("Lions Club", 3)]
    assert sorted((x["key"], x["promised_minor"]) for x in totals["by_departement"]) == [
        ("2A", 3000),
        ("75", 1000),
        ("971", 5000),
    ]
    # The live figures (running counters) agree with the pledges themselves.
    board = (
        await hotline.http.get("/board/totals", params={"campaign_id": setup["campaign_id"]})
    ).json()
    assert (board["count"], board["promised_minor"], board["paid_minor"]) == (3, 9000, 1000)
    [hour] = totals["by_hour"]
    assert hour["count"] == 3 and len(hour["key"]) == 16 and hour["key"].endswith(":00")
    # A window that ends before everything: nothing.
    r = await hotline.http.get(
        "/pledges/totals",
        params={"campaign_id": setup["campaign_id"], "until": "2020-01-01T00:00:00Z"},
    )
    assert r.json()["overall"]["count"] == 0 and r.json()["overall"]["fulfilment_rate"] is None


async def test_board_is_public_and_has_no_personal_data(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    await save(hotline, setup, amount_minor=4200, note="secret note")
    async with httpx.AsyncClient(transport=hotline.http._transport, base_url="http://t") as anon:
        r = await anon.get("/board/totals", params={"campaign_id": setup["campaign_id"]})
        assert r.status_code == 200, r.text
        board = r.json()
        page = await anon.get("/board")
        assert page.status_code == 200 and "board.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    assert set(board) == {
        "campaign_id",
        "campaign",
        "currency",
        "count",
        "promised_minor",
        "paid_minor",
        "average_minor",
        "last_pledge_minor",
        "goal_minor",
        "latest",
        "updated_at",
    }
    assert (board["count"], board["promised_minor"], board["last_pledge_minor"]) == (1, 4200, 4200)
    assert board["latest"] == []  # the donor did not consent to be named on air
    text = json.dumps(board)
    for personal in (
        "Marie",
        "Curie",
        "marie@example.org",
        "rue de la Paix",
        "secret",
        "612345678",
    ):
        assert personal not in text


async def test_totals_updated_is_coalesced(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    for _ in range(5):
        assert (await save(hotline, setup, amount_minor=1000)).status_code == 201

    async def carried_all() -> list[dict[str, Any]] | None:
        updates = await events(hotline, "totals.updated")
        return updates if updates and updates[-1]["promised_minor"] == 5000 else None

    updates = await wait_for(carried_all)
    # Five saves in a burst: far fewer updates, and the last carries every pledge.
    assert len(updates) < 5
    assert updates[-1]["count"] == 5 and updates[-1]["currency"] == "EUR"
    # At most one a second per campaign: consecutive updates are a second apart.
    rows = await hotline.sql("SELECT at FROM events WHERE type = 'totals.updated' ORDER BY seq")
    times = [
        r[0] if isinstance(r[0], dt.datetime) else dt.datetime.fromisoformat(r[0]) for r in rows
    ]
    assert all((b - a).total_seconds() >= 0.999 for a, b in itertools.pairwise(times))


async def test_returning_donor_is_found_by_number(hotline: Hotline) -> None:
    from app.cti.service import returning_donor

    setup = await pledge_setup(hotline)
    await save(hotline, setup, amount_minor=1500, address="1 Main St\nFlat 2")
    await save(hotline, setup, amount_minor=2500, first_name="Marie-Anne")
    cancelled = (await save(hotline, setup, amount_minor=9900)).json()["reference"]
    await hotline.http.post(f"/pledges/{cancelled}/cancel", json={"reason": "duplicate"})
    async with hotline.db.read() as session:
        # The caller's number as the call carried it, and the phone they gave.
        donor = await returning_donor(
            session, campaign_id=setup["campaign_id"], number="+33612345678"
        )
        nobody = await returning_donor(
            session, campaign_id=setup["campaign_id"], number="+33699999999"
        )
    assert nobody is None
    assert donor is not None
    assert donor.first_name == "Marie-Anne" and donor.last_name == "Curie"
    assert (donor.pledges, donor.total_minor, donor.currency) == (2, 4000, "EUR")
    assert donor.email == "marie@example.org" and donor.phone == "+33612345678"
    from app.pledges.repository import pledged_total_for_number

    async with hotline.db.read() as session:
        assert await pledged_total_for_number(session, setup["campaign_id"], "+33612345678") == 4000


async def test_campaign_pledge_settings_are_validated(hotline: Hotline) -> None:
    base = {"name": "Settings", "dialled_numbers": ["+33800000009"]}
    for fields, field in (
        ({"payment_link_template": "https://pay.example.org/"}, "payment_link_template"),
        ({"pledge_min_minor": 0}, "pledge_min_minor"),
        (
            {
                "time_slots": [
                    {
                        "name": "x",
                        "starts_at": "2026-01-01T10:00:00",
                        "ends_at": "2026-01-01T11:00:00Z",
                    }
                ]
            },
            "time_slots.0.starts_at",
        ),
        (
            {
                "time_slots": [
                    {
                        "name": "x",
                        "starts_at": "2026-01-01T12:00:00Z",
                        "ends_at": "2026-01-01T11:00:00Z",
                    }
                ]
            },
            "time_slots",
        ),
    ):
        r = await hotline.http.post("/campaigns", json={**base, **fields})
        assert_error(r, 422, "invalid", field)
    r = await hotline.http.post(
        "/campaigns",
        json={
            **base,
            "time_slots": [
                {
                    "name": "Prime",
                    "starts_at": "2026-12-05T21:00:00+01:00",
                    "ends_at": "2026-12-05T23:00:00+01:00",
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["time_slots"] == [
        {
            "name": "Prime",
            "starts_at": "2026-12-05T20:00:00+00:00",
            "ends_at": "2026-12-05T22:00:00+00:00",
        }
    ]
    assert r.json()["pledge_max_minor"] == 1_000_000


async def test_simulated_volunteers_save_pledges(hotline_factory: Any) -> None:
    """The demo's simulated volunteers save pledges through the same checks and counters."""
    from app.seed import seed_demo

    hotline: Hotline = await hotline_factory(
        simulate=True,
        sim_seed=7,
        sim_rate_per_minute=120,
        sim_spike_every_seconds=0,
        sim_talk_seconds=0.3,
        sim_wrapup_seconds=0.2,
        sim_patience_seconds=20.0,
    )
    campaign_id = await seed_demo(hotline.db)

    async def some_pledges() -> int:
        return await count(hotline, "pledges") >= 3

    await wait_for(some_pledges, timeout=30)
    rows = await hotline.sql(
        "SELECT p.agent_id = c.agent_id, p.status, a.actor FROM pledges p"
        " JOIN calls c ON c.id = p.call_id JOIN pledge_audit a ON a.pledge_id = p.id"
    )
    assert rows and all(
        bool(same) and status == "promised" and actor == "simulator" for same, status, actor in rows
    )

    # Pledges keep coming: compare the two figures between two saves.
    async def agree() -> bool:
        try:
            await assert_live_totals_agree(hotline, campaign_id)
        except AssertionError:
            return False
        return True

    await wait_for(agree)

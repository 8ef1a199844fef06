"""Who may do what: every API route by every role.

The route list comes from the OpenAPI schema, so a new endpoint fails this test
until it is given a row in ``POLICY``. Where a role is not allowed, the answer
must be 401, 403 or 404; where it is, never 401 or 403.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from app.auth.service import Role
from tests.conftest import Hotline, setup_campaign
from tests.users import user_with_token

ANON, AGENT_A, AGENT_B, SUP_A, SUP_SITE, SUP_B, ORG, ADMIN = (
    "anonymous",
    "agent_a",
    "agent_b",
    "supervisor_a",
    # Campaign A's supervisor scoped to its site "Annex", where agent A and the seat
    # are not (docs/roster.md).
    "supervisor_a_annex",
    "supervisor_b",
    "organiser",
    "admin",
)
ROLES = (ANON, AGENT_A, AGENT_B, SUP_A, SUP_SITE, SUP_B, ORG, ADMIN)
STAFF_READ = {ADMIN, SUP_A, SUP_B, ORG}  # listings, scoped to the supervisor's campaign
CAMPAIGN_A_READ = {ADMIN, SUP_A, ORG}
STEER_A = {ADMIN, SUP_A, AGENT_A}
LOGGED_IN = set(ROLES) - {ANON}
PUBLIC = set(ROLES)
NOBODY: set[str] = set()  # HMAC-signed machine endpoints: no user role opens them

# (method, path) -> roles allowed. Paths use campaign A's objects.
POLICY: dict[tuple[str, str], set[str]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): {ADMIN},
    ("GET", "/campaigns"): STAFF_READ,
    ("POST", "/campaigns"): {ADMIN},
    ("GET", "/campaigns/{campaign_id}"): CAMPAIGN_A_READ,
    ("PATCH", "/campaigns/{campaign_id}"): {ADMIN},
    ("GET", "/queues"): STAFF_READ,
    ("POST", "/queues"): {ADMIN},
    ("GET", "/queues/{queue_id}"): CAMPAIGN_A_READ,
    ("PATCH", "/queues/{queue_id}"): {ADMIN},
    ("GET", "/queues/{queue_id}/stats"): CAMPAIGN_A_READ,
    ("GET", "/agents"): STAFF_READ,
    ("POST", "/agents"): {ADMIN},
    ("GET", "/agents/{agent_id}"): {ADMIN, SUP_A, ORG, AGENT_A},
    ("PATCH", "/agents/{agent_id}"): {ADMIN},
    ("POST", "/agents/{agent_id}/login"): STEER_A,
    ("POST", "/agents/{agent_id}/ready"): STEER_A,
    ("POST", "/agents/{agent_id}/pause"): STEER_A,
    ("POST", "/agents/{agent_id}/logout"): STEER_A,
    ("POST", "/agents/{agent_id}/answer"): STEER_A,
    ("POST", "/agents/{agent_id}/hangup"): STEER_A,
    ("POST", "/agents/{agent_id}/transfer"): STEER_A,
    ("POST", "/agents/{agent_id}/wrap-up/end"): STEER_A,
    ("POST", "/agents/{agent_id}/wrap-up/extend"): STEER_A,
    ("GET", "/seats"): STAFF_READ,
    ("POST", "/seats"): {ADMIN},
    ("GET", "/seats/{seat_id}"): CAMPAIGN_A_READ,
    ("PATCH", "/seats/{seat_id}"): {ADMIN},
    ("GET", "/calls/{call_id}"): CAMPAIGN_A_READ,  # volunteers see only calls they took
    ("GET", "/calls"): STAFF_READ,
    ("POST", "/telephony/events"): NOBODY,
    ("GET", "/telephony/commands"): NOBODY,
    ("POST", "/auth/login"): PUBLIC,
    ("GET", "/auth/me"): LOGGED_IN,
    ("POST", "/auth/ws-token"): LOGGED_IN,
    # Pledge exports (campaign_id is a query parameter: the matrix gets 422 where allowed).
    ("GET", "/pledges/export.csv"): {ADMIN, ORG},
    ("GET", "/pledges/export.xlsx"): {ADMIN, ORG},
    ("GET", "/pledges/totals.csv"): {ADMIN, ORG},
    ("GET", "/pledges/totals.xlsx"): {ADMIN, ORG},
    # Rules and scripts: staff read, admins replace; supervisors keep the blocklist.
    ("GET", "/campaigns/{campaign_id}/rules"): CAMPAIGN_A_READ,
    ("PUT", "/campaigns/{campaign_id}/rules"): {ADMIN},
    ("POST", "/campaigns/{campaign_id}/rules/check"): {ADMIN},
    ("GET", "/campaigns/{campaign_id}/blocklist"): CAMPAIGN_A_READ,
    ("POST", "/campaigns/{campaign_id}/blocklist"): {ADMIN, SUP_A},
    ("DELETE", "/campaigns/{campaign_id}/blocklist/{number}"): {ADMIN, SUP_A},
    # Pledges: volunteers save for their own calls only (the matrix pledge has none);
    # organisers record payments; the tote board is public; the provider signs.
    ("POST", "/pledges"): {ADMIN, SUP_A},
    ("GET", "/pledges"): LOGGED_IN,
    ("GET", "/pledges/totals"): STAFF_READ,
    ("GET", "/pledges/{reference}"): CAMPAIGN_A_READ,
    ("GET", "/pledges/{reference}/audit"): CAMPAIGN_A_READ,
    ("PATCH", "/pledges/{reference}"): CAMPAIGN_A_READ,
    ("POST", "/pledges/{reference}/link-sent"): CAMPAIGN_A_READ,
    # The matrix's pledge is not flagged: 409 where allowed.
    ("POST", "/pledges/{reference}/approve"): CAMPAIGN_A_READ,
    ("POST", "/pledges/{reference}/cancel"): CAMPAIGN_A_READ,
    ("POST", "/pledges/{reference}/payments"): {ADMIN, ORG},
    ("GET", "/pledges/{reference}/payments"): {ADMIN, ORG},
    ("POST", "/pledges/{reference}/payments/{payment_id}/cancel"): {ADMIN, ORG},
    ("POST", "/payments/webhook"): NOBODY,
    # Tax receipts (app/receipts): organisers and admins.
    ("GET", "/receipts/organisations"): {ADMIN, ORG},
    ("POST", "/receipts/organisations"): {ADMIN, ORG},
    ("PATCH", "/receipts/organisations/{organisation_id}"): {ADMIN, ORG},
    ("PUT", "/receipts/campaigns/{campaign_id}"): {ADMIN, ORG},
    ("POST", "/receipts/issue"): {ADMIN, ORG},
    ("GET", "/receipts"): {ADMIN, ORG},
    ("GET", "/receipts/{receipt_id}/pdf"): {ADMIN, ORG},
    ("POST", "/receipts/{receipt_id}/send"): {ADMIN, ORG},
    # Payment reconciliation: organisers (no import in the matrix: 404/422 where allowed).
    ("GET", "/payments/sources"): {ADMIN, ORG},
    ("PUT", "/payments/sources/{name}"): {ADMIN, ORG},
    ("POST", "/payments/imports"): {ADMIN, ORG},
    ("GET", "/payments/imports"): {ADMIN, ORG},
    ("GET", "/payments/lines"): {ADMIN, ORG},
    ("POST", "/payments/lines/{line_id}/match"): {ADMIN, ORG},
    ("POST", "/payments/lines/{line_id}/dismiss"): {ADMIN, ORG},
    ("POST", "/payments/lines/{line_id}/reviewed"): {ADMIN, ORG},
    ("GET", "/board/totals"): PUBLIC,
    ("GET", "/board/stream"): PUBLIC,
    ("GET", "/i18n/{language}"): PUBLIC,
    ("GET", "/users"): {ADMIN},
    ("POST", "/users"): {ADMIN},
    ("PATCH", "/users/{user_id}"): {ADMIN},
    ("GET", "/auth/sessions"): {ADMIN},
    # Donors' personal data: admins only (docs/personal-data.md).
    ("POST", "/privacy/donors/lookup"): {ADMIN},
    ("POST", "/privacy/donors/export"): {ADMIN},
    ("POST", "/privacy/donors/erase"): {ADMIN},
    ("GET", "/privacy/retention"): {ADMIN},
    ("POST", "/privacy/purge"): {ADMIN},
    # The staffing planner (docs/surge.md): organisers and supervisors (their campaign).
    ("POST", "/planning/plan"): CAMPAIGN_A_READ,
    ("POST", "/planning/plan.csv"): CAMPAIGN_A_READ,
    ("POST", "/planning/rundowns/import"): STAFF_READ,
    ("GET", "/planning/rundowns/derived"): CAMPAIGN_A_READ,
    ("GET", "/planning/handle-times"): CAMPAIGN_A_READ,
    # Last: these end sessions.
    ("POST", "/users/{user_id}/revoke"): {ADMIN, SUP_A},
    ("POST", "/auth/logout"): LOGGED_IN,
    # Surge mode and standby paging (app/surge): supervisors of the campaign, admins.
    ("GET", "/queues/{queue_id}/surge"): {ADMIN, SUP_A},
    ("PUT", "/queues/{queue_id}/surge"): {ADMIN, SUP_A},
    ("POST", "/queues/{queue_id}/surge/page"): {ADMIN, SUP_A},
    ("PUT", "/agents/{agent_id}/standby"): {ADMIN, SUP_A},
    ("GET", "/alerts"): {ADMIN, SUP_A},
    ("GET", "/alerts/kinds"): {ADMIN, SUP_A},
    # seq 1 is no alert: 404 where allowed (a refusal for the others too).
    ("POST", "/alerts/{seq}/acknowledge"): {ADMIN, SUP_A},
    ("GET", "/pages"): {ADMIN, SUP_A, SUP_B},  # each supervisor sees their campaign's
    # The roster (app/roster, docs/roster.md): admins register and print PINs.
    ("GET", "/sites"): STAFF_READ,
    ("POST", "/sites"): {ADMIN},
    ("GET", "/sites/{site_id}"): CAMPAIGN_A_READ,
    ("PATCH", "/sites/{site_id}"): {ADMIN},
    ("POST", "/sites/{site_id}/pin-sheet"): {ADMIN},
    ("POST", "/roster/volunteers"): {ADMIN},
    ("POST", "/roster/import"): {ADMIN},
    # The hours report (docs/roster.md#hours-report): organisers and admins.
    ("GET", "/reports/hours"): {ADMIN, ORG},
    ("GET", "/reports/hours/attestation.pdf"): {ADMIN, ORG},
    # Practice calls (app/practice): volunteers play their own; supervisors read them.
    ("GET", "/practice/scenarios"): {ADMIN, SUP_A, SUP_B, AGENT_A, AGENT_B},
    ("POST", "/practice/calls"): {AGENT_A, AGENT_B},
    ("GET", "/practice/calls"): {ADMIN, SUP_A, SUP_B, AGENT_A, AGENT_B},
    ("GET", "/practice/calls/{practice_call_id}"): {ADMIN, SUP_A, AGENT_A},
    ("POST", "/practice/calls/{practice_call_id}/pledge"): {AGENT_A},
    ("POST", "/practice/calls/{practice_call_id}/actions"): {AGENT_A},
    ("POST", "/practice/calls/{practice_call_id}/end"): {AGENT_A},
    # The browser softphone's credentials (app/softphone): a volunteer's own session only
    # (no softphone configured here: 404 softphone_off where allowed).
    ("POST", "/softphone/credentials"): {AGENT_A, AGENT_B},
    # Shifts (app/roster/shifts.py): admins make them, staff read them, volunteers sign
    # themselves up; the matrix shift is at the Annex, agent A has no site.
    ("POST", "/shifts"): {ADMIN},
    ("GET", "/shifts"): STAFF_READ,
    ("GET", "/shifts/{shift_id}"): CAMPAIGN_A_READ,
    ("PATCH", "/shifts/{shift_id}"): {ADMIN},
    ("GET", "/shifts/{shift_id}/attendance"): CAMPAIGN_A_READ,
    ("GET", "/agents/{agent_id}/shifts"): STEER_A,
    ("PUT", "/shifts/{shift_id}/signups/{agent_id}"): STEER_A,
    ("DELETE", "/shifts/{shift_id}/signups/{agent_id}"): STEER_A,
    ("POST", "/shifts/signups/import"): {ADMIN},
    ("DELETE", "/shifts/{shift_id}"): {ADMIN},  # last of the shifts: the shift is gone
}
# A site-scoped supervisor may do what its campaign's supervisor may, except on the
# volunteers and seats of other sites (agent A and the seat are not at its site).
OTHER_SITE_ROUTES = {
    ("GET", "/agents/{agent_id}"),
    ("POST", "/agents/{agent_id}/login"),
    ("POST", "/agents/{agent_id}/ready"),
    ("POST", "/agents/{agent_id}/pause"),
    ("POST", "/agents/{agent_id}/logout"),
    ("POST", "/agents/{agent_id}/answer"),
    ("POST", "/agents/{agent_id}/hangup"),
    ("POST", "/agents/{agent_id}/transfer"),
    ("POST", "/agents/{agent_id}/wrap-up/end"),
    ("POST", "/agents/{agent_id}/wrap-up/extend"),
    ("GET", "/seats/{seat_id}"),
    ("PUT", "/agents/{agent_id}/standby"),
    ("POST", "/users/{user_id}/revoke"),
    ("GET", "/practice/calls/{practice_call_id}"),
    ("GET", "/agents/{agent_id}/shifts"),
    ("PUT", "/shifts/{shift_id}/signups/{agent_id}"),
    ("DELETE", "/shifts/{shift_id}/signups/{agent_id}"),
}
POLICY = {
    route: roles | ({SUP_SITE} if SUP_A in roles and route not in OTHER_SITE_ROUTES else set())
    for route, roles in POLICY.items()
}
# Query strings of routes that need one (formatted with the ids, like the paths).
QUERIES: dict[tuple[str, str], str] = {
    # A stream never ends: an unknown campaign's 404 ends it here, for every role
    # (tests/test_board_stream.py streams it, with no credentials, to its viewers).
    ("GET", "/board/stream"): "?campaign_id=999999999",
    ("GET", "/planning/rundowns/derived"): "?campaign_id={campaign_id}",
    ("GET", "/planning/handle-times"): "?campaign_id={campaign_id}",
    ("POST", "/roster/import"): "?campaign_id={campaign_id}",
    ("GET", "/reports/hours"): "?campaign_id={campaign_id}",
    ("GET", "/alerts"): "?campaign_id={campaign_id}",
    ("GET", "/alerts/kinds"): "?campaign_id={campaign_id}",
    ("GET", "/pledges/totals.csv"): "?campaign_id={campaign_id}&table=by_slot",
    ("GET", "/pledges/totals.xlsx"): "?campaign_id={campaign_id}&table=by_slot",
    # No volunteer of campaign A is lent by a company: 404 where allowed.
    ("GET", "/reports/hours/attestation.pdf"): "?campaign_id={campaign_id}&employer=Acme",
    ("POST", "/shifts/signups/import"): "?campaign_id={campaign_id}",
}
PUBLIC_PATHS = (
    "/healthz",
    "/readyz",
    "/auth/login",
    "/board/totals",
    "/board/stream",
    "/i18n/{language}",
)
ENDS_SESSIONS = {("POST", "/users/{user_id}/revoke"), ("POST", "/auth/logout")}

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/campaigns"): {"name": "Matrix", "dialled_numbers": ["+33800999999"]},
    ("PATCH", "/campaigns/{campaign_id}"): {"closed_message": "Closed."},
    ("POST", "/queues"): {"campaign_id": 0, "name": "matrix"},
    ("PATCH", "/queues/{queue_id}"): {"wrapup_seconds": 25},
    ("POST", "/agents"): {"campaign_id": 0, "login": "matrix", "display_name": "M"},
    ("PATCH", "/agents/{agent_id}"): {"display_name": "Renamed"},
    ("PATCH", "/users/{user_id}"): {"display_name": "Renamed"},
    ("POST", "/agents/{agent_id}/login"): {},
    ("POST", "/agents/{agent_id}/pause"): {"reason": "break"},
    ("POST", "/agents/{agent_id}/transfer"): {"number": "+33142000000"},
    ("POST", "/agents/{agent_id}/wrap-up/end"): {},
    ("POST", "/agents/{agent_id}/wrap-up/extend"): {"seconds": 10},
    ("POST", "/seats"): {"campaign_id": 0, "name": "matrix", "address": "sip:m@pbx"},
    ("PATCH", "/seats/{seat_id}"): {"site": "annex"},
    ("POST", "/telephony/events"): {"event_id": "x", "type": "call.hangup", "call_id": "x"},
    ("POST", "/auth/login"): {"username": "org", "secret": "organiser-x"},
    ("POST", "/pledges"): {
        "campaign_id": 0,
        "amount_minor": 2500,
        "last_name": "Matrix",
        "email": "m@example.org",
    },
    ("PATCH", "/pledges/{reference}"): {"note": "matrix"},
    ("POST", "/pledges/{reference}/cancel"): {"reason": "duplicate"},
    ("POST", "/pledges/{reference}/payments"): {"amount_minor": 100},
    ("POST", "/payments/webhook"): {
        "payment_id": "p1",
        "reference": "ABC-DEF",
        "amount_minor": 100,
        "currency": "EUR",
    },
    ("POST", "/pledges/{reference}/payments/{payment_id}/cancel"): {"reason": "refund"},
    ("POST", "/receipts/organisations"): {"name": "Matrix charity"},
    ("PATCH", "/receipts/organisations/{organisation_id}"): {"city": "Lyon"},
    ("PUT", "/receipts/campaigns/{campaign_id}"): {"organisation_id": 1},
    ("POST", "/receipts/issue"): {"campaign_id": 0},
    # Nobody has this address: an admin gets 404, and nothing is erased.
    ("POST", "/privacy/donors/lookup"): {"email": "nobody@example.org"},
    ("POST", "/privacy/donors/export"): {"email": "nobody@example.org"},
    ("POST", "/privacy/donors/erase"): {"email": "nobody@example.org", "reason": "matrix"},
    ("POST", "/privacy/purge"): {},
    ("PUT", "/campaigns/{campaign_id}/rules"): {"source": "rules: []\n"},
    ("POST", "/campaigns/{campaign_id}/rules/check"): {"source": "rules: []\n"},
    ("PUT", "/queues/{queue_id}/surge"): {"enter_waiting": 5, "leave_waiting": 2},
    ("POST", "/queues/{queue_id}/surge/page"): {},
    ("PUT", "/agents/{agent_id}/standby"): {"standby": True},
    ("POST", "/campaigns/{campaign_id}/blocklist"): {"number": "+33611223344", "duration": "1h"},
    ("POST", "/planning/plan"): {
        "campaign_id": 0,
        "segments": [{"start": "20:00", "end": "20:15", "calls_per_15min": 10}],
    },
    ("POST", "/planning/plan.csv"): {
        "campaign_id": 0,
        "segments": [{"start": "20:00", "end": "20:15", "calls_per_15min": 10}],
    },
    ("POST", "/sites"): {"campaign_id": 0, "name": "Matrix", "organisation": "M"},
    ("PATCH", "/sites/{site_id}"): {"seats": 20},
    # A body that is no roster file: refused whole (422) where allowed.
    ("POST", "/roster/import"): {},
    ("POST", "/roster/volunteers"): {"campaign_id": 0, "display_name": "Matrix Volunteer"},
    ("POST", "/practice/calls"): {"scenario": "card"},
    ("POST", "/practice/calls/{practice_call_id}/pledge"): {
        "last_name": "Matrix",
        "email": "m@example.org",
        "amount_minor": 2500,
    },
    ("POST", "/practice/calls/{practice_call_id}/actions"): {"action": "read_back"},
    # No such site (422 where allowed): the matrix shift is made in the set-up.
    ("POST", "/shifts"): {
        "campaign_id": 0,
        "site_id": 0,
        "starts_at": "2030-01-01T20:00:00+01:00",
        "ends_at": "2030-01-02T00:00:00+01:00",
    },
    ("PATCH", "/shifts/{shift_id}"): {"label": "Matrix"},
    # A body that is no sign-up file: refused whole (422) where allowed.
    ("POST", "/shifts/signups/import"): {},
    ("POST", "/users"): {
        "username": "matrix",
        "display_name": "M",
        "role": "organiser",
        "secret": "organiser-pass",
    },
}


async def _user(
    hotline: Hotline,
    username: str,
    role: Role,
    secret: str,
    campaign_id: int | None = None,
    agent_id: int | None = None,
    site_id: int | None = None,
) -> tuple[int, str]:
    return await user_with_token(
        hotline.db,
        username=username,
        role=role,
        secret=secret,
        campaign_id=campaign_id,
        agent_id=agent_id,
        site_id=site_id,
        client="matrix",
    )


async def test_every_route_is_classified(hotline: Hotline) -> None:
    spec = (await hotline.http.get("/openapi.json")).json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == set(POLICY), {
        "unclassified": sorted(routes - set(POLICY)),
        "gone": sorted(set(POLICY) - routes),
    }


async def test_role_by_endpoint_matrix(hotline: Hotline) -> None:
    a = await setup_campaign(hotline, agents=1)
    b_campaign = await hotline.http.post(
        "/campaigns", json={"name": "Campaign B", "dialled_numbers": ["+33800000002"]}
    )
    b_id = b_campaign.json()["id"]
    b_agent = (
        await hotline.http.post(
            "/agents", json={"campaign_id": b_id, "login": "b1", "display_name": "B 1"}
        )
    ).json()["id"]
    seat = (
        await hotline.http.post(
            "/seats", json={"campaign_id": a["campaign_id"], "name": "s1", "address": "sip:s1@pbx"}
        )
    ).json()["id"]
    # A call nobody will be offered (no agent has the skill), so no volunteer sees it.
    await hotline.http.patch(
        f"/campaigns/{a['campaign_id']}",
        json={"dialled_numbers": ["+33800000001", "+33800000003"]},
    )
    await hotline.http.post(
        "/queues",
        json={
            "campaign_id": a["campaign_id"],
            "name": "unstaffed",
            "required_skill": "nobody-has-it",
            "dialled_numbers": ["+33800000003"],
        },
    )
    call = (await hotline.incoming("matrix-call", dialled="+33800000003")).json()["call"]["id"]
    agent_a = a["agent_ids"][0]
    pledge = await hotline.http.post(
        "/pledges",
        json={
            "campaign_id": a["campaign_id"],
            "amount_minor": 2500,
            "last_name": "Matrix",
            "email": "m@example.org",
        },
        headers={"Idempotency-Key": "matrix-pledge-key"},
    )
    assert pledge.status_code == 201, pledge.text

    tokens: dict[str, str | None] = {ANON: None}
    user_a, tokens[AGENT_A] = await _user(
        hotline, "agent-a", Role.AGENT, "111111", a["campaign_id"], agent_a
    )
    _, tokens[AGENT_B] = await _user(hotline, "agent-b", Role.AGENT, "222222", b_id, b_agent)
    _, tokens[SUP_A] = await _user(
        hotline, "sup-a", Role.SUPERVISOR, "supervisor-a", a["campaign_id"]
    )
    annex = await hotline.http.post(
        "/sites", json={"campaign_id": a["campaign_id"], "name": "Annex", "organisation": "A"}
    )
    assert annex.status_code == 201, annex.text
    _, tokens[SUP_SITE] = await _user(
        hotline,
        "sup-a-annex",
        Role.SUPERVISOR,
        "supervisor-annex",
        a["campaign_id"],
        site_id=annex.json()["id"],
    )
    # A shift at the Annex, tomorrow: agent A (no site) may sign up to it.
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    shift = await hotline.http.post(
        "/shifts",
        json={
            "campaign_id": a["campaign_id"],
            "site_id": annex.json()["id"],
            "starts_at": tomorrow.isoformat(),
            "ends_at": (tomorrow + dt.timedelta(hours=4)).isoformat(),
            "seats": 3,
        },
    )
    assert shift.status_code == 201, shift.text
    _, tokens[SUP_B] = await _user(hotline, "sup-b", Role.SUPERVISOR, "supervisor-b", b_id)
    _, tokens[ORG] = await _user(hotline, "org", Role.ORGANISER, "organiser-x")
    _, tokens[ADMIN] = await _user(hotline, "admin2", Role.ADMIN, "admin-two-pass")
    practice = await hotline.http.post(
        "/practice/calls",
        json={"scenario": "prank"},
        headers={"Authorization": f"Bearer {tokens[AGENT_A]}"},
    )
    assert practice.status_code == 201, practice.text

    ids = {
        "campaign_id": a["campaign_id"],
        "queue_id": a["queue_id"],
        "agent_id": agent_a,
        "seat_id": seat,
        "call_id": call,
        "user_id": user_a,
        "reference": pledge.json()["reference"],
        "number": "+33611223344",
        "payment_id": 1,
        "organisation_id": 1,
        "receipt_id": 1,
        "line_id": 1,
        "name": "matrix",
        "site_id": annex.json()["id"],
        "shift_id": shift.json()["id"],
        "language": "fr",
        "seq": 1,
        "practice_call_id": practice.json()["id"],
    }
    transport = hotline.http._transport
    failures: list[str] = []
    ordered = sorted(POLICY, key=lambda route: route in ENDS_SESSIONS)
    for method, path in ordered:
        for role in ROLES:
            if (method, path) in ENDS_SESSIONS and role != ADMIN:
                # Every other role's session must survive for the later rows.
                continue
            body = dict(BODIES.get((method, path), {}))
            if body.get("campaign_id") == 0:
                body["campaign_id"] = a["campaign_id"]
            headers = {"Authorization": f"Bearer {tokens[role]}"} if tokens[role] else {}
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.request(
                    method,
                    (path + QUERIES.get((method, path), "")).format(**ids),
                    json=body if method != "GET" else None,
                    headers=headers,
                )
            allowed = role in POLICY[(method, path)]
            refused = response.status_code in (401, 403, 404)
            if allowed and response.status_code in (401, 403):
                failures.append(f"{role} {method} {path}: refused {response.status_code}")
            if not allowed and not refused:
                failures.append(f"{role} {method} {path}: got {response.status_code}")
            anonymous_refused = role == ANON and path not in PUBLIC_PATHS
            if anonymous_refused and response.status_code != 401:
                failures.append(f"anonymous {method} {path}: {response.status_code} not 401")
    assert failures == [], "\n".join(failures)


async def test_supervisor_listings_are_scoped_to_their_campaign(hotline: Hotline) -> None:
    a = await setup_campaign(hotline, agents=2)
    b = await hotline.http.post(
        "/campaigns", json={"name": "Campaign B", "dialled_numbers": ["+33800000002"]}
    )
    await hotline.http.post(
        "/agents", json={"campaign_id": b.json()["id"], "login": "b1", "display_name": "B"}
    )
    _, token = await _user(hotline, "sup-a", Role.SUPERVISOR, "supervisor-a", a["campaign_id"])
    headers = {"Authorization": f"Bearer {token}"}
    agents = await hotline.http.get("/agents", headers=headers)
    assert sorted(x["id"] for x in agents.json()) == sorted(a["agent_ids"])
    campaigns = await hotline.http.get("/campaigns", headers=headers)
    assert [c["id"] for c in campaigns.json()] == [a["campaign_id"]]
    other = await hotline.http.get(f"/agents?campaign_id={b.json()['id']}", headers=headers)
    assert other.status_code == 403


async def test_cookie_sessions_need_the_csrf_token(hotline: Hotline) -> None:
    a = await setup_campaign(hotline, agents=1)
    await _user(hotline, "sup-a", Role.SUPERVISOR, "supervisor-a", a["campaign_id"])
    transport = hotline.http._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as browser:
        r = await browser.post("/auth/login", json={"username": "sup-a", "secret": "supervisor-a"})
        assert r.status_code == 200
        assert "httponly" in r.headers["set-cookie"].lower()
        assert "samesite=strict" in r.headers["set-cookie"].lower()
        csrf = r.json()["csrf_token"]
        agent = a["agent_ids"][0]
        refused = await browser.post(f"/agents/{agent}/pause", json={"reason": "break"})
        assert refused.status_code == 403
        assert refused.json()["code"] == "csrf"
        ok = await browser.post(
            f"/agents/{agent}/pause", json={"reason": "break"}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 200
        assert (await browser.get("/auth/me")).status_code == 200  # reads need no token


async def test_failed_logins_are_rate_limited(hotline: Hotline) -> None:
    await _user(hotline, "org", Role.ORGANISER, "organiser-x")
    for _ in range(hotline.settings.login_max_failures):
        r = await hotline.http.post("/auth/login", json={"username": "org", "secret": "nope"})
        assert r.status_code == 401
        assert r.json()["code"] == "bad_credentials"
    r = await hotline.http.post("/auth/login", json={"username": "org", "secret": "organiser-x"})
    assert r.status_code == 429
    assert r.json()["code"] == "too_many_attempts"

"""Donors' personal data (docs/personal-data.md): erasure and access, the retention
purge, on both databases, through the real app with the built-in directory as a
process of its own.

The erasure test puts a donor through everything that copies their details
(two calls with screen pops, a pledge, corrections, a payment, a block, exports),
erases them, then reads every text and JSON column of every table and the
captured logs for their name, number, e-mail and address: nothing is found,
another donor's details are untouched, and the totals and statistics are the same.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import JSON, Text, cast, select, update

from app.acd.models import Call
from app.auth.service import Role
from app.cti.directory_server import DirectoryProcess
from app.db import Base
from app.privacy.erasure import LEGAL_HOLDS, Kept, register_legal_hold
from app.privacy.scrub import json_escaped
from app.privacy.subjects import Subject
from tests.conftest import ADMIN_USERNAME, Hotline, setup_campaign, wait_for
from tests.pledge_helpers import connected_call, key, pledge_body, user_headers
from tests.procs import ROOT

DONOR_PHONE = "01 23 45 67 89"  # pinned in the built-in directory: listed (Marie Dupont)
DONOR_NUMBERS = (
    "+33123456789",
    "33123456789",
    "0123456789",
    "01 23 45 67 89",
    "01.23.45.67.89",
    "+33 1 23 45 67 89",
)
FIRST, LAST = "Zéphyrine", "Quintavalle"
EMAIL, EMAIL_BEFORE = "zephyrine.q@example.net", "z.quintavalle@example.com"
STREET = "7 impasse des Lilas"
# What the directory says about the number: on the screen pop, so theirs to erase too.
DIRECTORY_EMAIL = "marie.dupont@example.org"
DONOR_NEEDLES = (FIRST, LAST, EMAIL, EMAIL_BEFORE, STREET, DIRECTORY_EMAIL, *DONOR_NUMBERS)

OTHER_PHONE = "05 61 23 45 67"  # pinned: Jean Martin
OTHER_FIRST, OTHER_LAST = "Bertrand", "Lavoisier"

Factory = Callable[..., Awaitable[Hotline]]


async def with_directory(
    hotline_factory: Factory, directory: DirectoryProcess, **kw: Any
) -> Hotline:
    # A budget a loaded machine cannot miss: these tests are about data, not time.
    return await hotline_factory(directory_url=directory.base_url, directory_budget_ms=5000, **kw)


async def scan(hotline: Hotline, needles: tuple[str, ...]) -> list[str]:
    """Every (table.column: needle) where a needle is in a text or JSON column."""
    forms = {n.casefold() for needle in needles for n in (needle, json_escaped(needle))}
    hits = []
    async with hotline.db.read() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                try:
                    python_type = column.type.python_type
                except NotImplementedError:
                    python_type = None
                # JSON columns say "object": read those too.
                if python_type is not str and not isinstance(column.type, JSON):
                    continue
                rows = await session.execute(select(cast(column, Text)).where(column.is_not(None)))
                for (value,) in rows:
                    text = str(value).casefold()
                    hits += [f"{table.name}.{column.name}: {n}" for n in forms if n in text]
    return sorted(set(hits))


async def pop_stored(hotline: Hotline, call_id: int) -> None:
    async def stored() -> bool:
        rows = await hotline.sql("SELECT count(*) FROM screen_pops WHERE call_id = :c", c=call_id)
        return bool(rows[0][0])

    await wait_for(stored)


async def end_call(hotline: Hotline, agent_id: int) -> None:
    r = await hotline.http.post(f"/agents/{agent_id}/hangup")
    assert r.status_code == 200, r.text
    r = await hotline.http.post(f"/agents/{agent_id}/wrap-up/end", json={})
    assert r.status_code == 200, r.text


async def donor_history(hotline: Hotline) -> dict[str, Any]:
    """Two calls from the donor (screen pops, the second a returning donor's), a
    pledge corrected and paid, a block on the number; another donor's pledge."""
    setup = await setup_campaign(hotline, agents=1)
    campaign_id, agent_id = setup["campaign_id"], setup["agent_ids"][0]
    agent = await user_headers(hotline, Role.AGENT, campaign_id=campaign_id, agent_id=agent_id)
    first_call = await connected_call(hotline, agent_id, "privacy-1", caller=DONOR_PHONE)
    await pop_stored(hotline, first_call)
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(
            first_call,
            first_name=FIRST,
            last_name=LAST,
            email=EMAIL_BEFORE,
            phone=DONOR_PHONE,
            address="9 impasse des Lilas",
            note=f"{FIRST} {LAST} rappelle demain",
        ),
        headers={**agent, **key()},
    )
    assert r.status_code == 201, r.text
    reference = r.json()["reference"]
    r = await hotline.http.patch(
        f"/pledges/{reference}", json={"email": EMAIL, "address": STREET}, headers=agent
    )
    assert r.status_code == 200, r.text
    r = await hotline.http.post(f"/pledges/{reference}/payments", json={"amount_minor": 1000})
    assert r.status_code == 200, r.text
    await end_call(hotline, agent_id)
    second_call = await connected_call(hotline, agent_id, "privacy-2", caller="+33123456789")
    await pop_stored(hotline, second_call)
    await end_call(hotline, agent_id)
    other_call = await connected_call(hotline, agent_id, "privacy-3", caller=OTHER_PHONE)
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(
            other_call,
            first_name=OTHER_FIRST,
            last_name=OTHER_LAST,
            email="b.lavoisier@example.org",
            phone=OTHER_PHONE,
            amount_minor=4000,
        ),
        headers={**agent, **key()},
    )
    assert r.status_code == 201, r.text
    await end_call(hotline, agent_id)
    r = await hotline.http.post(
        f"/campaigns/{campaign_id}/blocklist",
        json={"number": DONOR_PHONE, "duration": "1h", "reason": f"{FIRST} asked for a pause"},
    )
    assert r.status_code == 201, r.text
    r = await hotline.http.get(f"/pledges/export.csv?campaign_id={campaign_id}")
    assert r.status_code == 200 and LAST in r.text
    return {**setup, "reference": reference, "calls": [first_call, second_call, other_call]}


async def figures(hotline: Hotline, setup: dict[str, Any]) -> dict[str, Any]:
    """Totals and statistics as the screens and reports read them."""
    campaign_id = setup["campaign_id"]
    totals = await hotline.http.get(f"/pledges/totals?campaign_id={campaign_id}")
    stats = await hotline.http.get(f"/queues/{setup['queue_id']}/stats?window_seconds=86400")
    blocks = await hotline.http.get(f"/campaigns/{campaign_id}/blocklist")
    board = await hotline.http.get(f"/board/totals?campaign_id={campaign_id}")
    for answer in (totals, stats, blocks, board):
        assert answer.status_code == 200, answer.text
    queue_stats = stats.json()
    queue_stats.pop("longest_wait_seconds")  # of calls waiting now: none, but a clock
    return {
        "totals": totals.json(),
        "stats": queue_stats,
        # The number itself is what changes; every count per number must not.
        # The number (and the free-text reason) are what change; no count may.
        "blocks": [
            {k: v for k, v in b.items() if k not in ("number", "reason")} for b in blocks.json()
        ],
        "board": {k: v for k, v in board.json().items() if k != "updated_at"},
    }


async def test_an_erased_donor_leaves_no_copy_anywhere(
    hotline_factory: Factory, directory: DirectoryProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hotline = await with_directory(hotline_factory, directory)
    setup = await donor_history(hotline)
    # The scan finds them before: in text columns and in JSON ones (events, pops).
    found = await scan(hotline, DONOR_NEEDLES)
    assert {"events.data", "screen_pops.data", "pledge_audit.before", "pledges.email"} <= {
        hit.split(":")[0] for hit in found
    }
    exported = await hotline.http.post("/privacy/donors/export", json={"phone": DONOR_PHONE})
    assert exported.status_code == 200, exported.text
    assert LAST in exported.text and EMAIL in exported.text
    lookup = hotline.app.state.caller_lookup
    assert len(lookup.directory.cache) > 0
    before = await figures(hotline, setup)

    r = await hotline.http.post(
        "/privacy/donors/erase", json={"email": EMAIL, "reason": "request 2026-0042"}
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["pledges"] == 1 and done["calls"] == 2 and done["kept"] == []

    assert await scan(hotline, DONOR_NEEDLES) == []
    assert [n for n in DONOR_NEEDLES if n.casefold() in caplog.text.casefold()] == []
    assert await figures(hotline, setup) == before
    assert len(lookup.directory.cache) == 0
    # The other donor is untouched.
    assert await scan(hotline, (OTHER_FIRST, OTHER_LAST, "+33561234567")) != []
    rows = await hotline.sql(
        "SELECT first_name, last_name FROM pledges WHERE last_name = :l", l=OTHER_LAST
    )
    assert [tuple(r) for r in rows] == [(OTHER_FIRST, OTHER_LAST)]
    # The pledge is still there, without its donor: its reference still finds it.
    r = await hotline.http.post("/privacy/donors/export", json={"reference": setup["reference"]})
    assert r.status_code == 200, r.text
    assert [n for n in DONOR_NEEDLES if n.casefold() in r.text.casefold()] == []
    assert r.json()["pledges"][0]["amount_minor"] == 2500
    # Audited, and announced (caches of other processes go on this event).
    actions = await hotline.sql("SELECT action, actor, looked_up_by, reason FROM privacy_actions")
    assert sorted(tuple(a) for a in actions) == [
        ("erase", ADMIN_USERNAME, "email", "request 2026-0042"),
        ("export", ADMIN_USERNAME, "phone", ""),
        ("export", ADMIN_USERNAME, "reference", ""),
    ]
    events = await hotline.sql("SELECT count(*) FROM events WHERE type = 'privacy.erased'")
    assert events[0][0] == 1
    # Once erased, the e-mail finds nobody.
    r = await hotline.http.post("/privacy/donors/lookup", json={"email": EMAIL})
    assert r.status_code == 404 and r.json()["field"] == "email"


async def test_export_holds_what_is_kept_and_is_audited(
    hotline_factory: Factory, directory: DirectoryProcess
) -> None:
    hotline = await with_directory(hotline_factory, directory)
    setup = await donor_history(hotline)
    r = await hotline.http.post("/privacy/donors/lookup", json={"reference": setup["reference"]})
    assert r.status_code == 200, r.text
    found = r.json()
    assert [p["last_name"] for p in found["pledges"]] == [LAST]
    assert found["calls"] == 2 and found["numbers"] == ["+33123456789"]
    assert found["emails"] == [EMAIL]
    r = await hotline.http.post("/privacy/donors/export", json={"email": EMAIL.upper()})
    assert r.status_code == 200, r.text
    data = r.json()
    assert [p["reference"] for p in data["pledges"]] == [setup["reference"]]
    assert [a["action"] for a in data["pledge_audit"]] == ["created", "corrected", "payment"]
    assert sorted(c["id"] for c in data["calls"]) == sorted(setup["calls"][:2])
    assert len(data["screen_pops"]) == 2 and data["events"]
    assert [b["reason"] for b in data["number_blocks"]] == [f"{FIRST} asked for a pause"]
    # A look-up alone is not recorded; an export is.
    actions = await hotline.sql("SELECT action, looked_up_by, summary FROM privacy_actions")
    assert len(actions) == 1 and tuple(actions[0][:2]) == ("export", "email")
    events = await hotline.sql("SELECT count(*) FROM events WHERE type = 'privacy.exported'")
    assert events == [(1,)]
    assert LAST not in str(actions[0][2])  # the register itself holds no personal data


async def test_what_the_law_keeps_is_left_and_the_reason_recorded(
    hotline_factory: Factory, directory: DirectoryProcess
) -> None:
    """A legal hold (as the tax receipts package registers one) keeps its rows."""

    async def receipts_kept(uow: Any, subject: Subject) -> list[Kept]:
        return [
            Kept(
                kind="tax_receipt",
                table="pledges",
                ids=list(subject.pledge_ids),
                reason="LPF art. L102 B: a receipt and its donor are kept 6 years",
            )
        ]

    hotline = await with_directory(hotline_factory, directory)
    await donor_history(hotline)
    register_legal_hold(receipts_kept)
    try:
        r = await hotline.http.post(
            "/privacy/donors/erase", json={"phone": DONOR_PHONE, "reason": "request 7"}
        )
    finally:
        LEGAL_HOLDS.remove(receipts_kept)
    assert r.status_code == 200, r.text
    kept = r.json()["kept"]
    assert [(k["kind"], k["table"]) for k in kept] == [("tax_receipt", "pledges")]
    rows = await hotline.sql(
        "SELECT first_name, last_name, email FROM pledges WHERE id = :i", i=kept[0]["ids"][0]
    )
    assert [tuple(row) for row in rows] == [(FIRST, LAST, EMAIL)]
    # Everything else of theirs is gone: the held pledge is the only place left.
    left = await scan(hotline, (FIRST, LAST, EMAIL, "+33123456789"))
    assert {hit.split(":")[0] for hit in left} <= {
        "pledges.first_name",
        "pledges.last_name",
        "pledges.email",
        "pledges.note",
        "pledges.phone_e164",
        "pledges.caller_number",
    }
    register = await hotline.sql("SELECT kept FROM privacy_actions WHERE action = 'erase'")
    assert "LPF art. L102 B" in str(register[0][0])


async def test_screen_pops_go_thirty_days_after_the_campaign_ends(
    hotline_factory: Factory, directory: DirectoryProcess
) -> None:
    hotline = await with_directory(hotline_factory, directory)
    setup = await setup_campaign(hotline, agents=1)
    call_id = await connected_call(hotline, setup["agent_ids"][0], "privacy-pop", DONOR_PHONE)
    await pop_stored(hotline, call_id)
    await end_call(hotline, setup["agent_ids"][0])
    now = dt.datetime.now(dt.UTC)
    r = await hotline.http.post(
        "/privacy/purge", json={"as_of": (now + dt.timedelta(days=29)).isoformat()}
    )
    assert r.json()["changed"]["screen_pops"] == 0
    assert await hotline.sql("SELECT count(*) FROM screen_pops") == [(1,)]
    r = await hotline.http.post(
        "/privacy/purge", json={"as_of": (now + dt.timedelta(days=31)).isoformat()}
    )
    changed = r.json()["changed"]
    assert changed["screen_pops"] > 0 and changed["caller_numbers"] == 0
    assert await hotline.sql("SELECT count(*) FROM screen_pops") == [(0,)]
    # The events keep what the statistics and the audit of the call need.
    events = await hotline.sql(
        "SELECT type, data FROM events WHERE call_id = :c ORDER BY seq", c=call_id
    )
    types = [t for t, _ in events]
    assert types[0] == "call.received" and "call.completed" in types
    assert [n for n in DONOR_NEEDLES if any(n in str(d) for _, d in events)] == []
    # The call record keeps its number until its own period (13 months).
    rows = await hotline.sql("SELECT caller_number FROM calls WHERE id = :c", c=call_id)
    assert rows == [("+33123456789",)]
    # A campaign that takes calls again has ended again later: its new pop goes too.
    later_call = await connected_call(hotline, setup["agent_ids"][0], "privacy-pop-2", OTHER_PHONE)
    await pop_stored(hotline, later_call)
    await end_call(hotline, setup["agent_ids"][0])
    r = await hotline.http.post(
        "/privacy/purge", json={"as_of": (now + dt.timedelta(days=31)).isoformat()}
    )
    assert r.json()["changed"]["screen_pops"] > 0
    assert await hotline.sql("SELECT count(*) FROM screen_pops") == [(0,)]
    events = await hotline.sql("SELECT data FROM events WHERE call_id = :c", c=later_call)
    assert events and [d for (d,) in events if "561234567" in str(d) or "Martin" in str(d)] == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"reason": "x request"}, 422, "phone"),
        ({"phone": DONOR_PHONE, "email": EMAIL, "reason": "a request"}, 422, "phone"),
        ({"phone": "not a number", "reason": "a request"}, 422, "phone"),
        ({"email": "nobody", "reason": "a request"}, 422, "email"),
        ({"email": "nobody@example.org", "reason": "a request"}, 404, "email"),
        ({"reference": "ZZZZZZ", "reason": "a request"}, 404, "reference"),
        ({"email": EMAIL}, 422, "reason"),
        ({"email": EMAIL, "reason": "4111 1111 1111 1111"}, 422, "reason"),
    ],
)
async def test_a_bad_erasure_request_is_refused_and_changes_nothing(
    hotline: Hotline, body: dict[str, Any], status: int, field: str
) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    agent = await user_headers(
        hotline, Role.AGENT, campaign_id=setup["campaign_id"], agent_id=agent_id
    )
    call_id = await connected_call(hotline, agent_id, "privacy-bad", DONOR_PHONE)
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(call_id, first_name=FIRST, last_name=LAST, email=EMAIL),
        headers={**agent, **key()},
    )
    assert r.status_code == 201, r.text
    r = await hotline.http.post("/privacy/donors/erase", json=body)
    assert r.status_code == status, r.text
    error = r.json()
    assert set(error) == {"code", "message", "field"} and error["field"] == field
    assert await hotline.sql("SELECT count(*) FROM privacy_actions") == [(0,)]
    rows = await hotline.sql("SELECT first_name, email FROM pledges")
    assert [tuple(row) for row in rows] == [(FIRST, EMAIL)]


@pytest.mark.parametrize("role", [Role.ORGANISER, Role.SUPERVISOR, Role.AGENT])
async def test_only_an_admin_may_look_up_export_or_erase(hotline: Hotline, role: Role) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0] if role == Role.AGENT else None
    headers = await user_headers(hotline, role, campaign_id=setup["campaign_id"], agent_id=agent_id)
    for path, body in (
        ("/privacy/donors/lookup", {"email": EMAIL}),
        ("/privacy/donors/export", {"email": EMAIL}),
        ("/privacy/donors/erase", {"email": EMAIL, "reason": "a request"}),
        ("/privacy/purge", {}),
    ):
        r = await hotline.http.post(path, json=body, headers=headers)
        assert r.status_code == 403, (path, r.text)


# --- retention ---------------------------------------------------------------------


async def test_the_purge_removes_what_is_due_and_keeps_totals_and_statistics(
    hotline_factory: Factory, directory: DirectoryProcess
) -> None:
    hotline = await with_directory(hotline_factory, directory)
    setup = await donor_history(hotline)
    before = await figures(hotline, setup)
    r = await hotline.http.get("/privacy/retention")
    assert [k["kind"] for k in r.json()] == [
        "screen_pops",
        "caller_numbers",
        "pledges",
        "idempotency_keys",
        "receipts",
        "sms_pages",
    ]

    # Nothing is due yet: nothing changes.
    r = await hotline.http.post("/privacy/purge", json={})
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == {
        "screen_pops": 0,
        "caller_numbers": 0,
        "pledges": 0,
        "idempotency_keys": 0,
        "receipts": 0,
        "sms_pages": 0,
    }
    assert await scan(hotline, (LAST, "+33123456789")) != []

    # Seven years on, everything is due.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=7 * 366)
    r = await hotline.http.post("/privacy/purge", json={"as_of": later.isoformat()})
    assert r.status_code == 200, r.text
    changed = r.json()["changed"]
    assert all(changed[kind] > 0 for kind in ("screen_pops", "caller_numbers", "pledges"))
    assert await figures(hotline, setup) == before
    people = (
        *DONOR_NEEDLES,
        OTHER_FIRST,
        OTHER_LAST,
        "b.lavoisier@example.org",
        "+33561234567",
        "0561234567",
    )
    assert await scan(hotline, people) == []
    assert await hotline.sql("SELECT count(*) FROM screen_pops") == [(0,)]
    numbers = await hotline.sql("SELECT DISTINCT caller_number FROM calls")
    assert len(numbers) == 2 and all(n.startswith("p:") for (n,) in numbers)
    # Done once: a second purge finds nothing left.
    r = await hotline.http.post("/privacy/purge", json={"as_of": later.isoformat()})
    assert r.json()["changed"] == {
        "screen_pops": 0,
        "caller_numbers": 0,
        "pledges": 0,
        "idempotency_keys": 0,
        "receipts": 0,
        "sms_pages": 0,
    }
    purges = await hotline.sql("SELECT looked_up_by FROM privacy_actions WHERE action = 'purge'")
    assert sorted(p for (p,) in purges) == [
        "caller_numbers",
        "idempotency_keys",
        "pledges",
        "screen_pops",
    ]


async def test_a_purge_as_of_the_past_is_refused(hotline: Hotline) -> None:
    r = await hotline.http.post("/privacy/purge", json={"as_of": "2020-01-01T00:00:00Z"})
    assert r.status_code == 422 and r.json()["field"] == "as_of"
    r = await hotline.http.post("/privacy/purge", json={"as_of": "2030-01-01T00:00:00"})
    assert r.status_code == 422 and r.json()["field"] == "as_of"
    assert await hotline.sql("SELECT count(*) FROM privacy_actions") == [(0,)]


async def age_calls(hotline: Hotline, days: int) -> None:
    async with hotline.db.unit_of_work() as uow:
        then = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        await uow.session.execute(update(Call).values(received_at=then))


async def test_the_background_task_pseudonymises_old_caller_numbers(
    hotline_factory: Factory,
) -> None:
    hotline = await hotline_factory(retention_purge_seconds=0.1)
    setup = await setup_campaign(hotline, agents=1)
    await connected_call(hotline, setup["agent_ids"][0], "privacy-old", DONOR_PHONE)
    await end_call(hotline, setup["agent_ids"][0])
    await connected_call(hotline, setup["agent_ids"][0], "privacy-new", OTHER_PHONE)
    # Only the first call is older than 13 months, aged in one transaction: the
    # purge runs every 0.1 s and must never see the second one old.
    async with hotline.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Call)
            .where(Call.provider_call_id == "privacy-old")
            .values(received_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=14 * 31))
        )

    async def purged() -> list[Any]:
        rows = await hotline.sql(
            "SELECT caller_number FROM calls WHERE provider_call_id = 'privacy-old'"
        )
        return [r for r in rows if str(r[0]).startswith("p:")]

    await wait_for(purged)
    rows = await hotline.sql(
        "SELECT caller_number, caller_raw FROM calls WHERE provider_call_id = 'privacy-new'"
    )
    assert [tuple(r) for r in rows] == [("+33561234567", OTHER_PHONE)]


def test_the_purge_command(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEDGELINE_")}
    env["PLEDGELINE_DATABASE_URL"] = database_url
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "privacy", "purge", "--as-of", later],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    kinds = [line.split(":")[0] for line in done.stdout.splitlines()]
    assert kinds == [
        "screen_pops",
        "caller_numbers",
        "pledges",
        "idempotency_keys",
        "receipts",
        "sms_pages",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "app.cli", "privacy", "purge", "--as-of", "soon"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "not an ISO 8601 time" in bad.stderr


def test_json_escaped_matches_sqlite_json_text() -> None:
    assert json_escaped(FIRST) == json.dumps(FIRST)[1:-1] == "Z\\u00e9phyrine"


async def test_every_process_drops_its_directory_cache_on_an_erasure(
    hotline_factory: Factory, directory: DirectoryProcess
) -> None:
    """Two apps on one database, as two server processes: the one that looked the
    number up drops its cache when the other erases the donor (the event feed)."""
    looker = await with_directory(hotline_factory, directory, event_catch_up_seconds=0.1)
    # Started second: it empties the database, so it holds the admin login.
    eraser = await with_directory(hotline_factory, directory, event_catch_up_seconds=0.1)
    await setup_campaign(eraser, agents=1)
    attempts = iter(range(1000))

    async def call_taken_by_looker() -> bool:
        # The looker reads the new campaign from the events; until then it refuses.
        answer = await looker.incoming(f"privacy-x-{next(attempts)}", caller=DONOR_PHONE)
        return answer.status_code == 200

    await wait_for(call_taken_by_looker)
    cache = looker.app.state.caller_lookup.directory.cache

    async def looked_up() -> bool:
        return len(cache) > 0

    await wait_for(looked_up)
    r = await eraser.http.post(
        "/privacy/donors/erase", json={"phone": DONOR_PHONE, "reason": "request 9"}
    )
    assert r.status_code == 200, r.text

    async def dropped() -> bool:
        return len(cache) == 0

    await wait_for(dropped)

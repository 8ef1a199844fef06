"""Payment reconciliation through the real API, on SQLite and PostgreSQL.

A French bank's export (cp1252, ';', decimal comma, account lines before the
header) and a payment provider's (UTF-8 with a BOM, ISO times, transaction ids)
are imported; lines are matched by reference, then by amount and name with a
confidence; payments are recorded through the pledges' own payment recording,
once however often a file is imported; what is not sure waits for an organiser.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from app import signing
from app.auth.service import Role
from tests.conftest import Hotline, wait_for
from tests.pledge_helpers import user_headers
from tests.procs import PAYMENT_WEBHOOK_SECRET
from tests.reconciliation_helpers import (
    BANK_SOURCE,
    PROVIDER_SOURCE,
    bank_file,
    campaign,
    counts,
    get_pledge,
    lines,
    pledge,
    provider_file,
    save_source,
    upload,
)


async def test_bank_export_matches_by_reference_then_amount_and_name(hotline: Hotline) -> None:
    cid = await campaign(hotline)
    by_ref = await pledge(hotline, cid, first_name="Émile", last_name="Zola", amount_minor=123450)
    full = await pledge(hotline, cid, first_name="Jean", last_name="Dupont", amount_minor=4000)
    last = await pledge(hotline, cid, first_name="Anne", last_name="Martin", amount_minor=1500)
    await save_source(hotline, "banque", BANK_SOURCE)
    compact_ref = by_ref["reference"].replace("-", "")
    data = bank_file(
        [
            ("04/12/2026", "1 234,50", f"VIR SEPA DON TELETHON REF {compact_ref}", "M ZOLA"),
            ("04/12/2026", "40,00", "VIR SEPA DON", "M OU MME DUPONT JEAN"),
            ("05/12/2026", "15,00", "VIR DON", "MARTIN"),
            ("05/12/2026", "77,00", "VIR INCONNU", "PERSONNE"),
            ("05/12/2026", "", "PRLV FRAIS BANCAIRES", "LA BANQUE"),
        ]
    )

    r = await upload(hotline, "banque", cid, data, filename="releve-decembre.csv")
    assert r.status_code == 201, r.text
    result = r.json()
    assert {k: result[k] for k in ("lines", "recorded", "unmatched", "ignored", "duplicates")} == {
        "lines": 5,
        "recorded": 2,
        "unmatched": 2,
        "ignored": 1,
        "duplicates": 0,
    }
    assert result["recorded_minor"] == 123450 + 4000
    assert result["filename"] == "releve-decembre.csv" and result["actor"] == "test-admin"

    # Read exactly, never through a float: 1 234,50 is 123450 cents.
    paid = await get_pledge(hotline, by_ref["reference"])
    assert (paid["paid_minor"], paid["status"]) == (123450, "paid")
    assert paid["paid_at"].startswith("2026-12-04T00:00:00")
    paid = await get_pledge(hotline, full["reference"])
    assert (paid["paid_minor"], paid["status"]) == (4000, "paid")
    assert (await get_pledge(hotline, last["reference"]))["paid_minor"] == 0

    recorded = {line["pledge"]["reference"]: line for line in await lines(hotline, cid, "recorded")}
    assert recorded[by_ref["reference"]]["method"] == "reference"
    assert recorded[by_ref["reference"]]["confidence"] == 100
    assert recorded[full["reference"]]["method"] == "amount_name"
    assert recorded[full["reference"]]["confidence"] == 90
    assert recorded[full["reference"]]["label"] == "VIR SEPA DON"

    waiting = {line["payer"]: line for line in await lines(hotline, cid, "unmatched")}
    assert set(waiting) == {"MARTIN", "PERSONNE"}
    # Amount and last name: a suggestion with its confidence, not recorded.
    assert waiting["MARTIN"]["confidence"] == 70
    assert [s["pledge"]["reference"] for s in waiting["MARTIN"]["suggestions"]] == [
        last["reference"]
    ]
    assert waiting["MARTIN"]["suggestions"][0]["pledge"]["name"] == "Anne Martin"
    assert waiting["PERSONNE"]["suggestions"] == [] and waiting["PERSONNE"]["confidence"] == 0
    ignored = await lines(hotline, cid, "ignored")
    assert [line["label"] for line in ignored] == ["PRLV FRAIS BANCAIRES"]

    # The payments went through the pledges' recording: audit and events with them.
    audit = await hotline.http.get(f"/pledges/{full['reference']}/audit")
    assert [a["action"] for a in audit.json()] == ["created", "payment"]
    events = await hotline.sql(
        "SELECT data FROM events WHERE type = 'payments.imported' ORDER BY seq"
    )
    assert len(events) == 1
    announced = events[0][0] if isinstance(events[0][0], dict) else json.loads(events[0][0])
    assert announced["recorded"] == 2 and announced["import_id"] == result["id"]

    # The same file again records nothing twice.
    before = await counts(hotline)
    again = await upload(hotline, "banque", cid, data, filename="releve-decembre.csv")
    assert again.status_code == 201, again.text
    assert again.json()["duplicates"] == 5 and again.json()["recorded"] == 0
    payments, imported, batches = await counts(hotline)
    assert (payments, imported) == before[:2] and batches == before[2] + 1
    assert (await get_pledge(hotline, by_ref["reference"]))["paid_minor"] == 123450

    listed = await hotline.http.get("/payments/imports", params={"campaign_id": cid})
    assert [b["duplicates"] for b in listed.json()] == [5, 0]


async def test_identical_lines_are_two_payments_and_a_longer_export_adds_only_the_new(
    hotline: Hotline,
) -> None:
    cid = await campaign(hotline)
    donor = await pledge(hotline, cid, amount_minor=5000, frequency="monthly")
    await save_source(hotline, "banque", BANK_SOURCE)
    line = ("01/12/2026", "50,00", f"PRLV DON MENSUEL {donor['reference']}", "CURIE")
    r = await upload(hotline, "banque", cid, bank_file([line, line]))
    assert r.json()["recorded"] == 2, r.text
    # Next month's export repeats both lines and adds a third.
    more = ("02/01/2027", "50,00", f"PRLV DON MENSUEL {donor['reference']}", "CURIE")
    r = await upload(hotline, "banque", cid, bank_file([line, line, more]))
    assert (r.json()["recorded"], r.json()["duplicates"]) == (1, 2), r.text
    # A monthly instalment is no over-payment.
    paid = await get_pledge(hotline, donor["reference"])
    assert paid["paid_minor"] == 15000
    assert await lines(hotline, cid, "differences") == []


async def test_over_and_under_payments_are_listed_until_checked(hotline: Hotline) -> None:
    cid = await campaign(hotline)
    over = await pledge(hotline, cid, amount_minor=2000)
    under = await pledge(hotline, cid, amount_minor=10000, last_name="Pasteur")
    exact = await pledge(hotline, cid, amount_minor=3000, last_name="Hugo")
    await save_source(hotline, "banque", BANK_SOURCE)
    data = bank_file(
        [
            ("03/12/2026", "25,00", f"DON {over['reference']}", "X"),
            ("03/12/2026", "60,00", f"DON {under['reference']}", "Y"),
            ("03/12/2026", "30,00", f"DON {exact['reference']}", "Z"),
        ]
    )
    assert (await upload(hotline, "banque", cid, data)).json()["recorded"] == 3

    differences = {d["pledge"]["reference"]: d for d in await lines(hotline, cid, "differences")}
    assert set(differences) == {over["reference"], under["reference"]}
    assert differences[over["reference"]]["difference_minor"] == 500
    assert differences[under["reference"]]["difference_minor"] == -4000
    assert (await get_pledge(hotline, over["reference"]))["status"] == "paid"
    assert (await get_pledge(hotline, under["reference"]))["status"] == "partially_paid"

    line_id = differences[over["reference"]]["id"]
    r = await hotline.http.post(f"/payments/lines/{line_id}/reviewed")
    assert r.status_code == 200 and r.json()["reviewed_at"], r.text
    left = await lines(hotline, cid, "differences")
    assert [d["pledge"]["reference"] for d in left] == [under["reference"]]
    # Checking a line without a difference is refused, and changes nothing.
    exact_line = next(
        x for x in await lines(hotline, cid, "recorded") if x["difference_minor"] == 0
    )
    r = await hotline.http.post(f"/payments/lines/{exact_line['id']}/reviewed")
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_review"


async def test_an_organiser_matches_a_line_by_hand(hotline: Hotline) -> None:
    cid = await campaign(hotline)
    target = await pledge(hotline, cid, first_name="Louise", last_name="Michel", amount_minor=3000)
    await save_source(hotline, "banque", BANK_SOURCE)
    data = bank_file(
        [
            ("02/12/2026", "30,00", "VIR DE MADAME L M", "L M"),
            ("02/12/2026", "12,00", "VIR NOT A PLEDGE", "SOMEONE"),
        ]
    )
    assert (await upload(hotline, "banque", cid, data)).json()["unmatched"] == 2
    organiser = await user_headers(hotline, Role.ORGANISER)
    waiting = {x["amount_minor"]: x for x in await lines(hotline, cid, "unmatched")}
    # Amount only: a weak suggestion (30), shown and not recorded.
    assert waiting[3000]["confidence"] == 30

    r = await hotline.http.post(
        f"/payments/lines/{waiting[3000]['id']}/match",
        json={"reference": target["reference"].lower()},
        headers=organiser,
    )
    assert r.status_code == 200, r.text
    matched = r.json()
    assert (matched["status"], matched["method"], matched["confidence"]) == (
        "recorded",
        "manual",
        100,
    )
    assert matched["pledge"]["reference"] == target["reference"]
    paid = await get_pledge(hotline, target["reference"])
    assert (paid["paid_minor"], paid["status"]) == (3000, "paid")

    # Twice is refused, and records nothing more.
    r = await hotline.http.post(
        f"/payments/lines/{waiting[3000]['id']}/match",
        json={"reference": target["reference"]},
        headers=organiser,
    )
    assert r.status_code == 409 and r.json()["code"] == "line_not_open"
    assert (await counts(hotline))[0] == 1
    # An unknown reference: 422, nothing recorded.
    r = await hotline.http.post(
        f"/payments/lines/{waiting[1200]['id']}/match",
        json={"reference": "ZZZ-ZZZ"},
        headers=organiser,
    )
    assert r.status_code == 422 and r.json()["field"] == "reference"
    r = await hotline.http.post(f"/payments/lines/{waiting[1200]['id']}/dismiss", headers=organiser)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    assert await lines(hotline, cid, "unmatched") == []
    assert (await counts(hotline))[0] == 1
    # Re-importing the file leaves both decisions alone.
    again = (await upload(hotline, "banque", cid, data)).json()
    assert (again["duplicates"], again["recorded"], again["unmatched"]) == (2, 0, 0)


async def test_a_bad_file_is_reported_line_by_line_and_nothing_is_imported(
    hotline: Hotline,
) -> None:
    cid = await campaign(hotline)
    good = await pledge(hotline, cid, amount_minor=2500)
    await save_source(hotline, "banque", BANK_SOURCE)
    data = bank_file(
        [
            ("01/12/2026", "25,00", f"DON {good['reference']}", "A"),
            ("01/12/2026", "12,345", "DON", "B"),
            ("2026-12-01", "10,00", "DON", "C"),
            ("01/12/2026", "1 23,00", "DON", "D"),
        ]
    ) + "01/12/2026;;5,00\r\n".encode("cp1252")
    r = await upload(hotline, "banque", cid, data)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "bad_file" and body["field"] == "file"
    assert body["problems"] == [
        {"line": 6, "column": "Crédit", "reason": "pas un montant : plus de 2 décimales pour EUR"},
        {"line": 7, "column": "Date opération", "reason": "pas une date de la forme %d/%m/%Y"},
        {
            "line": 8,
            "column": "Crédit",
            "reason": "pas un montant : les milliers ne sont pas groupés par trois",
        },
        {"line": 9, "column": None, "reason": "3 cellules là où l'en-tête en a 5"},
    ]
    assert await counts(hotline) == (0, 0, 0)
    assert (await get_pledge(hotline, good["reference"]))["paid_minor"] == 0

    # A cp1252 file sent to a UTF-8 source is refused, with the line and a hint.
    await save_source(hotline, "banque-utf8", {**BANK_SOURCE, "encoding": "utf-8"})
    r = await upload(hotline, "banque-utf8", cid, data)
    assert r.status_code == 422
    assert r.json()["problems"][0]["line"] == 1
    assert "cp1252" in r.json()["problems"][0]["reason"]
    # No header with the mapped columns.
    r = await upload(hotline, "banque", cid, b"a;b;c\r\n1;2;3\r\n")
    assert r.status_code == 422 and "aucune ligne d'en-tête" in r.json()["problems"][0]["reason"]
    assert await counts(hotline) == (0, 0, 0)


async def test_a_bad_file_s_problems_are_told_in_the_request_language(hotline: Hotline) -> None:
    cid = await campaign(hotline)
    await save_source(hotline, "banque", BANK_SOURCE)
    data = bank_file([("01/12/2026", "12,345", "DON", "B"), ("2026-12-01", "10,00", "DON", "C")])
    french = await upload(hotline, "banque", cid, data)
    english = await upload(hotline, "banque", cid, data, headers={"Accept-Language": "en"})
    assert french.status_code == english.status_code == 422
    assert french.json()["message"] == "le fichier n'a pas été importé : 2 problèmes"
    assert french.json()["problems"] == [
        {"line": 5, "column": "Crédit", "reason": "pas un montant : plus de 2 décimales pour EUR"},
        {"line": 6, "column": "Date opération", "reason": "pas une date de la forme %d/%m/%Y"},
    ]
    assert english.json()["message"] == "the file was not imported: 2 problems"
    assert english.json()["problems"] == [
        {"line": 5, "column": "Crédit", "reason": "not an amount: more than 2 decimals for EUR"},
        {"line": 6, "column": "Date opération", "reason": "not a date in the form %d/%m/%Y"},
    ]
    assert await counts(hotline) == (0, 0, 0)


async def test_provider_export_does_not_count_twice_what_the_webhook_recorded(
    hotline: Hotline,
) -> None:
    cid = await campaign(hotline)
    first = await pledge(hotline, cid, amount_minor=2500)
    second = await pledge(hotline, cid, amount_minor=1000, last_name="Curie", first_name="Pierre")
    body = json.dumps(
        {
            "payment_id": "py_1Qx7",
            "reference": first["reference"],
            "amount_minor": 2500,
            "currency": "EUR",
        }
    ).encode()
    r = await hotline.http.post(
        "/payments/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            **signing.signed_headers(PAYMENT_WEBHOOK_SECRET, body),
        },
    )
    assert r.status_code == 200 and r.json()["recorded"], r.text
    await save_source(hotline, "stripe", PROVIDER_SOURCE)
    data = provider_file(
        [
            ("py_1Qx7", "2026-12-05T21:03:00Z", "25.00", f"Pledge {first['reference']}", "M C"),
            (
                "py_2Ab9",
                "2026-12-05T22:10:00+01:00",
                "10.00",
                f"Pledge {second['reference']}",
                "P C",
            ),
        ]
    )
    r = await upload(hotline, "stripe", cid, data)
    assert r.status_code == 201, r.text
    assert (r.json()["recorded"], r.json()["already_recorded"]) == (1, 1)
    assert (await get_pledge(hotline, first["reference"]))["paid_minor"] == 2500
    paid = await get_pledge(hotline, second["reference"])
    assert paid["paid_minor"] == 1000 and paid["paid_at"].startswith("2026-12-05T21:10:00")
    ids = await hotline.sql(
        "SELECT provider_payment_id FROM pledge_payments ORDER BY provider_payment_id"
    )
    assert [row[0] for row in ids] == ["py_1Qx7", "py_2Ab9"]
    # A provider line without its transaction id is refused.
    r = await upload(hotline, "stripe", cid, provider_file([("", "2026-12-05", "5.00", "x", "y")]))
    assert (
        r.status_code == 422
        and r.json()["problems"][0]["reason"] == "aucun identifiant de transaction"
    )


async def test_card_numbers_in_a_file_are_never_stored(hotline: Hotline) -> None:
    cid = await campaign(hotline)
    await save_source(hotline, "banque", BANK_SOURCE)
    card = "4111 1111 1111 1111"
    data = bank_file(
        [
            ("01/12/2026", "20,00", f"PAIEMENT CB {card} DON", "A B"),
            ("01/12/2026", "21,00", "CB 4974 XXXX XXXX 1234 DON", "C D"),
            ("01/12/2026", "22,00", "DON", "CVV 123"),
        ]
    )
    r = await upload(hotline, "banque", cid, data, filename="releve.csv")
    assert r.status_code == 201, r.text
    assert r.json()["masked"] == 2
    labels = {x["amount_minor"]: x for x in await lines(hotline, cid, "unmatched")}
    assert labels[2000]["label"] == "PAIEMENT CB [card number removed] DON"
    assert labels[2100]["label"] == "CB 4974 XXXX XXXX 1234 DON"  # masked by the bank: kept
    assert labels[2200]["payer"] == "[card data removed]"
    dump = " ".join(str(row) for row in await hotline.sql("SELECT * FROM payment_lines"))
    dump += " ".join(str(row) for row in await hotline.sql("SELECT * FROM events"))
    assert "4111" not in dump and "CVV" not in dump
    # A card number in the file's name is refused, naming the field, never the value.
    r = await upload(hotline, "banque", cid, data, filename=f"{card}.csv")
    assert r.status_code == 422 and r.json()["code"] == "card_number", r.text
    assert r.json()["field"] == "filename" and "4111" not in r.text
    # Nor in a source's name (a path), which is never echoed either.
    r = await hotline.http.put("/payments/sources/4111111111111111", json=BANK_SOURCE)
    assert r.status_code == 422 and r.json()["code"] == "card_number", r.text
    r = await upload(hotline, "4111111111111111", cid, data)
    assert r.status_code == 404 and "4111" not in r.text


async def test_only_organisers_and_admins_reconcile(hotline: Hotline) -> None:
    cid = await campaign(hotline)
    await save_source(hotline, "banque", BANK_SOURCE)
    data = bank_file([("01/12/2026", "20,00", "DON", "A")])
    supervisor = await user_headers(hotline, Role.SUPERVISOR, campaign_id=cid)
    for method, path in (
        ("POST", "/payments/imports"),
        ("GET", "/payments/lines"),
        ("GET", "/payments/sources"),
        ("PUT", "/payments/sources/other"),
    ):
        r = await hotline.http.request(
            method,
            path,
            params={"source": "banque", "campaign_id": cid},
            content=data if method == "POST" else json.dumps(BANK_SOURCE),
            headers={**supervisor, "Content-Type": "application/json"},
        )
        assert r.status_code == 403, (path, r.text)
    assert await counts(hotline) == (0, 0, 0)
    organiser = await user_headers(hotline, Role.ORGANISER)
    r = await upload(hotline, "banque", cid, data, headers=organiser)
    assert r.status_code == 201, r.text
    # Unknown source, unknown campaign: 404 and 422, nothing imported.
    assert (await upload(hotline, "nope", cid, data)).status_code == 404
    r = await upload(hotline, "banque", cid + 1000, bank_file([("01/12/2026", "9,00", "X", "Y")]))
    assert r.status_code == 422 and r.json()["code"] == "unknown_campaign"


async def test_a_source_mapping_is_checked_when_saved(hotline: Hotline) -> None:
    bad = [
        ({**BANK_SOURCE, "columns": {"date": "Date", "reference": "Libellé"}}, "columns"),
        ({**BANK_SOURCE, "date_format": "%s"}, "date_format"),
        ({**BANK_SOURCE, "delimiter": "x"}, "delimiter"),
        ({**PROVIDER_SOURCE, "columns": {"date": "d", "amount": "a", "payer": "p"}}, None),
        ({**BANK_SOURCE, "encoding": "latin-9"}, "encoding"),
    ]
    for body, field in bad:
        r = await hotline.http.put("/payments/sources/banque", json=body)
        assert r.status_code == 422, (body, r.text)
        if field:
            assert r.json()["field"].startswith(field), r.json()
    assert (
        await hotline.http.put("/payments/sources/Not Valid", json=BANK_SOURCE)
    ).status_code == 422
    assert (await hotline.http.get("/payments/sources")).json() == []
    saved = await save_source(hotline, "banque", BANK_SOURCE)
    assert saved["columns"]["credit"] == "Crédit"
    changed = await save_source(hotline, "banque", {**BANK_SOURCE, "delimiter": ","})
    assert changed["id"] == saved["id"] and changed["delimiter"] == ","


async def test_the_same_file_imported_twice_at_once_records_each_payment_once(
    hotline: Hotline,
) -> None:
    """On PostgreSQL both imports run at once: the later one waits on the pledges'
    row locks, collides on the lines' keys, and is retried with every line known."""
    cid = await campaign(hotline)
    donors = [await pledge(hotline, cid, amount_minor=1000 + n) for n in range(8)]
    await save_source(hotline, "banque", BANK_SOURCE)
    data = bank_file(
        [
            (
                "04/12/2026",
                f"{(1000 + n) // 100},{(1000 + n) % 100:02d}",
                f"DON {d['reference']}",
                "X",
            )
            for n, d in enumerate(donors)
        ]
    )
    first, second = await asyncio.gather(
        upload(hotline, "banque", cid, data), upload(hotline, "banque", cid, data)
    )
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    results = sorted((r.json()["recorded"], r.json()["duplicates"]) for r in (first, second))
    assert results == [(0, 8), (8, 0)]
    assert await counts(hotline) == (8, 8, 2)
    for n, donor in enumerate(donors):
        assert (await get_pledge(hotline, donor["reference"]))["paid_minor"] == 1000 + n


@pytest.mark.pg_only
async def test_a_payment_committed_while_an_import_waits_is_not_lost(hotline: Hotline) -> None:
    """The import reads the pledges it may pay, then waits on a pledge's row lock held
    by another process, which records a payment and commits. The import's own locked
    read must see that payment: the pledge is paid both amounts, none lost."""
    cid = await campaign(hotline)
    donor = await pledge(hotline, cid, amount_minor=5000)
    await save_source(hotline, "banque", BANK_SOURCE)
    data = bank_file([("04/12/2026", "20,00", f"DON {donor['reference']}", "CURIE")])
    other = await asyncpg.connect(hotline.settings.database_url.replace("+asyncpg", ""))
    try:
        async with other.transaction():
            await other.execute(
                "SELECT id FROM pledges WHERE reference = $1 FOR UPDATE", donor["reference"]
            )
            importing = asyncio.create_task(upload(hotline, "banque", cid, data))

            async def import_waits_on_the_lock() -> bool:
                rows = await other.fetch(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event = 'transactionid' AND pid <> pg_backend_pid()"
                )
                return bool(rows)

            await wait_for(import_waits_on_the_lock)
            # Another process's payment of 5.00, as the pledges' service writes it.
            await other.execute(
                "UPDATE pledges SET paid_minor = paid_minor + 500 WHERE reference = $1",
                donor["reference"],
            )
        r = await importing
    finally:
        await other.close()
    assert r.status_code == 201 and r.json()["recorded"] == 1, r.text
    paid = await get_pledge(hotline, donor["reference"])
    assert paid["paid_minor"] == 2500

"""Tax receipts (Cerfa n° 11580) over the real API, on SQLite and PostgreSQL: the PDF
read back field by field, duplicatas, cancellation by a cancelled payment, refusals."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth.service import Role
from app.receipts.models import Receipt
from tests.conftest import Hotline, setup_campaign
from tests.pledge_helpers import user_headers
from tests.procs import run_cli
from tests.receipt_helpers import ORGANISATION, paid_pledge, pdf_text, receipts_campaign

PARIS = ZoneInfo("Europe/Paris")


def _today_in_paris() -> tuple[int, str]:
    now = dt.datetime.now(PARIS)
    return now.year, now.strftime("%d/%m/%Y")


async def test_a_paid_pledge_gets_a_receipt_with_every_field(hotline: Hotline) -> None:
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    # 23:30 UTC on 31 March is 1 April in Paris (summer time): the receipt says 01/04/2026.
    pledge = await paid_pledge(
        hotline,
        campaign_id,
        organiser,
        amount_minor=123450,
        channel="cheque",
        received_at="2026-03-31T23:30:00Z",
    )
    # Not receipted: no receipt asked for; only partly paid; not paid.
    await paid_pledge(hotline, campaign_id, organiser, consent_tax_receipt=False)
    await paid_pledge(hotline, campaign_id, organiser, amount_minor=4000, paid_minor=1000)
    await paid_pledge(hotline, campaign_id, organiser, paid_minor=0)

    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser
    )
    assert r.status_code == 200, r.text
    year, today = _today_in_paris()
    number = f"{year}-000001"
    assert r.json() == {
        "campaign_id": campaign_id,
        "waiting": 1,
        "issued": 1,
        "numbers": [number],
        "sent": 0,
        "send_failed": 0,
        "without_email": 0,
    }
    # A second batch finds nothing more to issue.
    again = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser
    )
    assert again.json()["issued"] == 0 and again.json()["waiting"] == 0

    listed = (
        await hotline.http.get(f"/receipts?campaign_id={campaign_id}", headers=organiser)
    ).json()
    assert [(x["number"], x["pledge_reference"], x["amount_minor"]) for x in listed] == [
        (number, pledge["reference"], 123450)
    ]
    receipt_id = listed[0]["id"]

    r = await hotline.http.get(f"/receipts/{receipt_id}/pdf", headers=organiser)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert f'filename="recu-fiscal-{number}.pdf"' in r.headers["content-disposition"]
    text = pdf_text(r.content)
    organisation = setup["organisation"]
    for expected in (
        "Cerfa N° 11580*04",
        f"Numéro d'ordre du reçu : {number}",
        "Reçu au titre des dons à certains organismes d'intérêt général",
        "articles 200, 238 bis et 978 du code général des impôts",
        # The organisation
        f"Nom ou dénomination : {organisation['name']}",
        f"Adresse : {ORGANISATION['address']}",
        "Code postal et commune : 69002 Lyon",
        f"Objet : {ORGANISATION['purpose']}",
        "SIREN : 123 456 789",
        "RNA : W691234567",
        "Qualité : Association reconnue d'utilité publique",
        # The donor
        "Nom : Lefèvre",
        "Prénoms : Chloé",
        "Adresse : 12 rue de l'Église",
        "Code postal et commune : 69003 Lyon",
        # The amount, date and mode
        "la somme de : 1 234,50 €",
        "Somme en toutes lettres : mille deux cent trente-quatre euros et cinquante centimes",
        "Date du versement ou du don : 01/04/2026",
        "[X] 200 du CGI",
        "[X] 238 bis du CGI",
        "[ ] 978 du CGI",
        "[X] Déclaration de don manuel",
        "[X] Numéraire",
        "[X] Chèque",
        "[ ] Virement, prélèvement",
        "[ ] Carte bancaire (paiement en ligne)",
        # The signature block
        f"Fait à Lyon, le {today}",
        "Hélène Martin",
        "Trésorière",
    ):
        assert expected in text, (expected, text)
    assert "DUPLICATA" not in text

    # Any later copy keeps the number and says so.
    r = await hotline.http.get(f"/receipts/{receipt_id}/pdf", headers=organiser)
    copy = pdf_text(r.content)
    assert "DUPLICATA" in copy and f"Numéro d'ordre du reçu : {number}" in copy
    assert copy.replace("DUPLICATA", "").split() == text.split()


async def test_a_receipt_prints_what_was_issued_even_after_a_correction(
    hotline: Hotline,
) -> None:
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    pledge = await paid_pledge(hotline, campaign_id, organiser, channel="bank_transfer")
    await hotline.http.post("/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser)
    r = await hotline.http.patch(f"/pledges/{pledge['reference']}", json={"last_name": "Durand"})
    assert r.status_code == 200, r.text
    r = await hotline.http.patch(
        f"/receipts/organisations/{setup['organisation']['id']}",
        json={"signatory_name": "Paul Girard", "tax_articles": ["200", "238 bis", "978"]},
        headers=organiser,
    )
    assert r.status_code == 200, r.text
    listed = (
        await hotline.http.get(f"/receipts?campaign_id={campaign_id}", headers=organiser)
    ).json()
    text = pdf_text(
        (await hotline.http.get(f"/receipts/{listed[0]['id']}/pdf", headers=organiser)).content
    )
    assert "Nom : Lefèvre" in text and "Durand" not in text
    assert "Hélène Martin" in text and "Paul Girard" not in text
    assert "[ ] 978 du CGI" in text and "[X] Virement, prélèvement" in text
    assert "la somme de : 50,00 €" in text and "cinquante euros" in text


async def test_a_cancelled_payment_cancels_the_receipt_and_its_number_is_never_reused(
    hotline: Hotline,
) -> None:
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    first = await paid_pledge(hotline, campaign_id, organiser)
    second = await paid_pledge(hotline, campaign_id, organiser, first_name="Jean")
    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser
    )
    year, _ = _today_in_paris()
    assert r.json()["numbers"] == [f"{year}-000001", f"{year}-000002"]

    payments = (
        await hotline.http.get(f"/pledges/{first['reference']}/payments", headers=organiser)
    ).json()
    assert len(payments) == 1
    r = await hotline.http.post(
        f"/pledges/{first['reference']}/payments/{payments[0]['id']}/cancel",
        json={"reason": "chèque impayé"},
        headers=organiser,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "promised" and r.json()["paid_minor"] == 0
    audit = (await hotline.http.get(f"/pledges/{first['reference']}/audit")).json()
    assert audit[-1]["action"] == "payment_void"
    assert audit[-1]["before"]["paid_minor"] == 5000 and audit[-1]["after"]["paid_minor"] == 0
    totals = (await hotline.http.get(f"/pledges/totals?campaign_id={campaign_id}")).json()
    assert totals["overall"]["paid_minor"] == 5000  # the second pledge's payment only

    listed = (
        await hotline.http.get(f"/receipts?campaign_id={campaign_id}", headers=organiser)
    ).json()
    by_number = {x["number"]: x for x in listed}
    assert by_number[f"{year}-000001"]["status"] == "cancelled"
    assert by_number[f"{year}-000001"]["cancel_reason"] == "payment cancelled: chèque impayé"
    assert by_number[f"{year}-000002"]["status"] == "issued"
    refused = await hotline.http.get(
        f"/receipts/{by_number[f'{year}-000001']['id']}/pdf", headers=organiser
    )
    assert refused.status_code == 409 and refused.json()["code"] == "receipt_cancelled"
    events = await hotline.sql("SELECT type FROM events WHERE type LIKE 'receipt.%' ORDER BY seq")
    assert [e[0] for e in events] == ["receipt.issued", "receipt.issued", "receipt.cancelled"]

    # Paid again: a new number, the cancelled one stays cancelled.
    r = await hotline.http.post(
        f"/pledges/{first['reference']}/payments", json={"amount_minor": 5000}, headers=organiser
    )
    assert r.json()["status"] == "paid"
    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser
    )
    assert r.json()["numbers"] == [f"{year}-000003"]
    rows = await hotline.sql(
        "SELECT number, status, pledge_reference FROM receipts ORDER BY number"
    )
    assert [tuple(row) for row in rows] == [
        (1, "cancelled", first["reference"]),
        (2, "issued", second["reference"]),
        (3, "issued", first["reference"]),
    ]
    # Cancelling the same payment twice changes nothing more.
    r = await hotline.http.post(
        f"/pledges/{first['reference']}/payments/{payments[0]['id']}/cancel",
        json={"reason": "again"},
        headers=organiser,
    )
    assert r.status_code == 200 and r.json()["status"] == "paid"


async def test_receipt_refusals_change_nothing(hotline: Hotline) -> None:
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    await paid_pledge(hotline, campaign_id, organiser)
    supervisor = await user_headers(hotline, Role.SUPERVISOR, campaign_id=campaign_id)

    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id}, headers=supervisor
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = await hotline.http.post("/receipts/issue", json={"campaign_id": 999999}, headers=organiser)
    assert r.status_code == 404 and r.json()["field"] == "campaign_id"

    # A campaign with no organisation, and one whose organisation lacks a signatory.
    bare = await receipts_campaign(hotline, signatory_name="")
    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": bare["campaign_id"]}, headers=organiser
    )
    assert r.status_code == 409, r.text
    assert r.json() == {
        "code": "receipts_not_configured",
        "message": "il manque le champ signatory_name de l'organisme",
        "field": "signatory_name",
    }
    r = await hotline.http.post(
        "/receipts/organisations",
        json={**ORGANISATION, "name": "Other", "tax_articles": ["201"]},
        headers=organiser,
    )
    assert r.status_code == 422 and r.json()["field"] == "tax_articles.0"
    r = await hotline.http.post(
        "/receipts/organisations",
        json={**ORGANISATION, "name": "Card 4111 1111 1111 1111"},
        headers=organiser,
    )
    assert r.status_code in (400, 422) and r.json()["field"] == "name", r.text
    assert "4111" not in r.text
    r = await hotline.http.post(
        "/receipts/organisations",
        json={**ORGANISATION, "name": setup["organisation"]["name"]},
        headers=organiser,
    )
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    r = await hotline.http.post(
        "/receipts/1/send", json={"to": "not an address"}, headers=organiser
    )
    assert r.status_code == 422 and r.json()["field"] == "to"

    assert await hotline.sql("SELECT count(*) FROM receipts") == [(0,)]
    names = await hotline.sql("SELECT name FROM receipt_organisations ORDER BY id")
    assert len(names) == 2 and all("4111" not in n[0] and n[0] != "Other" for n in names)


async def test_the_database_refuses_a_duplicate_number(hotline: Hotline) -> None:
    """The unique index is the last guard, whatever the code above it does."""
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    await paid_pledge(hotline, campaign_id, organiser)
    await hotline.http.post("/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser)
    async with hotline.db.read() as session:
        original = await session.scalar(select(Receipt).limit(1))
    assert original is not None
    with pytest.raises(IntegrityError):
        async with hotline.db.unit_of_work() as uow:
            values = {
                c.name: getattr(original, c.name)
                for c in Receipt.__table__.columns
                if c.name not in ("id", "pledge_id")
            }
            uow.session.add(Receipt(**values))


async def test_the_command_line_issues_a_batch_with_a_progress_bar(hotline: Hotline) -> None:
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    belgian = await paid_pledge(
        hotline, campaign_id, organiser, country="BE", postcode="1000", city="Bruxelles"
    )
    await paid_pledge(hotline, campaign_id, organiser, first_name="Jean")
    code, out, err = await _cli(hotline, "receipts", "issue", "--campaign-id", str(campaign_id))
    assert code == 0, err
    year, _ = _today_in_paris()
    assert out.splitlines() == [
        f"2 receipts issued for campaign {campaign_id}",
        f"  {year}-000001  {belgian['reference']}",
        f"  {year}-000002  " + out.splitlines()[2].split()[-1],
    ]
    assert "100%  2/2 receipts" in err
    listed = (
        await hotline.http.get(f"/receipts?campaign_id={campaign_id}", headers=organiser)
    ).json()
    text = pdf_text(
        (await hotline.http.get(f"/receipts/{listed[0]['id']}/pdf", headers=organiser)).content
    )
    assert "Code postal et commune : 1000 Bruxelles (BE)" in text
    rows = await hotline.sql("SELECT DISTINCT issued_by FROM receipts")
    assert rows == [("cli",)]

    # Refused (no organisation for this campaign): exit 2, the reason on stderr.
    other = await setup_campaign(hotline, agents=0, campaign={"dialled_numbers": ["+33800000077"]})
    code, out, err = await _cli(
        hotline, "receipts", "issue", "--campaign-id", str(other["campaign_id"]), "--quiet"
    )
    assert code == 2 and "refusé : aucun organisme n'émet encore les reçus de cette" in err


async def _cli(hotline: Hotline, *args: str) -> tuple[int, str, str]:
    return await run_cli(hotline.settings.database_url, *args)


async def test_an_erased_donor_keeps_their_receipts_with_the_reason(hotline: Hotline) -> None:
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    pledge = await paid_pledge(hotline, campaign_id, organiser)
    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser
    )
    assert r.status_code == 200, r.text
    [receipt] = (
        await hotline.http.get(f"/receipts?campaign_id={campaign_id}", headers=organiser)
    ).json()

    r = await hotline.http.post(
        "/privacy/donors/erase", json={"email": "chloe@example.org", "reason": "request 12"}
    )
    assert r.status_code == 200, r.text
    kept = [(k["kind"], k["table"], k["ids"]) for k in r.json()["kept"]]
    assert kept == [("tax_receipt", "receipts", [receipt["id"]])]
    assert "L102 B" in r.json()["kept"][0]["reason"]
    # The pledge lost the donor's details; the receipt still prints them.
    rows = await hotline.sql(
        "SELECT last_name, email FROM pledges WHERE reference = :r", r=pledge["reference"]
    )
    assert "Lefèvre" not in str(rows) and "chloe@example.org" not in str(rows)
    text = pdf_text(
        (await hotline.http.get(f"/receipts/{receipt['id']}/pdf", headers=organiser)).content
    )
    assert "Nom : Lefèvre" in text
    register = await hotline.sql("SELECT kept FROM privacy_actions WHERE action = 'erase'")
    assert "L102 B" in str(register[0][0])


async def test_receipts_lose_the_donors_details_after_the_legal_period(hotline: Hotline) -> None:
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    await paid_pledge(hotline, campaign_id, organiser)
    await hotline.http.post("/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser)
    before = await hotline.sql("SELECT year, number, amount_minor, donor_last_name FROM receipts")
    assert before[0][3] == "Lefèvre"
    now = dt.datetime.now(dt.UTC)
    r = await hotline.http.post(
        "/privacy/purge", json={"as_of": (now + dt.timedelta(days=5 * 365)).isoformat()}
    )
    assert r.status_code == 200, r.text
    assert r.json()["changed"]["receipts"] == 0
    r = await hotline.http.post(
        "/privacy/purge", json={"as_of": (now + dt.timedelta(days=6 * 366)).isoformat()}
    )
    assert r.json()["changed"]["receipts"] == 1
    after = await hotline.sql(
        "SELECT year, number, amount_minor, donor_first_name, donor_last_name, donor_address,"
        " donor_email, sent_to FROM receipts"
    )
    year, number, amount, *details = after[0]
    assert (year, number, amount) == tuple(before[0])[:3]
    assert details == ["", "", "", "", None]

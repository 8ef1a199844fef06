"""The reconciliation section of the organiser screen in a real browser (system
Chromium, headless, through Playwright), on one uvicorn process and a fresh
demo-seeded SQLite file (``tests/browser_fixtures.py``).

The organiser uploads a bank export that is refused line by line, then a good
one; picks the pledge of the line the import was not sure about; checks the
over-payment; and imports the file again, which records nothing twice.
Without ``/usr/bin/chromium`` the module is skipped (it fails with ``CI=true``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.browser import ORGANISER, Hotline, context_options, sign_in
from tests.reconciliation_helpers import BANK_SOURCE, bank_file

try:
    from playwright.async_api import expect
except ImportError:  # the shared browser fixture skips (or fails with CI=true)
    expect = None


@pytest.fixture
async def hotline(browser_hotline: Hotline) -> Hotline:
    return browser_hotline


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(**context_options())
    context.set_default_timeout(20_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def _pledge(hotline: Hotline, **body: Any) -> dict[str, Any]:
    headers = {**await hotline.admin_headers(), "Idempotency-Key": uuid.uuid4().hex}
    r = await hotline.http.post(
        "/pledges",
        json={"campaign_id": hotline.campaign_id, "email": "donor@example.org", **body},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def _choose_file(page: Any, data: bytes, name: str = "releve.csv") -> None:
    await page.locator("#recon-file").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": data}]
    )
    await page.locator("#recon-upload").get_by_role("button", name="Importer").click()


async def test_organiser_imports_a_bank_export_and_matches_what_was_not_sure(
    hotline: Hotline, page: Any
) -> None:
    assert expect is not None
    exact = await _pledge(hotline, first_name="Émile", last_name="Zola", amount_minor=2537)
    over = await _pledge(hotline, first_name="Victor", last_name="Hugo", amount_minor=2011)
    unsure = await _pledge(hotline, first_name="Anne", last_name="Martin", amount_minor=1543)
    r = await hotline.http.put(
        "/payments/sources/banque", json=BANK_SOURCE, headers=await hotline.admin_headers()
    )
    assert r.status_code == 200, r.text
    good = bank_file(
        [
            ("04/12/2026", "25,37", f"VIR DON {exact['reference'].replace('-', '')}", "ZOLA"),
            ("04/12/2026", "25,11", f"VIR DON {over['reference']}", "HUGO"),
            ("05/12/2026", "15,43", "VIR DON TELETHON", "MME MARTIN"),
        ]
    )
    bad = bank_file([("04/12/2026", "25,37", "DON", "A"), ("04/12/2026", "25,3,7", "DON", "B")])

    await sign_in(page, hotline.base_url, *ORGANISER)
    section = page.locator("#reconciliation")
    await expect(section).to_have_attribute("data-loaded", "true")
    await expect(page.get_by_label("Source")).to_have_value("banque")

    # A bad file: every problem by line and column, nothing imported.
    await _choose_file(page, bad)
    await expect(page.locator("#recon-status")).to_contain_text("le fichier n'a pas été importé")
    await expect(page.locator("#recon-problems li")).to_have_text(
        ["Ligne 6, colonne « Crédit »: pas un montant : pas un nombre"]
    )
    imports = await hotline.get(f"/payments/imports?campaign_id={hotline.campaign_id}")
    assert imports == []

    await _choose_file(page, good)
    status = page.locator("#recon-status")
    await expect(status).to_contain_text("3 lignes, 2 paiements enregistrés")
    await expect(status).to_contain_text("1 à rapprocher")
    await expect(page.locator("#recon-problems li")).to_have_count(0)

    # Amount and last name: suggested with its confidence, recorded once picked.
    row = page.locator("#recon-unmatched tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(f"{unsure['reference']} Anne Martin")
    await expect(row.locator(".recon-confidence")).to_have_text("sûr à 70 %")
    await expect(row.locator("input.recon-ref")).to_have_value(unsure["reference"])
    await row.get_by_role("button", name="Enregistrer le paiement").click()
    await expect(status).to_have_text(f"Paiement enregistré sur {unsure['reference']}.")
    await expect(row).to_have_count(0)
    await expect(page.locator("#recon-unmatched-empty")).to_be_visible()
    paid = await hotline.get(f"/pledges/{unsure['reference']}")
    assert (paid["paid_minor"], paid["status"]) == (1543, "paid")

    # The over-payment waits until checked.
    difference = page.locator("#recon-differences tbody tr")
    await expect(difference).to_have_count(1)
    await expect(difference).to_contain_text(over["reference"])
    await expect(difference).to_contain_text("en trop")
    await difference.get_by_role("button", name="Vérifié").click()
    await expect(difference).to_have_count(0)

    # The same file again records nothing twice.
    await _choose_file(page, good)
    await expect(status).to_contain_text("0 paiements enregistrés")
    await expect(status).to_contain_text("3 déjà importés")
    for pledge, amount in ((exact, 2537), (over, 2511), (unsure, 1543)):
        assert (await hotline.get(f"/pledges/{pledge['reference']}"))["paid_minor"] == amount

    assert not hotline.server_errors(), hotline.server_errors()

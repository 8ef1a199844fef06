"""The roster section of the organiser screen in a real browser (system Chromium,
headless, through Playwright), on one uvicorn process and a fresh demo-seeded SQLite
file (``tests/browser_fixtures.py``; the demo has two sites, Caen and Paris).

An admin imports a roster file that is refused row by row (nothing imported), then
a good one and sees the PINs once; then makes and prints the Caen PIN sheet.
Without ``/usr/bin/chromium`` the module is skipped (it fails with ``CI=true``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.browser import ADMIN, Hotline, context_options, sign_in

try:
    from playwright.async_api import expect
except ImportError:  # the shared browser fixture skips (or fails with CI=true)
    expect = None

# window.print() is counted rather than shown (no printer in a headless browser).
COUNT_PRINTS = "window.__prints = 0; window.print = () => { window.__prints += 1; };"


@pytest.fixture
async def hotline(browser_hotline: Hotline) -> Hotline:
    return browser_hotline


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(**context_options())
    context.set_default_timeout(20_000)
    await context.add_init_script(COUNT_PRINTS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def _import(page: Any, data: bytes, name: str) -> None:
    await page.locator("#roster-file").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": data}]
    )
    await page.locator("#roster-import-btn").click()


async def _volunteers(hotline: Hotline) -> int:
    r = await hotline.http.get(
        f"/agents?campaign_id={hotline.campaign_id}", headers=await hotline.admin_headers()
    )
    return len(r.json())


async def test_admin_imports_a_roster_sees_refused_rows_and_prints_a_pin_sheet(
    hotline: Hotline, page: Any
) -> None:
    assert expect is not None
    before = await _volunteers(hotline)
    await sign_in(page, hotline.base_url, *ADMIN)
    await page.goto(f"{hotline.base_url}/organiser")
    section = page.locator("#roster")
    await expect(section).to_be_visible()
    await expect(page.locator("#roster-sheet-site option")).to_have_count(2)

    bad = "nom;téléphone;site\nAline Roux;0612345678;Caen\n;0698765432;Paris\nBen;12;\nCé;;Lune\n"
    await _import(page, bad.encode("cp1252"), "equipe.csv")
    refused = page.locator("#roster-refused li")
    await expect(refused).to_have_count(3)
    await expect(refused.nth(0)).to_contain_text("Ligne 3 (name): le nom manque")
    await expect(refused.nth(1)).to_contain_text("Ligne 4 (phone)")
    await expect(refused.nth(2)).to_contain_text("Ligne 5 (site): aucun site nommé « Lune »")
    await expect(page.locator("#roster-status")).to_contain_text("rien n'a été importé")
    assert await _volunteers(hotline) == before

    good = "nom;téléphone;site\nAline Roux;0612345678;Caen\nBruno Roux;0698765432;Paris\n"
    await _import(page, good.encode("cp1252"), "equipe.csv")
    await expect(page.locator("#roster-status")).to_contain_text(
        "2 bénévoles importés : leurs PIN sont ci-dessous"
    )
    logins = page.locator("#roster-logins tbody tr")
    await expect(logins).to_have_count(2)
    await expect(logins.nth(0)).to_contain_text("aline.roux")
    pin = (await logins.nth(0).locator("td").nth(2).text_content()) or ""
    assert pin.isdigit()
    assert await _volunteers(hotline) == before + 2

    # The Caen sheet re-issues every Caen volunteer's PIN (Aline's included).
    await page.locator("#roster-sheet-site").select_option(label="Caen (Lions Club)")
    await page.locator("#roster-sheet-who").select_option("all")
    await page.locator("#roster-sheet-btn").click()
    sheet = page.locator("#roster-sheet-body")
    await expect(sheet.locator("h1")).to_contain_text("Caen")
    await expect(sheet.locator("tbody tr", has_text="Aline Roux")).to_have_count(1)
    await expect(sheet.locator("tbody tr", has_text="Bruno Roux")).to_have_count(0)
    new_pin = (
        await sheet.locator("tbody tr", has_text="Aline Roux").locator("td").nth(2).text_content()
    )
    assert new_pin and new_pin.isdigit()
    await page.locator("#roster-print-btn").click()
    assert await page.evaluate("window.__prints") == 1
    # The old PIN stopped working; the sheet's works.
    for secret, status in ((pin, 401), (new_pin, 200)):
        r = await hotline.http.post(
            "/auth/login",
            json={"username": "aline.roux", "secret": secret, "campaign_id": hotline.campaign_id},
        )
        assert r.status_code == status, r.text

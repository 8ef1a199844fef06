"""The volunteer hours section of the organiser screen in a real browser (system
Chromium, headless, through Playwright), on one uvicorn process and a fresh
demo-seeded SQLite file (``tests/browser_fixtures.py``: the demo lends some
volunteers from "Acme Assurances"). An admin sees the table per volunteer, then per
employer with the company's attestation link, which serves the PDF.
Without ``/usr/bin/chromium`` the module is skipped (it fails with ``CI=true``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import ADMIN, Hotline, sign_in

try:
    from playwright.async_api import expect
except ImportError:  # the shared browser fixture skips (or fails with CI=true)
    expect = None


@pytest.fixture
async def hotline(browser_hotline: Hotline) -> Hotline:
    return browser_hotline


async def test_the_organiser_sees_hours_and_an_employers_attestation(
    hotline: Hotline, new_page: Any
) -> None:
    assert expect is not None
    page = await new_page()
    await sign_in(page, hotline.base_url, *ADMIN)
    await page.goto(f"{hotline.base_url}/organiser")
    section = page.locator("#hours")
    await expect(section).to_be_visible()
    rows = page.locator("#hours-table tbody tr")
    await expect(rows.last).to_contain_text("Total")
    volunteers = await rows.count() - 1
    assert volunteers > 1
    assert "campaign_id=" in (await page.locator("#hours-csv").get_attribute("href") or "")

    await page.locator("#hours-group").select_option("employer")
    link = page.locator("#hours-table a", has_text="Attestation")
    await expect(link).to_have_count(1)
    await expect(page.locator("#hours-table tbody tr").first).to_contain_text("Acme Assurances")
    href = await link.get_attribute("href")
    assert href is not None and "employer=Acme+Assurances" in href
    pdf = await page.request.get(f"{hotline.base_url}{href}")
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert (await pdf.body()).startswith(b"%PDF")

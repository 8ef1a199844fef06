"""The organiser screen in a real browser (system Chromium, headless, through Playwright).

One uvicorn process on a fresh demo-seeded SQLite file serves the module (the
shared fixtures of ``tests/browser_fixtures.py``); pledges are saved through the
real pledge API by the admin. The organiser signs in through the sign-in page,
sees the totals and the charts (drawn by the Chart.js the app serves), and
downloads exports that a CSV reader parses back.

Without ``/usr/bin/chromium`` the module is skipped (it fails with ``CI=true``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import ORGANISER, SUPERVISOR, Hotline, context_options, sign_in

try:
    from playwright.async_api import expect
except ImportError:  # the shared browser fixture skips (or fails with CI=true)
    expect = None


@pytest.fixture
async def hotline(browser_hotline: Hotline) -> Hotline:
    """The module's server (``tests/browser_fixtures.py``)."""
    return browser_hotline


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A page that keeps its downloads (``browser``: ``tests/browser_fixtures.py``)."""
    context = await browser.new_context(**context_options(accept_downloads=True))
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


async def _download(page: Any, link_id: str) -> tuple[str, bytes]:
    async with page.expect_download() as info:
        await page.locator(link_id).click()
    download = await info.value
    path = await download.path()
    return download.suggested_filename, await asyncio.to_thread(Path(path).read_bytes)


def _csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


async def test_organiser_sees_totals_and_charts_and_downloads_exports(
    hotline: Hotline, page: Any
) -> None:
    assert expect is not None
    saved = [
        await _pledge(hotline, first_name="Alice", last_name="Durand", amount_minor=2500),
        await _pledge(hotline, first_name="=cmd|' /C calc'!A0", amount_minor=1000),
        await _pledge(hotline, first_name="Chloé", postcode="69003", amount_minor=5000),
    ]
    cancelled = saved[1]["reference"]
    await hotline.post(f"/pledges/{cancelled}/cancel", {"reason": "fake"})

    await sign_in(page, hotline.base_url, *ORGANISER)
    assert page.url.endswith("/organiser")
    await expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    # Totals leave the cancelled pledge out; the export lists it.
    await expect(page.locator("#overall-count")).to_have_text("2")
    await expect(page.locator("#overall-promised")).to_contain_text("75")
    await expect(page.locator("#table-by_hour tbody tr")).to_have_count(1)
    await expect(page.locator("#table-by_departement tbody tr")).to_have_count(2)
    for canvas in ("#chart-hour", "#chart-slot"):
        await expect(page.locator(canvas)).to_be_visible()
        # Chart.js (served by the app under the strict CSP) drew the figures there.
        drawn = await page.evaluate(
            "(id) => { const c = window.Chart && window.Chart.getChart(id);"
            " return c ? c.data.datasets[0].data.reduce((a, b) => a + b, 0) : null; }",
            canvas[1:],
        )
        assert drawn == 2, canvas

    name, body = await _download(page, "#export-csv")
    assert name.startswith(f"pledges-campaign-{hotline.campaign_id}-") and name.endswith(".csv")
    assert body.startswith(b"\xef\xbb\xbf")  # "CSV for Excel" is ticked by default
    rows = _csv(body)  # the French headers: the page is in French
    assert sorted(r["référence"] for r in rows) == sorted(p["reference"] for p in saved)
    by_ref = {r["référence"]: r for r in rows}
    assert by_ref[cancelled]["prénom"] == "'=cmd|' /C calc'!A0"
    assert by_ref[saved[2]["reference"]]["prénom"] == "Chloé"
    assert by_ref[saved[0]["reference"]]["montant"] == "25.00"

    # The export filters go into the links.
    await page.get_by_label("Statut").select_option("cancelled")
    await page.get_by_label("CSV pour Excel (avec BOM)").uncheck()
    name, body = await _download(page, "#export-csv")
    assert not body.startswith(b"\xef\xbb\xbf")
    assert [r["référence"] for r in _csv(body)] == [cancelled]
    name, body = await _download(page, "#export-xlsx")
    assert name.endswith(".xlsx") and body.startswith(b"PK")

    assert not hotline.server_errors(), hotline.server_errors()


async def test_supervisors_are_turned_away_from_the_organiser_screen(
    hotline: Hotline, page: Any
) -> None:
    assert expect is not None
    await sign_in(page, hotline.base_url, *SUPERVISOR, campaign_id=hotline.campaign_id)
    await page.goto(f"{hotline.base_url}/organiser")
    await expect(page.locator("#not-allowed")).to_contain_text(
        "Cette page est réservée aux organisateurs"
    )


async def test_organiser_sends_payment_links_and_records_a_payment_once(
    hotline: Hotline, page: Any
) -> None:
    assert expect is not None
    by_link = await _pledge(hotline, first_name="Inès", channel="web_link", amount_minor=4000)
    ref = by_link["reference"]
    await sign_in(page, hotline.base_url, *ORGANISER)
    section = page.locator("#payments")
    await expect(section).to_have_attribute("data-loaded", "true")
    row = section.locator(f'#links-table tr[data-reference="{ref}"]')
    await expect(row).to_contain_text("Inès")
    await expect(row.locator("a")).to_have_attribute("href", by_link["payment_link"])
    await row.get_by_role("button", name=f"Marquer le lien de {ref} comme envoyé").click()
    await expect(page.locator("#payments-status")).to_have_text(
        f"Lien de paiement de {ref} marqué comme envoyé."
    )
    await expect(row).to_have_count(0)
    assert (await hotline.get(f"/pledges/{ref}"))["status"] == "link_sent"

    # A transfer received: typed in French style, sent twice (a double submit).
    await page.get_by_label("Référence de la promesse").fill(ref.lower())
    await page.get_by_label("Montant", exact=True).fill("15,50")
    await page.evaluate(
        "() => { const f = document.getElementById('payment-form');"
        " f.requestSubmit(); f.requestSubmit(); }"
    )
    await expect(page.locator("#payments-status")).to_contain_text(f"enregistré sur {ref}")
    payments = await hotline.get(f"/pledges/{ref}/payments")
    assert [p["amount_minor"] for p in payments] == [1550]
    assert (await hotline.get(f"/pledges/{ref}"))["status"] == "partially_paid"
    # A bad amount is said, and nothing is sent.
    await page.get_by_label("Référence de la promesse").fill(ref)
    await page.get_by_label("Montant", exact=True).fill("douze")
    await page.get_by_role("button", name="Enregistrer le paiement").click()
    await expect(page.locator("#payments-status")).to_contain_text("Saisissez le montant")
    assert len(await hotline.get(f"/pledges/{ref}/payments")) == 1


async def test_each_totals_table_downloads_as_csv(hotline: Hotline, page: Any) -> None:
    assert expect is not None
    await _pledge(hotline, first_name="Zoé", amount_minor=2000)
    await sign_in(page, hotline.base_url, *ORGANISER)
    await expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    name, body = await _download(page, '#table-by_queue a[data-format="csv"]')
    assert name.startswith("totals-") and name.endswith(".csv")
    header, *rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert header[1] == "promesses" and sum(int(r[1]) for r in rows) >= 1

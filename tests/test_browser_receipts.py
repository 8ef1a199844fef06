"""The organiser screen's receipt batch in a real browser (system Chromium, headless).

A uvicorn process on a fresh demo-seeded SQLite file, its receipts e-mailed to a real
SMTP server (aiosmtpd) started here. The admin sets up the issuing organisation and
two paid pledges through the API; the organiser signs in, ticks "E-mail them",
presses "Issue receipts", sees the receipts listed, and downloads the one whose
donor gave no e-mail address: a PDF that pypdf reads back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.browser import ORGANISER, Hotline, context_options, running_hotline, sign_in
from tests.browser_fixtures import need_chromium
from tests.receipt_helpers import ORGANISATION, pdf_text
from tests.test_receipts_mail import Inbox, _free_port

try:
    from playwright.async_api import expect
except ImportError:  # the shared browser fixture skips (or fails with CI=true)
    expect = None


@pytest.fixture(scope="module")
def inbox() -> Any:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
async def hotline(
    tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]
) -> AsyncIterator[Hotline]:
    need_chromium()
    settings = {"smtp_host": "127.0.0.1", "smtp_port": inbox[1]}
    async with running_hotline(tmp_path_factory.mktemp("receipts"), settings=settings) as running:
        yield running


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(**context_options(accept_downloads=True))
    context.set_default_timeout(20_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def _paid_pledge(hotline: Hotline, **body: Any) -> dict[str, Any]:
    headers = {**await hotline.admin_headers(), "Idempotency-Key": uuid.uuid4().hex}
    r = await hotline.http.post(
        "/pledges",
        json={
            "campaign_id": hotline.campaign_id,
            "address": "5 rue Victor Hugo",
            "postcode": "69002",
            "city": "Lyon",
            "amount_minor": 7550,
            "consent_tax_receipt": True,
            **body,
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    pledge: dict[str, Any] = r.json()
    await hotline.post(f"/pledges/{pledge['reference']}/payments", {"amount_minor": 7550})
    return pledge


async def test_organiser_issues_receipts_and_downloads_one(
    hotline: Hotline, page: Any, inbox: tuple[Inbox, int]
) -> None:
    assert expect is not None
    organisation = await hotline.post("/receipts/organisations", ORGANISATION, status=201)
    r = await hotline.http.put(
        f"/receipts/campaigns/{hotline.campaign_id}",
        json={"organisation_id": organisation["id"]},
        headers=await hotline.admin_headers(),
    )
    assert r.status_code == 200, r.text
    mailed = await _paid_pledge(
        hotline, first_name="Anne", last_name="Moreau", email="anne@example.org"
    )
    by_post = await _paid_pledge(
        hotline, first_name="Bruno", last_name="Petit", email="", phone="0612345678"
    )

    await sign_in(page, hotline.base_url, *ORGANISER)
    await expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    await page.get_by_label("Les envoyer aux donateurs par courriel").check()
    await page.get_by_role("button", name="Émettre les reçus").click()
    status = page.locator("#receipts-status")
    await expect(status).to_contain_text("2 reçus émis")
    await expect(status).to_contain_text("1 envoyés par courriel, 1 sans adresse de courriel")
    rows = page.locator("#receipts-table tbody tr")
    await expect(rows).to_have_count(2)
    numbers = await page.locator("#receipts-table tbody th").all_text_contents()
    year = numbers[0].split("-")[0]
    assert numbers == [f"{year}-000001", f"{year}-000002"]
    await expect(rows.nth(0)).to_contain_text(mailed["reference"])
    await expect(rows.nth(0)).to_contain_text("anne@example.org")
    await expect(rows.nth(1)).to_contain_text("Bruno Petit")
    await expect(rows.nth(1)).to_contain_text("75,50")

    handler, _ = inbox
    assert [rcpt for _, rcpt, _ in handler.messages] == [["anne@example.org"]]

    async with page.expect_download() as info:
        await page.get_by_label(f"Télécharger le reçu {year}-000002").click()
    download = await info.value
    assert download.suggested_filename == f"recu-fiscal-{year}-000002.pdf"
    body = await asyncio.to_thread(Path(await download.path()).read_bytes)
    text = pdf_text(body)
    assert f"Numéro d'ordre du reçu : {year}-000002" in text
    assert "Nom : Petit" in text and "Prénoms : Bruno" in text
    assert "la somme de : 75,50 €" in text and "soixante-quinze euros et cinquante centimes" in text
    assert "DUPLICATA" not in text
    assert by_post["reference"] in await rows.nth(1).text_content()

    # Nothing more is due: a second press issues nothing.
    await page.get_by_role("button", name="Émettre les reçus").click()
    await expect(status).to_contain_text("0 reçus émis")
    await expect(rows).to_have_count(2)
    assert not hotline.server_errors(), hotline.server_errors()

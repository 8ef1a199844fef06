"""The screen pop in a real browser: an offered call shows who is probably calling.

One uvicorn process (demo seed) with the built-in directory as a separate process;
calls come in through the signed telephony webhook.
"""

from __future__ import annotations

from typing import Any

from tests.browser import Hotline
from tests.browser_fixtures import end_call, volunteer_ready

try:
    from playwright.async_api import Page, expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    Page = expect = None  # type: ignore[assignment,misc]

LISTED = "+33123456789"  # Marie Dupont, 12 rue de Rivoli, 75004 Paris, in the sample directory


async def test_an_offered_call_shows_the_caller_details_to_confirm(
    browser_hotline: Hotline, new_page: Any
) -> None:
    hotline = browser_hotline
    page = await new_page()
    await volunteer_ready(page, hotline)

    await hotline.incoming("pop-listed", caller=LISTED)

    details = page.locator("#caller-details")
    # The panel's words are caller-pop.js's: checked by its marks, in any language.
    await expect(details).to_have_attribute("data-status", "found")
    name = details.locator("[data-field=first_name]")
    await expect(name.locator(".pop-value")).to_have_text("Marie Dupont")
    await expect(name.locator(".confirm-badge")).to_be_visible()
    await expect(name.locator(".pop-source")).to_be_visible()
    await expect(details.locator("[data-field=address_lines]")).to_contain_text("12 rue de Rivoli")
    await expect(details.locator("[data-field=postcode]")).to_contain_text("75004")
    phone = details.locator("[data-field=phone]")
    await expect(phone).to_contain_text("01 23 45 67 89")
    await expect(phone.locator(".pop-source")).to_be_visible()

    # A reload (or a reconnection) draws it again from the snapshot.
    await page.reload()
    await expect(name).to_contain_text("Marie Dupont")
    await end_call(page, "No pledge")
    await expect(details.locator(".placeholder")).to_be_visible()

    await hotline.incoming("pop-withheld", caller=None)
    await expect(details.locator(".pop-note")).to_have_attribute("data-status", "skipped_withheld")
    await expect(details.locator("[data-field]")).to_have_count(0)
    await end_call(page, "No pledge")
    assert not hotline.server_errors()

"""A practice call in a real browser (app/practice, docs/roster.md#practice-calls).

The demo's trainee signs in, starts a practice call with the returning donor: the
caller is in the real caller panel, the real script and pledge form; the pledge
is saved, its reference read back, the call ended and its scorecard shown. The
real figures do not move.
"""

from __future__ import annotations

import re
from typing import Any

from tests.browser import Hotline, sign_in

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    expect = None

TRAINEE = ("trainee", "135790")
REFERENCE = re.compile(r"^[A-Z2-9]{3}-[A-Z2-9]{3}$")


async def test_a_trainee_plays_a_practice_call_and_gets_a_scorecard(
    browser_hotline: Hotline, new_page: Any
) -> None:
    hotline = browser_hotline
    totals_before = await hotline.get(f"/pledges/totals?campaign_id={hotline.campaign_id}")
    page = await new_page()
    await sign_in(page, hotline.base_url, *TRAINEE, campaign_id=hotline.campaign_id)
    await expect(page.locator("#conn-status")).to_have_text("Connected")
    practice = page.locator("#practice")
    await expect(practice.locator("#practice-trained")).to_have_text("Not trained yet.")

    await practice.get_by_label("Caller").select_option("returning_donor")
    await practice.get_by_role("button", name="Start a practice call").click()
    await expect(page.locator("#practice-banner")).to_contain_text("PRACTICE CALL")
    # The real panels: caller details from the pop, the campaign's script, the form.
    details = page.locator("#caller-details")
    await expect(details).to_contain_text("Returning donor")
    await expect(details).to_contain_text("Lefèvre")
    await expect(page.locator("#script-panel")).to_contain_text(
        "Appel de promesse"
    )  # the campaign's language
    form = page.locator("#pledge-form")
    await expect(form.get_by_label("Last name")).to_have_value("Lefèvre")
    await expect(practice.locator("#practice-lines")).to_contain_text("Monique")
    await practice.get_by_role("button", name="Caller's next line").click()
    await expect(practice.locator("#practice-lines")).to_contain_text("50 euros")

    # The real checks: a card number in the note is refused by the form's save.
    await form.get_by_role("button", name="50", exact=True).click()
    await form.get_by_label("Note").fill("card 4111 1111 1111 1111")
    await form.get_by_role("button", name="Save pledge").click()
    await expect(form.locator("#pf-note-error")).not_to_be_empty()
    await form.get_by_label("Note").fill("")
    await form.get_by_role("button", name="Save pledge").click()
    reference = form.locator("#pf-reference")
    await expect(reference).to_have_text(REFERENCE)
    ref = (await reference.text_content() or "").strip()

    await practice.get_by_label("Pledge reference, as you read it back to the caller").fill(ref)
    await practice.get_by_role("button", name="I read it back").click()
    await expect(practice.locator("#practice-status")).to_have_text("Read-back noted.")
    await practice.get_by_role("button", name="End practice call").click()

    card = practice.locator("#practice-scorecard")
    await expect(card.locator('[data-criterion="form_complete"]')).to_have_attribute(
        "data-passed", "true"
    )
    await expect(card.locator('[data-criterion="reference_read_back"]')).to_have_attribute(
        "data-passed", "true"
    )
    # The card number typed once fails that criterion: not passed, try again.
    await expect(card.locator('[data-criterion="card_refused"]')).to_have_attribute(
        "data-passed", "false"
    )
    await expect(practice.locator("#practice-verdict")).to_have_text("Not passed: try it again")
    await expect(page.locator("#practice-banner")).to_be_empty()
    await expect(page.locator("#caller-details")).to_contain_text("Caller details appear here.")

    totals_after = await hotline.get(f"/pledges/totals?campaign_id={hotline.campaign_id}")
    assert totals_after["overall"] == totals_before["overall"]
    assert not hotline.server_errors()

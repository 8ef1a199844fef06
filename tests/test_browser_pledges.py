"""The pledge form and the tote board in a real browser.

One uvicorn process (demo seed) with the built-in directory as its own process;
calls come in through the signed telephony webhook. The volunteer's form is
pre-filled from the screen pop, saved with Enter, shows the reference to read
back, and the public board (another page, no login) moves.
"""

from __future__ import annotations

import re
from typing import Any

from tests.browser import SUPERVISOR, Hotline, sign_in
from tests.browser_fixtures import end_call, volunteer_ready

try:
    from playwright.async_api import Page, expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    Page = expect = None  # type: ignore[assignment,misc]

LISTED = "+33123456789"  # Marie Dupont, 12 rue de Rivoli, 75004 Paris, in the sample directory
REFERENCE = re.compile(r"^[A-Z2-9]{3}-[A-Z2-9]{3}$")


async def test_volunteer_saves_a_pledge_and_the_board_moves(
    browser_hotline: Hotline, new_page: Any
) -> None:
    hotline = browser_hotline
    board = await new_page()
    await board.goto(f"{hotline.base_url}/board?campaign={hotline.campaign_id}")
    total = board.locator("#board-total")
    await expect(total).to_have_attribute("data-minor", re.compile(r"^\d+$"))
    before = int(await total.get_attribute("data-minor") or "0")

    page = await new_page()
    await volunteer_ready(page, hotline)
    call_id = await hotline.incoming("pledge-listed", caller=LISTED)

    # The form's words are pledge-form.js's: its fields found by their ids.
    form = page.locator("#pledge-form")
    first_name = form.locator("#pf-first_name")
    await expect(first_name).to_have_value("Marie")
    await expect(first_name).to_have_attribute("data-prefilled", "directory")
    await expect(form.locator("#pf-first_name-confirm")).to_be_visible()
    await expect(form.locator("#pf-postcode")).to_have_value("75004")

    # Inline validation from the server's 422 field.
    email = form.locator("#pf-email")
    await email.fill("not-an-email")
    await form.get_by_role("button", name="50", exact=True).click()
    await form.locator("#pf-amount").press("Enter")
    await expect(form.locator("#pf-email-error")).to_contain_text("adresse électronique")
    # The donor agrees to be named on air: the board will show "Marie, Paris".
    await form.get_by_label("Prénom et ville à l'antenne").check()
    # Corrected, saved with Enter, twice in a row (a double submit saves once).
    await email.fill("marie.dupont@example.org")
    await email.press("Enter")
    await email.press("Enter")
    reference = form.locator("#pf-reference")
    await expect(reference).to_have_text(REFERENCE)
    ref = (await reference.text_content() or "").strip()

    await expect(total).to_have_attribute("data-minor", str(before + 5000))
    await expect(board.locator("#board-names li").first).to_have_text("Marie, Paris")
    pledges = await hotline.get(f"/pledges?call_id={call_id}")
    assert [(p["reference"], p["amount_minor"], p["consent_board"]) for p in pledges] == [
        (ref, 5000, True)
    ]

    # Corrected from the form until the wrap-up ends.
    await form.locator("#pf-amount").fill("60")
    await form.locator("#pf-amount").press("Enter")
    await expect(total).to_have_attribute("data-minor", str(before + 6000))
    await expect(form.locator("#pf-reference")).to_have_text(ref)
    await end_call(page, "Pledge")
    # The call is over: the form and the caller's details leave the screen.
    await expect(form.locator("input")).to_have_count(0)
    await expect(form).to_contain_text("Le formulaire de promesse s'ouvre avec un appel.")

    # A withheld caller: an empty form.
    await hotline.incoming("pledge-withheld", caller=None)
    await expect(form.locator("#pf-first_name")).to_have_value("")
    await expect(form.locator("#pf-reference")).to_have_count(0)
    await end_call(page, "Pledge")
    assert not hotline.server_errors()


async def test_supervisor_reviews_a_large_pledge(browser_hotline: Hotline, new_page: Any) -> None:
    hotline = browser_hotline
    campaign = await hotline.get(f"/campaigns/{hotline.campaign_id}")
    large = campaign["pledge_review_minor"] + 1
    headers = {**await hotline.admin_headers(), "Idempotency-Key": "review-a"}
    saved = []
    for key, name in (("review-a", "Grand"), ("review-b", "Gros")):
        headers["Idempotency-Key"] = key
        r = await hotline.http.post(
            "/pledges",
            json={
                "campaign_id": hotline.campaign_id,
                "amount_minor": large,
                "last_name": name,
                "email": "d@example.org",
            },
            headers=headers,
        )
        assert r.status_code == 201 and r.json()["flagged_for_review"], r.text
        saved.append(r.json()["reference"])
    approved, corrected = saved

    boss = await new_page()
    await sign_in(boss, hotline.base_url, *SUPERVISOR)
    card = boss.locator("#review-card")
    await expect(card).to_have_attribute("data-loaded", "true")
    row = card.locator(f'tr[data-reference="{approved}"]')
    await row.get_by_label("Note").fill("Confirmed with the donor")
    await row.get_by_role("button", name="Approuver").click()
    await expect(boss.locator("#review-status")).to_have_text(f"{approved} approuvée.")
    await expect(row).to_have_count(0)
    other = card.locator(f'tr[data-reference="{corrected}"]')
    await other.get_by_label("Bon montant").fill("80")
    await other.get_by_role("button", name="Corriger").click()
    await expect(boss.locator("#review-status")).to_contain_text(f"{corrected} corrigée à")
    await expect(other).to_have_count(0)
    audit = await hotline.get(f"/pledges/{approved}/audit")
    assert audit[-1]["action"] == "approved"
    assert audit[-1]["after"]["review_note"] == "Confirmed with the donor"
    assert (await hotline.get(f"/pledges/{corrected}"))["amount_minor"] == 8000

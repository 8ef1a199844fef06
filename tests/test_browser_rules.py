"""The prank flow in a real browser: the volunteer's script panel and Prank button, the
polite-close script and its End-call button, the supervisor's alert and blocklist.

One uvicorn process on a fresh SQLite file seeded with the demo campaign (its
shipped rules in force); the call comes in through the signed telephony webhook.
Waits are Playwright's ``expect`` with a timeout, never timing assertions.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import AGENT, SUPERVISOR, Hotline, sign_in

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    expect = None  # type: ignore[assignment]

PRANKSTER = "+33655443322"


@pytest.fixture(scope="module")
def hotline(browser_hotline: Hotline) -> Hotline:
    return browser_hotline


async def test_prank_button_closes_the_call_and_strikes_the_number(
    hotline: Hotline, new_page: Any
) -> None:
    boss = await new_page()
    await sign_in(boss, hotline.base_url, *SUPERVISOR)
    await expect(boss.locator("#conn-status")).to_have_text("Connecté")
    await expect(boss.locator("#no-blocks")).to_be_visible()

    page = await new_page()
    await sign_in(page, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
    await expect(page.locator("#conn-status")).to_have_text("Connecté")
    panel = page.locator("#script-panel")
    prank = panel.locator("#flag-prank-btn")  # script-panel.js's words: found by its id
    await expect(prank).to_be_disabled()  # no call yet
    await page.get_by_role("button", name="Prêt").click()
    await expect(page.locator("#state-badge")).to_have_text("Prêt")

    call_id = await hotline.incoming("web-prank-1", caller=PRANKSTER)
    await expect(page.locator("#state-badge")).to_have_text("En appel")
    # The script in the volunteer's language: no setting of their own, so the
    # campaign's (French), whatever the page's.
    await expect(panel.locator(".script-title")).to_have_text("Appel de promesse")
    await expect(panel).to_contain_text("Quel montant souhaitez-vous promettre ?")

    await prank.click()
    await expect(panel.locator(".script-title")).to_have_text("Fin d'appel polie")
    await expect(panel.locator("#script-status")).not_to_be_empty()
    await expect(boss.locator("#alerts li").first).to_contain_text(
        f"Canular signalé par Camille (démo), appel du {PRANKSTER}"
    )
    row = boss.locator(f'#blocklist tr[data-number="{PRANKSTER}"]')
    await expect(row.locator("td").first).to_have_text("1")  # strikes
    await expect(row).to_contain_text("non bloqué")

    await panel.get_by_role("button", name="Terminer l'appel").click()
    await expect(page.locator("#state-badge")).to_have_text("Post-appel")
    call = await hotline.wait_for(f"/calls/{call_id}", "state", "wrap_up")
    assert "prank" in call["tags"]

    # The supervisor clears the strike.
    await row.get_by_role("button", name="Effacer les signalements").click()
    await expect(row).to_have_count(0)
    await expect(boss.locator("#no-blocks")).to_be_visible()
    errors = hotline.server_errors()
    assert not errors, "the server logged errors:\n" + "\n---\n".join(errors)


async def test_alerts_are_kept_and_acknowledged_across_a_reload(
    hotline: Hotline, new_page: Any
) -> None:
    # The previous test's prank alert was raised before this page opened: it is listed.
    boss = await new_page()
    await sign_in(boss, hotline.base_url, *SUPERVISOR)
    await expect(boss.locator("#alerts-card")).to_have_attribute("data-loaded", "true")
    alert = boss.locator("#alerts li", has_text="Canular signalé par Camille")
    await expect(alert).to_have_count(1)
    await expect(alert.locator(".alert-kind")).to_have_text("règles")
    await alert.get_by_role("button", name="Pris en compte").click()
    await expect(alert.locator(".alert-ack")).to_contain_text("Pris en compte par supervisor à")

    await boss.reload()
    await expect(boss.locator("#alerts-card")).to_have_attribute("data-loaded", "true")
    await expect(alert.locator(".alert-ack")).to_contain_text("Pris en compte par supervisor à")
    await expect(alert.get_by_role("button", name="Pris en compte")).to_have_count(0)
    await boss.get_by_label("Seulement celles non prises en compte").check()
    await expect(alert).to_have_count(0)
    await boss.get_by_label("Seulement celles non prises en compte").uncheck()
    await boss.get_by_label("Afficher").select_option("rule")
    await expect(alert).to_have_count(1)
    errors = hotline.server_errors()
    assert not errors, "the server logged errors:\n" + "\n---\n".join(errors)

"""The pages' i18n helper (app/web/static/i18n.js) in a real Chromium set to fr-FR:
it formats like the server's Babel (app/i18n/formats.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.i18n.formats import format_datetime, format_money, format_percent
from tests.browser import ORGANISER, SUPERVISOR, Hotline

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    expect = None


async def _french_page(browser: Any, hotline: Hotline) -> Any:
    context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    page = await context.new_page()
    await page.goto(f"{hotline.base_url}/login")
    return context, page


async def test_i18n_js_formats_as_babel_does_in_french(
    browser: Any, browser_hotline: Hotline
) -> None:
    context, page = await _french_page(browser, browser_hotline)
    try:
        # The server set <html lang> from the browser's Accept-Language (fr-FR).
        assert await page.evaluate("document.documentElement.lang") == "fr"
        got = await page.evaluate(
            """async () => {
                const i18n = await import("/static/i18n.js");
                await i18n.loadCatalogue();
                return {
                    language: i18n.language(),
                    money: i18n.formatMoney(123450, "EUR"),
                    small: i18n.formatMoney(5, "EUR"),
                    yen: i18n.formatMoney(1004, "JPY"),
                    percent: i18n.formatPercent(0.532),
                    when: i18n.formatDateTime("2026-12-06T20:05:00Z"),
                    elsewhere: i18n.formatDateTime("2026-12-06T20:05:00Z", "America/Martinique"),
                    message: i18n.t("campaign {campaign_id} not found", {campaign_id: 7}),
                    unknown: i18n.t("no entry {x}", {x: 1}),
                };
            }"""
        )
    finally:
        await context.close()
    moment = dt.datetime(2026, 12, 6, 20, 5, tzinfo=dt.UTC)
    assert got == {
        "language": "fr",
        "money": "1\u202f234,50\xa0€",
        "small": "0,05\xa0€",
        "yen": format_money(1004, "JPY", "fr"),
        "percent": "53,2\xa0%",
        "when": "06/12/2026 21:05",
        "elsewhere": format_datetime(moment, "fr", "America/Martinique"),
        "message": "campagne 7 introuvable",
        "unknown": "no entry 1",
    }
    # The same text as the server's formatters, byte for byte.
    assert got["money"] == format_money(123450, "EUR", "fr")
    assert got["percent"] == format_percent(0.532, "fr")
    assert got["when"] == format_datetime(moment, "fr")


async def test_i18n_js_in_english(browser: Any, browser_hotline: Hotline) -> None:
    context = await browser.new_context(locale="en-GB", timezone_id="Europe/Paris")
    page = await context.new_page()
    try:
        await page.goto(f"{browser_hotline.base_url}/login")
        assert await page.evaluate("document.documentElement.lang") == "en"
        got = await page.evaluate(
            """async () => {
                const i18n = await import("/static/i18n.js");
                await i18n.loadCatalogue();
                return [i18n.formatMoney(123450, "EUR"), i18n.formatPercent(0.532),
                        i18n.formatDateTime("2026-12-06T20:05:00Z"), i18n.t("log in first")];
            }"""
        )
    finally:
        await context.close()
    assert got == ["€1,234.50", "53.2%", "06/12/2026, 21:05", "log in first"]


async def test_a_french_volunteer_signs_in_on_a_french_page(
    browser: Any, browser_hotline: Hotline
) -> None:
    hotline = browser_hotline
    name = (await hotline.get(f"/agents?campaign_id={hotline.campaign_id}"))[0]["display_name"]
    username, pin = await hotline.volunteer_login(name)
    context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    page = await context.new_page()
    try:
        await page.goto(f"{hotline.base_url}/login")
        assert await page.title() == "Connexion — Pledgeline"
        await page.get_by_label("Nom").fill(username)
        # The script's own messages come from the catalogue too.
        await page.get_by_role("button", name="Se connecter").click()
        await expect(page.locator("#login-error")).to_have_text(
            "Saisissez votre PIN ou votre mot de passe."
        )
        await page.get_by_label("PIN ou mot de passe").fill("999999")
        await page.get_by_label("Numéro de campagne").fill(str(hotline.campaign_id))
        await page.get_by_role("button", name="Se connecter").click()
        await expect(page.locator("#login-error")).to_contain_text("Nom, PIN ou mot de passe")
        await page.get_by_label("PIN ou mot de passe").fill(pin)
        await page.get_by_role("button", name="Se connecter").click()
        await page.wait_for_url(lambda url: "/agent" in url, timeout=10_000)
        await expect(page.get_by_role("heading", name="Votre état")).to_be_visible()
        await expect(page.locator("#ready-btn")).to_contain_text("Prêt")
        # The screen's script writes French too (agent.js through the catalogue).
        await expect(page.locator("#state-hint")).to_have_text(
            "Appuyez sur Prêt pour commencer à prendre des appels."
        )
        assert await page.evaluate("document.documentElement.lang") == "fr"
    finally:
        await context.close()


async def _french_sign_in(browser: Any, hotline: Hotline, who: tuple[str, str]) -> Any:
    context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    page = await context.new_page()
    await page.goto(f"{hotline.base_url}/login")
    await page.get_by_label("Nom").fill(who[0])
    await page.get_by_label("PIN ou mot de passe").fill(who[1])
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(lambda url: "/login" not in url, timeout=10_000)
    return context, page


async def test_the_supervisor_screen_speaks_french(browser: Any, browser_hotline: Hotline) -> None:
    context, page = await _french_sign_in(browser, browser_hotline, SUPERVISOR)
    try:
        # The page's HTML (server), its scripts' texts (t()) and a script's own markup
        # (the planner's, translateTree) are all French.
        await expect(page.locator("#conn-status")).to_have_text("Connecté")
        await expect(page.get_by_role("heading", name="Plan de charge")).to_be_visible()
        await expect(page.locator("#agent-counts")).to_contain_text("bénévoles :")
        row = page.locator("#agents-body tr").first
        await expect(row.locator('[data-action="log-out"]')).to_have_text("Déconnecter")
        await expect(page.get_by_role("button", name="Envoyer aux bénévoles")).to_be_visible()
    finally:
        await context.close()


async def test_the_organiser_screen_speaks_french(browser: Any, browser_hotline: Hotline) -> None:
    context, page = await _french_sign_in(browser, browser_hotline, ORGANISER)
    try:
        await expect(page.locator("body")).to_have_attribute("data-loaded", "true")
        await expect(page.get_by_role("heading", name="Exporter les promesses")).to_be_visible()
        await expect(page.locator("#table-by_slot-title")).to_have_text("Par tranche horaire")
        # Money as the server's Babel writes it: "0,00 €" with its no-break space.
        await expect(page.locator("#overall-promised")).to_have_text(format_money(0, "EUR", "fr"))
    finally:
        await context.close()

"""The volunteer's screen in a real browser, in French (issue 13, point 2).

Auto-answer after the queue's breath (flash, a tone served by the app, countdown,
Answer now) and a manual queue; the screen cleared of the caller once the call is
over (wrap-up ended, or the call transferred); a supervisor's message kept until
dismissed; the greeting with the volunteer's own name; a withheld number described
alike in the caller panel, the call line and the script; and the layout measured
with element boxes against the viewport at 1366 by 768 and 390 by 844.

One uvicorn process (demo seed, simulation off) with the built-in directory serves
the module; calls come in through the signed telephony webhook. Waits are
Playwright's ``expect``: functional waits, not timing assertions.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.browser import SUPERVISOR, Hotline, running_hotline

try:
    from playwright.async_api import Page, expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    Page = expect = None  # type: ignore[assignment,misc]

LISTED = "+33123456789"  # Marie Dupont, 12 rue de Rivoli, 75004 Paris (sample directory)
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
async def hotline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hotline]:
    async with running_hotline(tmp_path_factory.mktemp("volunteer")) as running:
        yield running


async def _queue(hotline: Hotline, name: str = "pledges") -> dict[str, Any]:
    queues = await hotline.get(f"/queues?campaign_id={hotline.campaign_id}")
    found: dict[str, Any] = next(q for q in queues if q["name"] == name)
    return found


async def _patch(hotline: Hotline, path: str, body: dict[str, Any]) -> Any:
    r = await hotline.http.patch(path, json=body, headers=await hotline.admin_headers())
    assert r.status_code == 200, r.text
    return r.json()


async def _auto_answer(hotline: Hotline, on: bool, seconds: int = 2) -> None:
    queue = await _queue(hotline)
    await _patch(
        hotline, f"/queues/{queue['id']}", {"auto_answer": on, "auto_answer_seconds": seconds}
    )


async def _french_volunteer(
    browser: Any, hotline: Hotline, name: str, viewport: dict[str, int] | None = None
) -> tuple[Any, Page]:
    """A volunteer named ``name`` signed in on a French page, Ready."""
    agent_id = await hotline.agent_id(name)
    username, pin = await hotline.volunteer_login(name)
    context = await browser.new_context(
        locale="fr-FR", timezone_id="Europe/Paris", viewport=viewport or DESKTOP
    )
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto(f"{hotline.base_url}/login")
    await page.get_by_label("Nom").fill(username)
    await page.get_by_label("PIN ou mot de passe").fill(pin)
    await page.get_by_label("Numéro de campagne").fill(str(hotline.campaign_id))
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(lambda url: "/agent" in url, timeout=10_000)
    await expect(page.locator("#conn-status")).to_have_text("Connecté")
    await page.get_by_role("button", name="Prêt").click()
    await expect(page.locator("#state-badge")).to_have_attribute("data-state", "available")
    assert agent_id
    return context, page


async def _end_call(page: Page) -> None:
    await page.get_by_role("button", name="Raccrocher").click()
    await page.get_by_role("radio", name="Pas de promesse", exact=True).check()
    await page.get_by_role("button", name="Terminer le post-appel").click()
    await expect(page.locator("#state-badge")).to_have_attribute("data-state", "available")


async def _screen_is_clear(page: Page, *traces: str) -> None:
    """No call on screen and nothing of the last caller left anywhere on the page."""
    await expect(page.locator("#no-call")).to_be_visible()
    await expect(page.locator("#caller-details")).to_contain_text(
        "Les coordonnées de l'appelant s'affichent ici."
    )
    await expect(page.locator("#caller-details [data-field]")).to_have_count(0)
    await expect(page.locator("#pledge-form input")).to_have_count(0)
    await expect(page.locator("#pledge-form")).to_contain_text(
        "Le formulaire de promesse s'ouvre avec un appel."
    )
    await expect(page.locator("#script-panel .script-steps")).to_have_count(0)
    await expect(page.locator("#call-pop")).to_be_empty()
    text = await page.locator("body").inner_text()
    for trace in traces:
        assert trace not in text, f"{trace!r} is still on the screen"


async def test_auto_answer_after_a_breath_then_the_screen_is_cleared(
    browser: Any, hotline: Hotline
) -> None:
    await _auto_answer(hotline, True, 5)
    context, page = await _french_volunteer(browser, hotline, "Volunteer 06")
    try:
        # The tone is a file of the app.
        src = await page.locator("#offer-tone").get_attribute("src")
        assert src == "/static/offer-tone.wav"
        tone = await hotline.http.get(src)
        assert tone.status_code == 200 and tone.headers["content-type"] == "audio/wav"
        assert tone.content[:4] == b"RIFF" and len(tone.content) < 10_000

        call_id = await hotline.incoming("vol-breath", caller=LISTED)
        # The breath: the card flashes, the tone plays, a countdown, the caller's
        # details, and Answer now; nobody has answered yet.
        breath = page.locator("#breath")
        await expect(breath).to_be_visible()
        await expect(page.locator("#call-card")).to_have_attribute("data-breath", "on")
        await expect(page.locator("#breath-countdown")).to_have_text(
            re.compile(r"^Réponse automatique dans [0-5] s$")
        )
        await expect(breath.get_by_role("button", name="Répondre maintenant")).to_be_visible()
        await expect(page.locator("#offer-tone")).to_have_attribute(
            "data-played", re.compile("^(yes|blocked)$")
        )
        await expect(page.locator("#call-caller")).to_have_text(LISTED)
        await expect(page.locator("#caller-details [data-field=first_name]")).to_contain_text(
            "Marie Dupont"
        )
        # Then the screen answers by itself.
        await expect(page.locator("#state-badge")).to_have_attribute(
            "data-state", "on_call", timeout=15_000
        )
        await hotline.wait_for(f"/calls/{call_id}", "state", "connected")
        await expect(breath).to_be_hidden()
        await expect(page.locator("#call-card")).to_have_attribute("data-breath", "")

        # The greeting names the volunteer, never a placeholder.
        steps = page.locator("#script-panel .script-steps")
        await expect(steps).to_contain_text("Je m'appelle Volunteer 06.")
        assert "{" not in (await steps.inner_text())
        await expect(page.locator("#pf-first_name")).to_have_value("Marie")
        await page.locator("#pf-amount").fill("25")

        # The wrap-up ends: nothing of Marie Dupont stays on the idle screen.
        await _end_call(page)
        await _screen_is_clear(page, "Dupont", "Marie", LISTED, "01 23 45 67 89", "Rivoli")
    finally:
        await context.close()
        await _auto_answer(hotline, True, 2)
    assert not hotline.server_errors()


async def test_answer_now_and_a_manual_queue(browser: Any, hotline: Hotline) -> None:
    await _auto_answer(hotline, True, 5)
    context, page = await _french_volunteer(browser, hotline, "Volunteer 07")
    try:
        call_id = await hotline.incoming("vol-now", caller="+33698765432")
        await page.locator("#breath").get_by_role("button", name="Répondre maintenant").click()
        await expect(page.locator("#state-badge")).to_have_attribute("data-state", "on_call")
        await hotline.wait_for(f"/calls/{call_id}", "state", "connected")
        await _end_call(page)

        # A manual queue: the Answer button, no breath, nothing answered by itself.
        await _auto_answer(hotline, False)
        call_id = await hotline.incoming("vol-manual", caller="+33698765433")
        answer = page.locator("#answer-btn")
        await expect(answer).to_be_visible()
        await expect(answer).to_have_text("Répondre")
        await expect(page.locator("#breath")).to_be_hidden()
        await expect(page.locator("#offer-tone")).to_have_attribute(
            "data-played", re.compile("^(yes|blocked)$")
        )
        await page.wait_for_timeout(3_000)  # longer than the default breath (2 s)
        assert (await hotline.get(f"/calls/{call_id}"))["state"] == "offered"
        await expect(page.locator("#state-badge")).to_have_attribute("data-state", "reserved")
        await answer.click()
        await expect(page.locator("#state-badge")).to_have_attribute("data-state", "on_call")
        await _end_call(page)
    finally:
        await context.close()
        await _auto_answer(hotline, True, 2)
    assert not hotline.server_errors()


async def test_a_transferred_call_leaves_the_screen(browser: Any, hotline: Hotline) -> None:
    specialists = await _queue(hotline, "specialists")
    context, page = await _french_volunteer(browser, hotline, "Volunteer 08")
    try:
        await hotline.incoming("vol-transfer", caller=LISTED)
        await expect(page.locator("#state-badge")).to_have_attribute(
            "data-state", "on_call", timeout=15_000
        )
        await expect(page.locator("#pf-last_name")).to_have_value("Dupont")
        await page.evaluate(
            """async (queueId) => {
                const { screen } = await import("/static/agent-bus.js");
                await screen.command("transfer", { queue_id: queueId });
            }""",
            specialists["id"],
        )
        await expect(page.locator("#state-badge")).to_have_attribute("data-state", "wrap_up")
        # Still in wrap-up, but the caller is someone else's now: their details are gone.
        await expect(page.locator("#call-pop")).to_contain_text("Appel transféré")
        await expect(page.locator("#caller-details [data-field]")).to_have_count(0)
        await expect(page.locator("#pledge-form input")).to_have_count(0)
        await expect(page.locator("#script-panel .script-steps")).to_have_count(0)
        text = await page.locator("main").inner_text()
        for trace in ("Dupont", LISTED, "Rivoli"):
            assert trace not in text, trace
        await page.get_by_role("radio", name="Simple renseignement", exact=True).check()
        await page.get_by_role("button", name="Terminer le post-appel").click()
        await expect(page.locator("#state-badge")).to_have_attribute("data-state", "available")
        await _screen_is_clear(page, "Dupont", LISTED)
    finally:
        await context.close()
    assert not hotline.server_errors()


async def test_a_supervisor_message_stays_until_dismissed(browser: Any, hotline: Hotline) -> None:
    context, page = await _french_volunteer(browser, hotline, "Volunteer 09")
    boss_context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    try:
        boss = await boss_context.new_page()
        await boss.goto(f"{hotline.base_url}/login")
        await boss.get_by_label("Nom").fill(SUPERVISOR[0])
        await boss.get_by_label("PIN ou mot de passe").fill(SUPERVISOR[1])
        await boss.get_by_role("button", name="Se connecter").click()
        await boss.wait_for_url(lambda url: "/supervisor" in url, timeout=10_000)
        await expect(boss.locator("#conn-status")).to_have_text("Connecté")
        await boss.get_by_label("Message", exact=True).fill("Appel aux dons à l'antenne !")
        await boss.get_by_role("button", name="Envoyer aux bénévoles").click()

        banner = page.locator("#broadcasts .banner")
        await expect(banner).to_contain_text("Appel aux dons à l'antenne !")
        # A call comes and goes, the screen is cleared: the message stays.
        await hotline.incoming("vol-broadcast", caller="+33698765434")
        await expect(page.locator("#state-badge")).to_have_attribute(
            "data-state", "on_call", timeout=15_000
        )
        await _end_call(page)
        await expect(banner).to_contain_text("Appel aux dons à l'antenne !")
        # A reload too.
        await page.reload()
        await expect(page.locator("#conn-status")).to_have_text("Connecté")
        await expect(banner).to_contain_text("Appel aux dons à l'antenne !")
        await expect(banner).to_have_count(1)
        # Dismissed, it is gone, also after a reload.
        await banner.get_by_role("button", name=re.compile("^Fermer")).click()
        await expect(banner).to_have_count(0)
        await page.reload()
        await expect(page.locator("#conn-status")).to_have_text("Connecté")
        await expect(banner).to_have_count(0)
    finally:
        await boss_context.close()
        await context.close()
    assert not hotline.server_errors()


async def test_withheld_and_unrecognised_numbers_are_described_alike(
    browser: Any, hotline: Hotline
) -> None:
    context, page = await _french_volunteer(browser, hotline, "Volunteer 10")
    try:
        await hotline.incoming("vol-withheld", caller=None)
        await expect(page.locator("#state-badge")).to_have_attribute(
            "data-state", "on_call", timeout=15_000
        )
        await expect(page.locator("#call-caller")).to_have_text("numéro masqué")
        await expect(page.locator("#caller-details .pop-note")).to_have_text(
            "Numéro masqué : demandez ses coordonnées à l'appelant."
        )
        await expect(page.locator("#script-panel .script-title")).to_have_text(
            "Appel de promesse (numéro masqué)"
        )
        await expect(page.locator("#script-panel .script-steps")).to_contain_text(
            "Je m'appelle Volunteer 10."
        )
        await _end_call(page)

        # A number that came but is no phone number: "non reconnu" in all three.
        await hotline.incoming("vol-invalid", caller="12")
        await expect(page.locator("#state-badge")).to_have_attribute(
            "data-state", "on_call", timeout=15_000
        )
        await expect(page.locator("#call-caller")).to_have_text("numéro non reconnu")
        await expect(page.locator("#caller-details .pop-note")).to_have_text(
            "Numéro non reconnu : demandez ses coordonnées à l'appelant."
        )
        await expect(page.locator("#script-panel .script-title")).to_have_text(
            "Appel de promesse (numéro non reconnu)"
        )
        await expect(page.locator("#script-panel .script-steps")).to_contain_text(
            "Je m'appelle Volunteer 10."
        )
        await _end_call(page)
    finally:
        await context.close()
    assert not hotline.server_errors()


def _box_js() -> str:
    return """(selectors) => {
        const out = {};
        for (const [name, sel] of Object.entries(selectors)) {
            const node = document.querySelector(sel);
            if (!node) { out[name] = null; continue; }
            const b = node.getBoundingClientRect();
            out[name] = {
                top: b.top + scrollY, bottom: b.bottom + scrollY, left: b.left, right: b.right,
            };
        }
        out.viewport = {width: innerWidth, height: innerHeight};
        out.scrollWidth = document.documentElement.scrollWidth;
        return out;
    }"""


async def _on_a_call(browser: Any, hotline: Hotline, name: str, viewport: dict[str, int]) -> Any:
    context, page = await _french_volunteer(browser, hotline, name, viewport)
    await hotline.incoming(f"vol-layout-{viewport['width']}", caller=LISTED)
    await expect(page.locator("#state-badge")).to_have_attribute(
        "data-state", "on_call", timeout=15_000
    )
    # The longest everyday screen: a caller known to the directory, every detail shown.
    await expect(page.locator("#caller-details [data-field=phone]")).to_be_visible()
    await expect(page.locator("#pf-first_name")).to_have_value("Marie")
    await expect(page.locator("#script-panel .script-steps")).to_be_visible()
    await page.evaluate("window.scrollTo(0, 0)")
    return context, page


SELECTORS = {
    "status": "#state-badge",
    "caller": "#caller-details",
    "hangup": "#hangup-btn",
    "script": "#script-panel .script-steps",
    "flags": "#script-panel .script-flags",
    "amount": "#pf-amount",
    "email": "#pf-email",
    "note": "#pf-note",
    "save": "#pf-save",
}


async def test_at_1366_by_768_the_call_is_in_view_without_scrolling(
    browser: Any, hotline: Hotline
) -> None:
    context, page = await _on_a_call(browser, hotline, "Volunteer 11", DESKTOP)
    try:
        boxes = await page.evaluate(_box_js(), SELECTORS)
        height, width = boxes["viewport"]["height"], boxes["viewport"]["width"]
        assert (width, height) == (1366, 768)
        assert boxes["scrollWidth"] <= width
        for name in SELECTORS:
            box = boxes[name]
            assert box is not None, name
            assert box["top"] >= 0 and box["bottom"] <= height, (name, box)
            assert box["left"] >= 0 and box["right"] <= width, (name, box)
        # Caller, script and form side by side.
        assert boxes["caller"]["right"] <= boxes["script"]["left"]
        assert boxes["script"]["right"] <= boxes["amount"]["left"]
        await _end_call(page)
    finally:
        await context.close()


async def test_on_a_phone_nothing_scrolls_sideways_and_save_is_near(
    browser: Any, hotline: Hotline
) -> None:
    context, page = await _on_a_call(browser, hotline, "Volunteer 12", PHONE)
    try:
        boxes = await page.evaluate(_box_js(), SELECTORS)
        height, width = boxes["viewport"]["height"], boxes["viewport"]["width"]
        assert (width, height) == (390, 844)
        # No sideways scrolling: the page and every part of it within the width.
        assert boxes["scrollWidth"] <= width
        for name in SELECTORS:
            box = boxes[name]
            assert box is not None, name
            assert box["left"] >= 0 and box["right"] <= width, (name, box)
        # The amount is within a screen and a half of the top: one swipe.
        assert boxes["amount"]["top"] <= 1.5 * height, boxes["amount"]
        # With the amount at the top of the screen, Save is on the screen too.
        await page.locator("#pf-amount").evaluate("(n) => n.scrollIntoView({block: 'start'})")
        save = await page.locator("#pf-save").evaluate(
            "(n) => { const b = n.getBoundingClientRect(); return [b.top, b.bottom]; }"
        )
        assert save[0] >= 0 and save[1] <= height, save
        # The form's fields keep a usable size.
        amount = await page.locator("#pf-amount").bounding_box()
        assert amount is not None and amount["height"] >= 36
        await page.evaluate("window.scrollTo(0, 0)")
        await _end_call(page)
    finally:
        await context.close()


async def test_a_practice_call_speaks_french(browser: Any, hotline: Hotline) -> None:
    """The practice panel, the caller panel and the form in French, scenario texts too."""
    context = await browser.new_context(
        locale="fr-FR", timezone_id="Europe/Paris", viewport=DESKTOP
    )
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await page.goto(f"{hotline.base_url}/login")
        await page.get_by_label("Nom").fill("trainee")
        await page.get_by_label("PIN ou mot de passe").fill("135790")
        await page.get_by_label("Numéro de campagne").fill(str(hotline.campaign_id))
        await page.get_by_role("button", name="Se connecter").click()
        await page.wait_for_url(lambda url: "/agent" in url, timeout=10_000)
        practice = page.locator("#practice")
        await expect(practice.locator("#practice-trained")).to_have_text("Pas encore formé.")
        await practice.get_by_label("Appelant").select_option("returning_donor")
        await practice.get_by_role("button", name="Commencer un appel d'entraînement").click()
        await expect(page.locator("#practice-banner")).to_contain_text(
            "APPEL D'ENTRAÎNEMENT : Une donatrice fidèle."
        )
        await expect(practice.locator("#practice-lines")).to_contain_text(
            "Appelant : « Bonjour ! C'est Monique Lefèvre"
        )
        await expect(page.locator("#caller-details .pop-note")).to_have_text(
            "Donateur connu : vérifiez que vous parlez à Monique Lefèvre."
        )
        await expect(page.locator("#caller-details")).to_contain_text("à confirmer")
        form = page.locator("#pledge-form")
        await expect(form.get_by_label("Nom", exact=True)).to_have_value("Lefèvre")
        await expect(form.get_by_role("button", name="Enregistrer la promesse")).to_be_visible()
        await form.get_by_role("button", name="Enregistrer la promesse").click()
        await expect(form.locator("#pf-amount-error")).to_have_text(
            "Saisissez le montant, par exemple 25 ou 25,50"
        )
        await practice.get_by_role("button", name="Terminer l'appel d'entraînement").click()
        await expect(practice.locator("#practice-verdict")).to_have_text("Non réussi : recommencez")
        await expect(practice).to_contain_text("Bilan : Une donatrice fidèle")
        await expect(practice).to_contain_text(
            "La référence de la promesse n'a pas été relue (ou pas la bonne)."
        )
        await expect(practice).to_contain_text("Aucune promesse n'a été enregistrée.")
        # Ended: the panels are cleared as after a real call.
        await expect(page.locator("#caller-details [data-field]")).to_have_count(0)
        await expect(form.locator("input")).to_have_count(0)
    finally:
        await context.close()
    assert not hotline.server_errors()

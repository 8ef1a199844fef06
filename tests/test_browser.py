"""The live screens in a real browser (system Chromium, headless, through Playwright).

One uvicorn process on a fresh SQLite file seeded with the demo campaign
(simulation off) serves the whole module; calls come in through the signed
telephony webhook. Each test signs in through the sign-in page, as a person
would, in its own browser context, in French (fr-FR: the texts checked are the
French ones). Waits are Playwright's ``expect`` with a timeout: functional waits,
not timing assertions.

Without ``/usr/bin/chromium`` the module is skipped (it fails with ``CI=true``).
No browser is ever downloaded.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser import AGENT, AGENT_NAME, RECORD_SOCKETS, SUPERVISOR, Hotline, sign_in

try:
    from playwright.async_api import Page, expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    Page = expect = None  # type: ignore[assignment,misc]


@pytest.fixture(scope="module")
def hotline(browser_hotline: Hotline) -> Hotline:
    return browser_hotline


async def test_pages_and_assets_are_served_by_the_app(hotline: Hotline) -> None:
    """Every page and everything it loads comes from the app itself: no CDN, no fonts."""
    http = hotline.http
    assets: set[str] = set()
    for path in ("/", "/login", "/agent", "/supervisor"):
        r = await http.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"(src|href)=\"(https?:)?//", r.text), path
        assets |= set(re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", r.text))
    assert {"/static/app.css", "/static/agent.js", "/static/supervisor.js"} <= assets
    seen: set[str] = set()
    while assets:
        asset = assets.pop()
        seen.add(asset)
        r = await http.get(asset)
        assert r.status_code == 200, asset
        kind = {
            "js": "text/javascript",
            "css": "text/css",
            "svg": "image/svg+xml",
            "wav": "audio/wav",  # the volunteer screen's offer tone
        }
        assert r.headers["content-type"].startswith(kind[asset.rsplit(".", 1)[1]]), asset
        outside = re.sub(r"http://www\.w3\.org/[\w/]*", "", r.text)  # XML namespaces
        assert not re.search(r"https?://", outside), f"{asset} reaches outside the app"
        assets |= set(re.findall(r"from \"(/static/[^\"]+)\"", r.text)) - seen
    assert "/static/common.js" in seen
    for bad in ("/static/%2e%2e/main.py", "/static/..%2fpages.py", "/static/.secret", "/static/"):
        assert (await http.get(bad)).status_code == 404, bad


def _row(page: Page, name: str) -> Any:
    return page.locator("#agents-body tr").filter(has=page.get_by_role("rowheader", name=name))


def _no_server_errors(hotline: Hotline) -> None:
    errors = hotline.server_errors()
    assert not errors, "the server logged errors:\n" + "\n---\n".join(errors)


async def test_volunteer_takes_a_call_from_pop_to_wrap_up(hotline: Hotline, new_page: Any) -> None:
    page = await new_page()
    await sign_in(page, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
    assert page.url.endswith("/agent")
    badge = page.locator("#state-badge")
    await expect(page.locator("#conn-status")).to_have_text("Connecté")
    await expect(badge).to_have_text("Déconnecté")

    await page.get_by_role("button", name="Prêt").click()
    await expect(badge).to_have_text("Prêt")

    call_id = await hotline.incoming("web-call-1", caller="+33612345678")
    pop = page.locator("#call-pop")
    await expect(pop).to_have_attribute("aria-live", "assertive")
    await expect(pop).to_contain_text("+33612345678")
    # Auto-answer: the page sent `answer` by itself, nobody clicked.
    await expect(badge).to_have_text("En appel")
    await hotline.wait_for(f"/calls/{call_id}", "state", "connected")
    await expect(page.locator("#call-caller")).to_have_text("+33612345678")
    await expect(page.locator("#call-timer")).to_have_text(re.compile(r"^\d+:\d\d$"))

    await page.get_by_role("button", name="Raccrocher").click()
    await expect(badge).to_have_text("Post-appel")
    await expect(page.locator("#wrapup")).to_be_visible()
    await expect(page.locator("#wrapup-countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))

    await page.get_by_role("button", name="Prolonger (+30 s)").click()
    await expect(page.locator("#wrapup-countdown")).to_have_text(re.compile(r"^0:[45]\d$"))
    # A disposition is needed to end the wrap-up.
    await page.get_by_role("button", name="Terminer le post-appel").click()
    await expect(page.locator("#wrapup-error")).to_have_text(
        "Choisissez d'abord comment l'appel s'est terminé."
    )
    await page.get_by_role("radio", name="Promesse", exact=True).check()
    await page.get_by_role("button", name="Terminer le post-appel").click()
    await expect(badge).to_have_text("Prêt")
    await expect(page.locator("#wrapup")).to_be_hidden()
    call = await hotline.wait_for(f"/calls/{call_id}", "state", "completed")
    assert call["disposition"] == "pledge"
    agent = await hotline.get(f"/agents/{await hotline.agent_id(AGENT_NAME)}")
    assert agent["state"] == "available"

    # Keyboard shortcuts: P pauses (with the chosen reason), R makes ready...
    await page.get_by_label("Motif de la pause").select_option("training")
    await page.evaluate("document.activeElement.blur()")  # shortcuts wait while in a field
    await page.keyboard.press("p")
    await expect(badge).to_have_text(re.compile(r"^En pause\s?: Formation$"))
    await page.keyboard.press("r")
    await expect(badge).to_have_text("Prêt")
    # ...and can be turned off, which is remembered.
    await page.get_by_label("Raccourcis clavier").uncheck()
    await page.reload()
    await expect(page.locator("#conn-status")).to_have_text("Connecté")
    await expect(page.get_by_label("Raccourcis clavier")).not_to_be_checked()
    await page.get_by_label("Raccourcis clavier").check()

    await page.get_by_role("button", name="Arrêter de prendre des appels").click()
    await expect(badge).to_have_text("Déconnecté")
    _no_server_errors(hotline)


async def test_supervisor_sees_the_queue_and_volunteers_live(
    hotline: Hotline, new_page: Any
) -> None:
    name = "Volunteer 04"
    username, pin = await hotline.volunteer_login(name)
    boss = await new_page()
    await sign_in(boss, hotline.base_url, *SUPERVISOR)
    assert boss.url.endswith("/supervisor")
    await expect(boss.locator("#conn-status")).to_have_text("Connecté")
    row = _row(boss, name)
    await expect(row.locator(".badge")).to_have_text("Déconnecté")

    agent = await new_page()
    await sign_in(agent, hotline.base_url, username, pin, campaign_id=hotline.campaign_id)
    await expect(agent.locator("#state-badge")).to_have_text("Déconnecté")

    # Nobody is ready: the call waits, and the supervisor sees it.
    await hotline.incoming("web-call-2", caller="+33698765432")
    pledges = boss.locator('[data-queue="pledges"]')
    await expect(pledges.locator('[data-metric="waiting"]')).to_have_text(re.compile(r"^[1-9]\d*$"))
    await expect(pledges.locator('[data-metric="longest"]')).not_to_have_text("\u2013")
    await expect(boss.locator('#feed li[data-type="call.queued"]').first).to_contain_text("pledges")
    await expect(pledges.locator(".sl")).to_contain_text("objectif 80 %")

    # The volunteer goes ready, gets the call at once; the table follows within 2 s.
    # The screen answers after the queue's breath (auto_answer_seconds, 2 by default).
    await agent.get_by_role("button", name="Prêt").click()
    await expect(row.locator(".badge")).to_have_text(
        re.compile("^(Appel entrant|En appel)$"), timeout=2_000
    )
    await expect(row.locator(".badge")).to_have_text("En appel")
    await expect(agent.locator("#call-pop")).to_contain_text("+33698765432")
    await expect(pledges.locator('[data-metric="waiting"]')).to_have_text("0")
    await expect(row.locator('[data-col="time"]')).to_have_text(re.compile(r"^0:0\d$"))

    # The supervisor asks a pause during the call: the volunteer is told it comes after
    # this call, and who asked; Ready cancels it.
    await row.get_by_role("button", name=f"Pause: {name}").click()
    note = agent.locator("#pending-note")
    await expect(note).to_have_text("Pause demandée par votre superviseur : après cet appel.")
    await agent.get_by_role("button", name="Prêt").click()
    await expect(note).to_have_text("")

    # Hang up; the supervisor ends the wrap-up for the volunteer.
    await agent.get_by_role("button", name="Raccrocher").click()
    await expect(row.locator(".badge")).to_have_text("Post-appel", timeout=2_000)
    await row.get_by_role("button", name=f"Terminer le post-appel: {name}").click()
    await expect(agent.locator("#state-badge")).to_have_text("Prêt")
    await expect(row.locator(".badge")).to_have_text("Prêt", timeout=2_000)

    # A message to the volunteers, shown as a banner they can dismiss.
    await boss.get_by_label("Message", exact=True).fill("Big appeal on air in 2 minutes!")
    await boss.get_by_role("button", name="Envoyer aux bénévoles").click()
    await expect(boss.locator("#broadcast-status")).to_contain_text("Envoyé")
    banner = agent.locator("#broadcasts .banner")
    await expect(banner).to_contain_text("Big appeal on air in 2 minutes!")
    await expect(banner).to_contain_text("supervisor")
    await banner.get_by_role("button", name=re.compile("^Fermer")).click()
    await expect(banner).to_have_count(0)

    # Pause then log out from the supervisor screen.
    await boss.get_by_label("Motif de la pause", exact=True).select_option("technical")
    await row.get_by_role("button", name=f"Pause: {name}").click()
    await expect(agent.locator("#state-badge")).to_have_text(
        re.compile(r"^En pause\s?: Problème technique$")
    )
    await expect(row.locator('[data-col="reason"]')).to_have_text("Problème technique")
    await row.get_by_role("button", name=f"Déconnecter: {name}").click()
    await expect(agent.locator("#state-badge")).to_have_text("Déconnecté")
    await expect(row.locator(".badge")).to_have_text("Déconnecté", timeout=2_000)
    _no_server_errors(hotline)


async def test_events_missed_while_disconnected_arrive_after_reconnecting(
    hotline: Hotline, new_page: Any
) -> None:
    name = "Volunteer 05"
    username, pin = await hotline.volunteer_login(name)
    boss = await new_page()
    await sign_in(boss, hotline.base_url, *SUPERVISOR)
    row = _row(boss, name)

    agent = await new_page(init_script=RECORD_SOCKETS)
    await sign_in(agent, hotline.base_url, username, pin, campaign_id=hotline.campaign_id)
    badge = agent.locator("#state-badge")
    await expect(agent.locator("#conn-status")).to_have_text("Connecté")
    await agent.get_by_role("button", name="Prêt").click()
    await expect(badge).to_have_text("Prêt")
    await expect(row.locator(".badge")).to_have_text("Prêt")

    # The network goes and the socket with it.
    await agent.context.set_offline(True)
    await agent.evaluate("window.__sockets.forEach((s) => s.close())")
    await expect(agent.locator("#conn-banner")).to_have_text("Connexion perdue — reconnexion…")
    await expect(agent.locator("#conn-status")).to_have_text("Hors ligne")
    sockets_before = await agent.evaluate("window.__sockets.length")

    # Meanwhile the supervisor pauses the volunteer and sends a message.
    await boss.get_by_label("Motif de la pause", exact=True).select_option("training")
    await row.get_by_role("button", name=f"Pause: {name}").click()
    await expect(row.locator(".badge")).to_have_text("En pause")
    await boss.get_by_label("Message", exact=True).fill("Briefing at the top of the hour")
    await boss.get_by_role("button", name="Envoyer aux bénévoles").click()
    await expect(boss.locator("#broadcast-status")).to_contain_text("Envoyé")

    # Offline, the page could not even fetch a socket token: no new socket yet.
    await expect(agent.locator("#conn-banner")).to_have_text("Connexion perdue — reconnexion…")
    assert await agent.evaluate("window.__sockets.length") == sockets_before == 1

    # Back online: the page reconnects by itself and replays what it missed.
    await agent.context.set_offline(False)
    await expect(agent.locator("#conn-banner")).to_have_text(
        "Reconnecté — vous êtes à jour.", timeout=15_000
    )
    await expect(badge).to_have_text(re.compile(r"^En pause\s?: Formation$"))
    await expect(agent.locator("#broadcasts .banner")).to_contain_text(
        "Briefing at the top of the hour"
    )
    urls: list[str] = await agent.evaluate("window.__sockets.map((s) => s.url)")
    assert "last_seq=" not in urls[0]
    assert "last_seq=" in urls[-1], urls[-1]
    # Resumed from last_seq: the missed events were replayed, no fresh snapshot.
    received = await agent.evaluate("window.__received")
    after = [kind for index, kind in received if index == len(urls) - 1]
    assert "agent.state" in after and "supervisor.broadcast" in after, after
    assert "snapshot" not in after and "resync" not in after, after

    await agent.get_by_role("button", name="Arrêter de prendre des appels").click()
    await expect(badge).to_have_text("Déconnecté")
    _no_server_errors(hotline)


async def test_a_volunteer_cannot_use_the_supervisor_page(hotline: Hotline, new_page: Any) -> None:
    stranger = await new_page()
    await stranger.goto(f"{hotline.base_url}/supervisor")
    await stranger.wait_for_url(re.compile(r"/login\?next=%2Fsupervisor$"))

    page = await new_page()
    await sign_in(page, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
    await expect(page.locator("#conn-status")).to_have_text("Connecté")
    await page.goto(f"{hotline.base_url}/supervisor")
    refusal = page.locator("#not-allowed")
    await expect(refusal).to_contain_text("Accès refusé")
    await expect(refusal).to_contain_text("connecté en tant que agent")
    await expect(page.locator("#agents-table")).to_have_count(0)
    await expect(page.get_by_role("button", name="Envoyer aux bénévoles")).to_have_count(0)

    # The server refuses the supervisor socket to a volunteer too (close code 4003).
    code = await page.evaluate(
        """async () => {
            const me = await (await fetch('/auth/me')).json();
            const r = await fetch('/auth/ws-token', {
                method: 'POST', headers: {'X-CSRF-Token': me.csrf_token}});
            const {token} = await r.json();
            return await new Promise((resolve) => {
                const ws = new WebSocket(
                    `ws://${location.host}/ws/supervisor?token=${encodeURIComponent(token)}`);
                ws.onclose = (event) => resolve(event.code);
            });
        }"""
    )
    assert code == 4003
    _no_server_errors(hotline)

"""The warm hand-over on the volunteer's screen, in a real Chromium set to fr-FR:
after Needs support the volunteer sees the caller on hold and the wait for a
specialist, then the specialist taking the call, or (a campaign with a quick
fallback) the caller back with them and the partner-helpline script to read.

One uvicorn process on a fresh demo-seeded SQLite file (this module's own); the
calls and the specialist's seat come through the signed telephony webhook. Waits
are Playwright's ``expect``, never timing assertions.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from app import signing
from tests.browser import AGENT, AGENT_NAME, SECRET, SUPERVISOR, Hotline

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    expect = None  # type: ignore[assignment]

SPECIALIST = "Volunteer 01"  # has the specialist skill in the demo campaign

QUICK_FALLBACK = """
version: 1
rules:
  - name: needs-support
    on: agent.flagged
    when: flag.kind == "needs_support"
    then:
      - show_script: handover
      - consult: {queue: specialists, fallback: 2s}
  - name: no-specialist
    on: timer.no-specialist
    when: call.state == "connected"
    then:
      - show_script: partner-helpline
"""


@pytest.fixture(scope="module")
def hotline(browser_hotline: Hotline) -> Hotline:
    return browser_hotline


async def _event(hotline: Hotline, event: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"event_id": f"evt-{uuid.uuid4().hex}", **event}).encode()
    r = await hotline.http.post(
        "/telephony/events",
        content=body,
        headers={"Content-Type": "application/json", **signing.signed_headers(SECRET, body)},
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def _french_volunteer(browser: Any, hotline: Hotline) -> tuple[Any, Any]:
    context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto(f"{hotline.base_url}/login")
    await page.get_by_label("Nom").fill(AGENT[0])
    await page.get_by_label("PIN ou mot de passe").fill(AGENT[1])
    await page.get_by_label("Numéro de campagne").fill(str(hotline.campaign_id))
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(lambda url: "/agent" in url, timeout=10_000)
    await page.locator("#ready-btn").click()
    await expect(page.locator("#state-badge")).to_have_text("Prêt")
    return context, page


async def _french_supervisor(browser: Any, hotline: Hotline) -> tuple[Any, Any]:
    context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto(f"{hotline.base_url}/login")
    await page.get_by_label("Nom").fill(SUPERVISOR[0])
    await page.get_by_label("PIN ou mot de passe").fill(SUPERVISOR[1])
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(lambda url: "/supervisor" in url, timeout=10_000)
    return context, page


async def test_the_volunteer_waits_on_the_line_then_a_specialist_takes_the_caller(
    browser: Any, hotline: Hotline
) -> None:
    boss_context, boss = await _french_supervisor(browser, hotline)
    context, page = await _french_volunteer(browser, hotline)
    try:
        provider_id = "web-handover-1"
        call_id = await hotline.incoming(provider_id)
        await expect(page.locator("#state-badge")).to_have_text("En appel")
        # A specialist gets ready once the volunteer has the caller.
        specialist = await hotline.agent_id(SPECIALIST)
        await hotline.post(f"/agents/{specialist}/login")
        await hotline.post(f"/agents/{specialist}/ready")

        await page.locator("#needs-support-btn").click()
        panel = page.locator("#consult-panel")
        await expect(panel).to_be_visible()
        await expect(panel).to_contain_text("En attente d'un spécialiste…")
        await expect(panel).to_contain_text("L'appelant est en attente")
        await expect(page.locator("#state-badge")).to_have_text("En consultation")
        await expect(page.locator("#hangup-btn")).to_be_disabled()
        # The supervisors' live view shows the volunteer consulting.
        row = boss.locator("#agents-body tr").filter(
            has=boss.get_by_role("rowheader", name=AGENT_NAME)
        )
        await expect(row).to_contain_text("En consultation")

        leg = await hotline.wait_for(f"/agents/{specialist}", "state", "reserved")
        await _event(
            hotline,
            {"type": "seat.answered", "call_id": provider_id, "seat": f"agent:{specialist}"},
        )
        await expect(panel).to_contain_text("Un spécialiste a pris l'appel.")
        await expect(page.locator("#state-badge")).to_have_text("Post-appel")
        assert (await hotline.get(f"/calls/{call_id}"))["state"] == "transferred"
        assert (await hotline.get(f"/calls/{leg['current_call_id']}"))["state"] == "connected"
        # The caller and the specialist say goodbye; both volunteers are free again.
        await _event(hotline, {"type": "call.hangup", "call_id": provider_id})
        await hotline.wait_for(f"/agents/{specialist}", "state", "wrap_up")
        await hotline.post(f"/agents/{specialist}/wrap-up/end", {"disposition": "other"})
        await hotline.post(f"/agents/{specialist}/pause", {"reason": "break"})
        volunteer = await hotline.agent_id()
        await hotline.post(f"/agents/{volunteer}/wrap-up/end", {"disposition": "other"})
        await expect(page.locator("#state-badge")).to_have_text("Prêt")
        await expect(panel).to_be_hidden()
        await hotline.post(f"/agents/{volunteer}/pause", {"reason": "break"})
    finally:
        await context.close()
        await boss_context.close()
    errors = hotline.server_errors()
    assert not errors, "the server logged errors:\n" + "\n---\n".join(errors)


async def test_no_specialist_in_time_the_volunteer_gets_the_partner_helpline_script(
    browser: Any, hotline: Hotline
) -> None:
    r = await hotline.http.put(
        f"/campaigns/{hotline.campaign_id}/rules",
        json={"source": QUICK_FALLBACK},
        headers=await hotline.admin_headers(),
    )
    assert r.status_code == 200, r.text
    context, page = await _french_volunteer(browser, hotline)
    try:
        await hotline.incoming("web-handover-2")
        await expect(page.locator("#state-badge")).to_have_text("En appel")
        await page.locator("#needs-support-btn").click()
        panel = page.locator("#consult-panel")
        await expect(panel).to_contain_text("Aucun spécialiste n'a pu répondre à temps.")
        await expect(panel).to_contain_text("lisez-lui le numéro de la ligne partenaire")
        await expect(page.locator("#state-badge")).to_have_text("En appel")
        script = page.locator("#script-panel")
        await expect(script.locator(".script-title")).to_have_text("Ligne partenaire")
        await expect(script).to_contain_text("nos spécialistes sont tous occupés")
        await expect(page.locator("#hangup-btn")).to_be_enabled()
    finally:
        await context.close()
    errors = hotline.server_errors()
    assert not errors, "the server logged errors:\n" + "\n---\n".join(errors)

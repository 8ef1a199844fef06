"""A callback on the volunteer's screen, in a real browser: offered like a call (the
screen pop, the form), marked "Callback", and the volunteer's "Call back" makes the
platform dial; the supervisor's screen shows the expected wait and the callback
waiting in the caller's place.

One uvicorn process (demo seed); the platform's side comes through the signed
telephony webhook.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from app import signing
from tests.browser import SECRET, SUPERVISOR, Hotline, sign_in
from tests.browser_fixtures import end_call, volunteer_ready

try:
    from playwright.async_api import Page, expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    Page = expect = None  # type: ignore[assignment,misc]

WAITING_CALLER = "+33123456789"  # in the sample directory: Marie Dupont


async def platform(hotline: Hotline, event: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"event_id": f"evt-{uuid.uuid4().hex}", **event}).encode()
    response = await hotline.http.post(
        "/telephony/events",
        content=body,
        headers={"Content-Type": "application/json", **signing.signed_headers(SECRET, body)},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_callback_is_offered_marked_and_dialled_from_the_screen(
    browser_hotline: Hotline, new_page: Any
) -> None:
    hotline = browser_hotline
    queues = await hotline.get(f"/queues?campaign_id={hotline.campaign_id}")
    pledges = next(q for q in queues if q["name"] == "pledges")
    r = await hotline.http.patch(
        f"/queues/{pledges['id']}",
        json={"callback_offer_seconds": 0},
        headers=await hotline.admin_headers(),
    )
    assert r.status_code == 200, r.text

    page = await new_page()
    await volunteer_ready(page, hotline)
    supervisor = await new_page()
    await sign_in(supervisor, hotline.base_url, *SUPERVISOR)

    # The volunteer is busy with a first caller; a second waits and asks to be called back.
    await hotline.incoming("cbb-busy", caller="+33612345670")
    await expect(page.locator("#call-pop")).to_contain_text("En appel avec")
    waiting_id = await hotline.incoming("cbb-wait", caller=WAITING_CALLER)
    call = await hotline.get(f"/calls/{waiting_id}")
    assert call["state"] == "queued" and call["callback_digit"] == "1"
    pressed = await platform(hotline, {"type": "call.dtmf", "call_id": "cbb-wait", "digit": "1"})
    callback_id = pressed["callback_id"]
    assert callback_id is not None

    # The supervisor sees the callback waiting in the caller's place, with its wait.
    row = supervisor.locator(f'#waiting-body tr[data-call-id="{callback_id}"]')
    await expect(row).to_contain_text("Rappel")
    await expect(row).to_contain_text("pledges")
    queue_row = supervisor.locator(f'#queues-body tr[data-queue-id="{pledges["id"]}"]')
    await expect(queue_row.locator('[data-metric="expected-wait-basis"]')).to_contain_text(
        "1 en service"
    )

    # The first call ends: the callback is offered at once, marked, with the caller's
    # details.
    await page.get_by_role("button", name="Raccrocher").click()
    await expect(page.locator("#state-badge")).to_have_attribute("data-state", "wrap_up")
    await page.get_by_role("radio", name="Pas de promesse", exact=True).check()
    await page.get_by_role("button", name="Terminer le post-appel").click()
    await expect(page.locator("#call-pop")).to_contain_text("Rappel de")
    await expect(page.locator("#call-kind")).to_be_visible()
    await expect(page.locator("#call-kind")).to_have_text("Rappel")
    details = page.locator("#caller-details")
    await expect(details.locator("[data-field=first_name]")).to_contain_text("Marie Dupont")
    call_back = page.get_by_role("button", name="Rappeler")
    await expect(call_back).to_be_visible()

    await call_back.click()
    await expect(page.locator("#call-pop")).to_contain_text("en cours")
    await hotline.wait_for(f"/calls/{callback_id}", "state", "dialing")
    callback = await hotline.get(f"/calls/{callback_id}")
    assert callback["kind"] == "callback" and callback["dial_attempts"] == 1

    # The caller answers the platform's call: a conversation like any other.
    answered = await platform(
        hotline,
        {"type": "dial.answered", "call_id": f"callback-{waiting_id}", "callback_id": callback_id},
    )
    assert answered["call"]["state"] == "connected"
    await expect(page.locator("#call-pop")).to_contain_text("En appel avec")
    await expect(page.locator("#call-kind")).to_be_visible()
    # The pledge form, pre-filled from the pop, saves a pledge on the callback.
    form = page.locator("#pledge-form")
    # The form's words are pledge-form.js's: its fields found by their ids.
    await expect(form.locator("#pf-first_name")).to_have_value("Marie")
    await form.locator("#pf-email").fill("marie.dupont@example.org")
    await form.get_by_role("button", name="50", exact=True).click()
    await form.locator("#pf-amount").press("Enter")
    await expect(form.locator("#pf-reference")).not_to_be_empty()
    pledges = await hotline.get(f"/pledges?call_id={callback_id}")
    assert [p["amount_minor"] for p in pledges] == [5000]
    await end_call(page, "Pledge")
    await hotline.wait_for(f"/calls/{callback_id}", "state", "completed")
    assert not hotline.server_errors()

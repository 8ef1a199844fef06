"""End to end through a real Asterisk: a SIPp caller to the hotline number, the
volunteer's browser softphone (Chromium with a fake microphone) registered on
Asterisk's websocket transport, the app driving the call over ARI.

The caller is queued first (music on hold), then the volunteer goes Ready: the page
answers by itself, the caller's RTP reaches the page's peer connection (WebRTC
statistics), the volunteer hangs up from the page, saves a pledge in the wrap-up and
ends it; the call is over in the database as it should be. Waits on states and
counts, never on time. Without Asterisk or Chromium the test skips (fails under
``CI=true``).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.seed import DEMO_NUMBER
from tests.asterisk_pbx import Pbx, Sipp, asterisk_problem, free_port, running_pbx, start_sipp
from tests.browser import (
    AGENT,
    FAKE_MEDIA,
    Hotline,
    context_options,
    launch_chromium,
    running_hotline,
    sign_in,
)
from tests.browser_fixtures import need_chromium
from tests.conftest import wait_for

_PROBLEM = asterisk_problem()
if _PROBLEM is not None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the telephony tests cannot run: {_PROBLEM}", pytrace=False)
    pytest.skip(_PROBLEM, allow_module_level=True)

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # need_chromium() says so: the test skips, or fails with CI=true
    Page = async_playwright = expect = None  # type: ignore[assignment,misc]

# Every peer connection the page makes, kept where the test can read its statistics.
RECORD_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__pcs.push(this);
    }
  };
})();
"""
# RTP packets the page received so far, over all its peer connections.
PACKETS_RECEIVED = """
async () => {
  let packets = 0;
  for (const pc of window.__pcs || []) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") packets += s.packetsReceived || 0;
    });
  }
  return packets;
}
"""


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    async with running_pbx(tmp_path) as running:
        yield running


@pytest.fixture
async def asterisk_hotline(tmp_path: Path, pbx: Pbx) -> AsyncIterator[Hotline]:
    settings = {**pbx.settings(), "softphone_ws_url": f"ws://127.0.0.1:{pbx.http_port}/ws"}
    async with running_hotline(tmp_path / "app", settings=settings) as running:
        yield running


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    need_chromium()
    assert async_playwright is not None
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright, FAKE_MEDIA)
        try:
            context = await chromium.new_context(**context_options())
            context.set_default_timeout(30_000)
            await context.add_init_script(RECORD_PEER_CONNECTIONS)
            yield await context.new_page()
        finally:
            await chromium.close()


async def _app_registered(pbx: Pbx) -> None:
    """The app's Stasis application is on Asterisk: a call now reaches it."""

    async def check() -> bool:
        async with pbx.ari() as ari:
            apps = (await ari.get("/applications")).json()
        return any(a["name"] == "pledgeline" for a in apps)

    await wait_for(check, timeout=30)


async def _the_call(hotline: Hotline, state: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        calls = await hotline.get(f"/calls?campaign_id={hotline.campaign_id}")
        return calls[0] if len(calls) == 1 and calls[0]["state"] == state else None

    found: dict[str, Any] = await wait_for(check, timeout=30)
    return found


async def test_a_caller_is_answered_heard_and_pledges_through_the_browser_softphone(
    pbx: Pbx, asterisk_hotline: Hotline, page: Page, sipps: list[Sipp], tmp_path: Path
) -> None:
    hotline = asterisk_hotline
    await _app_registered(pbx)
    agent_id = await hotline.agent_id()
    await sign_in(page, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
    badge = page.locator("#state-badge")
    await expect(page.locator("#mic-status")).to_have_text("Micro OK")
    # Registered on Asterisk as the volunteer's own endpoint.
    await expect(page.locator("#softphone-status")).to_have_text("Connecté au standard")
    async with pbx.ari() as ari:
        endpoint = (await ari.get(f"/endpoints/PJSIP/agent-{agent_id}")).json()
    assert endpoint["state"] == "online"

    # The caller rings first: welcomed, then queued with music on hold.
    caller = start_sipp(
        tmp_path, "caller", port=free_port(socket.SOCK_DGRAM), pbx=pbx, service=DEMO_NUMBER
    )
    sipps.append(caller)
    queued = await _the_call(hotline, "queued")

    async def music() -> bool:
        return "Started music on hold" in pbx.log_text()

    await wait_for(music, timeout=30)

    # Ready: the call is offered to the browser, which answers by itself.
    await page.locator("#ready-btn").click()
    await expect(badge).to_have_text("En appel")
    connected = await _the_call(hotline, "connected")
    assert connected["id"] == queued["id"]
    assert connected["agent_id"] == agent_id

    # The caller's audio reaches the page (its RTP, through Asterisk, over SRTP).
    await page.wait_for_function(f"({PACKETS_RECEIVED})().then((n) => n > 0)", polling=100)

    # The volunteer hangs up from the page: the caller gets Asterisk's BYE.
    await page.locator("#hangup-btn").click()
    await expect(badge).to_have_attribute("data-state", "wrap_up")
    assert await caller.finished() == 0, caller.output()

    # The pledge saved in the wrap-up, then the wrap-up ended with its disposition.
    form = page.locator("#pledge-form")
    await form.locator("#pf-first_name").fill("Jeanne")
    await form.locator("#pf-last_name").fill("Martin")
    await form.locator("#pf-email").fill("jeanne.martin@example.org")
    await form.get_by_role("button", name="50", exact=True).click()
    await form.locator("#pf-amount").press("Enter")
    await expect(form.locator("#pf-reference")).to_have_text(re.compile(r"^[A-Z2-9]{3}-"))
    choice = page.locator('#dispositions input[name="disposition"][value="pledge"]')
    await choice.check()
    await page.locator("#end-wrapup-btn").click()
    await expect(badge).to_have_text("Prêt")

    call = await hotline.wait_for(f"/calls/{queued['id']}", "state", "completed")
    assert call["end_reason"] == "agent_hangup"
    assert call["disposition"] == "pledge"
    assert call["provider_call_id"] == queued["provider_call_id"]
    pledges = await hotline.get(f"/pledges?call_id={queued['id']}")
    assert [p["amount_minor"] for p in pledges] == [5000]
    # Asterisk holds nothing of the call any more.
    async with pbx.ari() as ari:
        assert (await ari.get("/bridges")).json() == []
        assert (await ari.get("/channels")).json() == []
    assert hotline.server_errors() == []

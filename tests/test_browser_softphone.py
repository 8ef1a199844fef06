"""The volunteer page's browser softphone (app/web/static/softphone.js), in French.

Chromium runs with a fake microphone (a beeping tone) that needs no click. The
softphone registers on a websocket SIP registrar of this test (``Registrar``: it
answers REGISTER with 200 OK and can cut the connection, as a PBX behind a broken
network would): the end-to-end call through a real Asterisk is the Asterisk
harness's. The JsSIP bundle is the app's own file: no request leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

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

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # need_chromium() says so: the tests skip, or fail with CI=true
    Page = async_playwright = expect = None  # type: ignore[assignment,misc]


class Registrar:
    """A SIP registrar over websocket (RFC 7118, subprotocol ``sip``): a REGISTER
    without credentials gets a digest challenge (401), one with them 200 OK; what came
    in is kept, and ``cut()`` drops the connections."""

    def __init__(self) -> None:
        self.refusing = False  # every REGISTER gets 403 Forbidden
        self.messages: list[str] = []
        self.connections: list[ServerConnection] = []
        self.server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws"

    def registers(self) -> list[str]:
        return [m for m in self.messages if m.startswith("REGISTER ")]

    async def _serve(self, connection: ServerConnection) -> None:
        self.connections.append(connection)
        async for message in connection:
            text = message if isinstance(message, str) else message.decode()
            self.messages.append(text)
            if text.startswith("REGISTER "):
                await connection.send(_answer(text, refuse=self.refusing))

    async def cut(self) -> None:
        for connection in self.connections:
            await connection.close()


def _headers(message: str) -> dict[str, str]:
    head = message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    return {line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip() for line in head}


def _answer(request: str, *, refuse: bool = False) -> str:
    """401 with a digest challenge to a REGISTER without credentials, else 200 OK (or
    403 when refusing): its Via, From, Call-ID, CSeq (and Contact) back, To tagged."""
    headers = _headers(request)
    lines = [f"Via: {headers['via']}", f"From: {headers['from']}"]
    lines += [f"To: {headers['to']};tag=registrar", f"Call-ID: {headers['call-id']}"]
    lines.append(f"CSeq: {headers['cseq']}")
    if refuse:
        status = "403 Forbidden"
    elif "authorization" not in headers:
        status = "401 Unauthorized"
        lines.append('WWW-Authenticate: Digest realm="pbx", nonce="n0nce", algorithm=MD5')
    else:
        status = "200 OK"
        contact = re.sub(r";expires=\d+", "", headers["contact"])
        lines.append(f"Contact: {contact};expires=300")
    return "\r\n".join([f"SIP/2.0 {status}", *lines, "Content-Length: 0", "", ""])


@pytest.fixture(scope="module")
async def registrar() -> AsyncIterator[Registrar]:
    registrar = Registrar()
    async with serve(registrar._serve, "127.0.0.1", 0, subprotocols=[Subprotocol("sip")]) as server:
        registrar.server = server
        yield registrar


@pytest.fixture(scope="module")
async def softphone_hotline(
    tmp_path_factory: pytest.TempPathFactory, registrar: Registrar
) -> AsyncIterator[Hotline]:
    workdir: Path = tmp_path_factory.mktemp("browser-softphone")
    async with running_hotline(workdir, settings={"softphone_ws_url": registrar.url}) as running:
        yield running


@pytest.fixture(scope="module")
async def media_browser() -> AsyncIterator[Any]:
    """Chromium with a fake microphone and no permission prompt."""
    need_chromium()
    assert async_playwright is not None
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright, FAKE_MEDIA)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Volunteer:
    page: Page
    requested: list[str]  # every URL the page asked for, sockets included


@pytest.fixture
async def volunteer(media_browser: Any) -> AsyncIterator[Volunteer]:
    context = await media_browser.new_context(**context_options())
    context.set_default_timeout(20_000)
    page = await context.new_page()
    seen = Volunteer(page, [])
    page.on("request", lambda request: seen.requested.append(request.url))
    page.on("websocket", lambda socket: seen.requested.append(socket.url))
    yield seen
    await context.close()


async def _level_moves(page: Page) -> None:
    """The meter shows several different levels, one of them a sound (counts, no time)."""
    await page.wait_for_function(
        """() => {
          const seen = (window.__levels = window.__levels || new Set());
          seen.add(document.querySelector('#mic-level').value);
          return seen.size >= 3 && Math.max(...seen) > 0.04;
        }""",
        polling=50,
        timeout=20_000,
    )


async def test_softphone_checks_the_microphone_and_registers(
    softphone_hotline: Hotline, registrar: Registrar, volunteer: Volunteer
) -> None:
    page = volunteer.page
    agent_id = await softphone_hotline.agent_id()
    await sign_in(
        page, softphone_hotline.base_url, *AGENT, campaign_id=softphone_hotline.campaign_id
    )
    panel = page.locator("#softphone")
    await expect(panel).to_be_visible()
    await expect(page.locator("#softphone-title")).to_have_text("Casque")
    # The microphone: heard, and its level moves with the fake device's tone.
    await expect(page.locator("#mic-status")).to_have_text("Micro OK")
    await _level_moves(page)
    # Registered on the PBX's websocket as the volunteer's seat.
    await expect(page.locator("#softphone-status")).to_have_text("Connecté au standard")
    register = _headers(registrar.registers()[-1])
    assert register["to"].startswith(f"<sip:agent-{agent_id}@127.0.0.1>")
    # Answered to the challenge with the session's user name, never the volunteer's
    # login or PIN.
    assert re.search(r'username="sp[0-9a-f]{30}"', register["authorization"])
    assert AGENT[1] not in "".join(registrar.messages)
    # The JsSIP bundle came from the app; nothing went anywhere but 127.0.0.1.
    assert any(url.endswith("/static/vendor/jssip.min.js") for url in volunteer.requested)
    assert {urlsplit(url).hostname for url in volunteer.requested} == {"127.0.0.1"}
    # Buttons of a call stay off with no call on the line.
    for button in ("#sp-mute-btn", "#sp-hold-btn", "#sp-hangup-btn"):
        await expect(page.locator(button)).to_be_disabled()
    await expect(page.locator("#sp-answer-btn")).to_be_hidden()
    # Ready goes through: the microphone was heard and the line is registered.
    await page.locator("#ready-btn").click()
    await expect(page.locator("#state-badge")).to_have_text("Prêt")

    # A network cut: the status says so, and the page registers again on a new socket.
    sockets = len(registrar.connections)
    registers = len(registrar.registers())
    await registrar.cut()
    await expect(page.locator("#softphone-status")).to_have_text("Reconnexion…")
    await expect(page.locator("#softphone-status")).to_have_text("Connecté au standard")
    assert len(registrar.connections) > sockets
    assert len(registrar.registers()) > registers
    # Back online (the browser says so): a new socket and registration at once.
    sockets = len(registrar.connections)
    await page.evaluate("window.dispatchEvent(new Event('online'))")
    await expect(page.locator("#softphone-status")).to_have_text("Connecté au standard")
    await _wait(lambda: len(registrar.connections) > sockets)
    assert softphone_hotline.server_errors() == []


async def test_ready_waits_for_the_registration(
    softphone_hotline: Hotline, registrar: Registrar, volunteer: Volunteer
) -> None:
    page = volunteer.page
    name = "Volunteer 05"
    agent_id = await softphone_hotline.agent_id(name)
    username, pin = await softphone_hotline.volunteer_login(name)
    registrar.refusing = True
    try:
        await sign_in(
            page, softphone_hotline.base_url, username, pin, softphone_hotline.campaign_id
        )
        await expect(page.locator("#softphone-status")).to_have_text(
            "Le standard a refusé l'inscription du téléphone du navigateur."
        )
        await expect(page.locator("#mic-status")).to_have_text("Micro OK")
        await page.locator("#ready-btn").click()
        await expect(page.locator("#command-status")).to_have_text(
            "Attendez « Connecté au standard » avant d'appuyer sur Prêt."
        )
        # Refused before any command: the volunteer is still signed out of the queues.
        assert (await softphone_hotline.get(f"/agents/{agent_id}"))["state"] == "logged_out"
    finally:
        registrar.refusing = False


async def _wait(check: Any, tries: int = 200) -> None:
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


async def test_desk_phone_mode_without_softphone(
    browser_hotline: Hotline, volunteer: Volunteer
) -> None:
    page = volunteer.page
    await sign_in(page, browser_hotline.base_url, *AGENT, campaign_id=browser_hotline.campaign_id)
    await expect(page.locator("#conn-status")).to_have_text("Connecté")
    await page.locator("#ready-btn").click()
    await expect(page.locator("#state-badge")).to_have_text("Prêt")
    await expect(page.locator("#softphone")).to_be_hidden()
    assert not any("jssip" in url for url in volunteer.requested)

"""The tote board as studio graphics, in a real browser (fr-FR).

One uvicorn process (demo seed). The board at 1920 by 1080 gets its figures pushed
(``/board/stream``): a goal set by the admin fills the thermometer, and a donor who
agreed to be named on air appears by first name and town (and nothing else of
them); the compact ``/board/embed`` fits a 300 by 150 frame on another page.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from tests.browser import Hotline

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    expect = None  # type: ignore[assignment]

STUDIO = {"width": 1920, "height": 1080}


async def pledge(hotline: Hotline, **fields: Any) -> dict[str, Any]:
    body = {
        "campaign_id": hotline.campaign_id,
        "first_name": "Inès",
        "last_name": "Confidentielle",
        "city": "Rennes",
        "postcode": "35000",
        "email": "ines@example.org",
        "amount_minor": 5000,
        **fields,
    }
    r = await hotline.http.post(
        "/pledges",
        json=body,
        headers={**await hotline.admin_headers(), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 201, r.text
    saved: dict[str, Any] = r.json()
    return saved


async def test_the_board_shows_the_goal_and_a_consenting_donor(
    browser_hotline: Hotline, new_page: Any
) -> None:
    hotline = browser_hotline
    board = await new_page()
    await board.set_viewport_size(STUDIO)
    await board.goto(f"{hotline.base_url}/board?campaign={hotline.campaign_id}")
    await expect(board.locator("html")).to_have_attribute("lang", "fr")
    await expect(board.locator("body")).to_have_attribute("data-live", "true")
    await expect(board.locator("#board-goal")).to_be_hidden()  # no goal yet

    # Pushed while the page is open: a goal, a donor who declined, one who agreed.
    total = int(await board.locator("#board-total").get_attribute("data-minor") or "0")
    goal = (total + 10_000) * 4
    r = await hotline.http.patch(
        f"/campaigns/{hotline.campaign_id}",
        json={"goal_minor": goal},
        headers=await hotline.admin_headers(),
    )
    assert r.status_code == 200, r.text
    await pledge(hotline, first_name="Discret", city="Vannes", consent_board=False)
    await pledge(hotline, consent_board=True)

    names = board.locator("#board-names")
    await expect(names.locator("li").first).to_have_text("Inès, Rennes")
    await expect(board.locator("#board-thanks-title")).to_have_text("Merci")
    bar = board.locator("#board-goal-bar")
    await expect(board.locator("#board-goal")).to_be_visible()
    await expect(board.locator("#board-goal-label")).to_have_text("Objectif")
    shown = int(await board.locator("#board-total").get_attribute("data-minor") or "0")
    percent = shown * 100 // goal
    await expect(bar).to_have_attribute("aria-valuenow", str(percent))
    fill = await board.locator("#board-goal-fill").evaluate("e => e.style.width")
    assert fill.endswith("%") and 0 < float(fill[:-1]) <= 100
    text = await board.locator("body").inner_text()
    for hidden in ("Confidentielle", "ines@example.org", "Discret", "Vannes"):
        assert hidden not in text
    # Studio graphics: everything on one 1920x1080 screen, the total in big figures.
    height = await board.evaluate("document.documentElement.scrollHeight")
    assert height <= STUDIO["height"]
    size = await board.locator("#board-total").evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert size >= 150


async def test_the_embed_fits_a_small_frame_on_the_charitys_site(
    browser_hotline: Hotline, new_page: Any
) -> None:
    hotline = browser_hotline
    r = await hotline.http.patch(
        f"/campaigns/{hotline.campaign_id}",
        json={"goal_minor": 100_000_000},
        headers=await hotline.admin_headers(),
    )
    assert r.status_code == 200, r.text
    site = await new_page()
    url = f"{hotline.base_url}/board/embed?campaign={hotline.campaign_id}"
    # Another site's page frames it: another origin (a server of its own on another
    # port of the loopback; Chromium blocks a public page framing a local server).
    page = (
        f'<!doctype html><html lang="fr"><p>Faites un don</p><iframe src="{url}" width="300"'
        ' height="150" style="border:0" title="Compteur"></iframe></html>'
    ).encode()

    async def charity_site(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        head += f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + page)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(charity_site, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await site.goto(f"http://127.0.0.1:{port}/don")
        await _embedded(site)
    finally:
        server.close()
        await server.wait_closed()


async def _embedded(site: Any) -> None:
    frame = site.frame_locator("iframe")
    await expect(frame.locator("body")).to_have_attribute("data-live", "true")
    await expect(frame.locator("#board-total")).to_have_attribute(
        "data-minor", re.compile(r"^\d+$")
    )
    await expect(frame.locator("#board-goal")).to_be_visible()
    await expect(frame.locator(".board-embed-count")).to_contain_text("promesses")
    inner = site.frames[1]
    assert await inner.evaluate("document.documentElement.lang") == "fr"
    width, height = await inner.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert width <= 300 and height <= 150, (width, height)
    # The thermometer is inside the frame, not cut off by its bottom edge.
    outer = await site.locator("iframe").bounding_box()
    box = await frame.locator("#board-goal-bar").bounding_box()
    assert outer is not None and box is not None
    assert box["y"] + box["height"] <= outer["y"] + outer["height"]

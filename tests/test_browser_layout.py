"""The supervisor's and organiser's screens at the sizes they are used at (issue 13): a
1366 x 768 laptop, a 1920 x 1080 desk screen and a 390 x 844 phone, in a real Chromium
set to fr-FR.

At 1366 and 1920 px every table fits the page: the page never scrolls sideways and no
table needs to scroll inside its own box. At 390 px the page still never scrolls
sideways: a table wider than the phone scrolls inside its own box (``.table-wrap``),
and the key parts of each screen are on the screen. The service level of each queue is
shown in its colour (green, amber, red) and said in words, in French.

Deterministic: every check waits for what it measures (``expect``), none for a time.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import ADMIN, AGENT_NAME, ORGANISER, SUPERVISOR, Hotline, sign_in

try:
    from playwright.async_api import Page, expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    Page = Any  # type: ignore[misc,assignment]
    expect = None

WIDE = [(1366, 768), (1920, 1080)]
PHONE = (390, 844)
SIZES = [*WIDE, PHONE]

# What a page measures of itself: its sideways scroll, and each shown table that is
# wider than the box it scrolls in (``fits``: none may be) or whose box does not scroll
# or sticks out of the page (``escapes``: none may, at any size).
MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const fits = [], escapes = [];
  for (const table of document.querySelectorAll("table")) {
    if (!table.getClientRects().length) continue;
    const name = table.id || table.closest("[id]").id;
    let box = table.parentElement;
    while (box && getComputedStyle(box).overflowX === "visible") box = box.parentElement;
    const room = box ? box.clientWidth : width;
    const wide = (box ? box.scrollWidth : table.scrollWidth) > room + 1;
    if (wide) fits.push(name);
    const edge = (box || table).getBoundingClientRect();
    if (edge.left < -1 || edge.right > width + 1 || (wide && !box)) escapes.push(name);
  }
  return {
    scroll: document.scrollingElement.scrollWidth,
    width,
    wide: fits,
    escapes,
    tables: document.querySelectorAll("table").length,
  };
}"""


@pytest.fixture(scope="module")
async def busy_line(browser_hotline: Hotline) -> dict[str, Any]:
    """The figures a live evening has, so the tables hold real widths: in the pledges
    queue a call answered (the demo volunteer is on it), one given up in the queue (a
    very short abandon) and one waiting; a blocked number. Returns the pledges queue."""
    hotline = browser_hotline
    queues = await hotline.get(f"/queues?campaign_id={hotline.campaign_id}")
    pledges: dict[str, Any] = next(q for q in queues if q["name"] == "pledges")
    agent_id = await hotline.agent_id(AGENT_NAME)
    await hotline.post(f"/agents/{agent_id}/login")
    await hotline.post(f"/agents/{agent_id}/ready")
    call_id = await hotline.incoming("busy-answered")
    await hotline.wait_for(f"/calls/{call_id}", "state", "offered")
    await hotline.telephony("seat.answered", "busy-answered")
    await hotline.wait_for(f"/calls/{call_id}", "state", "connected")
    gone = await hotline.incoming("busy-abandoned", caller="+33612345611")
    await hotline.wait_for(f"/calls/{gone}", "state", "queued")
    await hotline.telephony("call.hangup", "busy-abandoned")
    await hotline.wait_for(f"/calls/{gone}", "state", "abandoned")
    waiting = await hotline.incoming("busy-waiting", caller="+33612345622")
    await hotline.wait_for(f"/calls/{waiting}", "state", "queued")
    await _block_a_number(hotline)
    return pledges


async def _page(
    new_page: Any, hotline: Hotline, who: tuple[str, str], size: tuple[int, int]
) -> Page:
    page: Page = await new_page()
    await page.set_viewport_size({"width": size[0], "height": size[1]})
    await sign_in(page, hotline.base_url, *who)
    return page


async def _check_fit(page: Page, size: tuple[int, int], key_ids: list[str]) -> None:
    width = size[0]
    for key in key_ids:
        element = page.locator(f"#{key}")
        await expect(element).to_be_visible()
        # A table is on the screen when the box it scrolls in is.
        left, right = await element.evaluate(
            "(el) => { const r = (el.closest('.table-wrap') || el).getBoundingClientRect();"
            " return [r.left, r.right]; }"
        )
        assert left >= -1 and right <= width + 1, (key, left, right, width)
    got = await page.evaluate(MEASURE)
    assert got["width"] <= width, got
    assert got["scroll"] <= width, f"the page scrolls sideways at {size}: {got}"
    assert got["escapes"] == [], f"tables out of the page at {size}: {got}"
    if size != PHONE:
        assert got["wide"] == [], f"tables wider than their box at {size}: {got}"


async def _block_a_number(hotline: Hotline) -> None:
    """A blocked number, so the blocklist has a row (idempotent)."""
    await hotline.post(
        f"/campaigns/{hotline.campaign_id}/blocklist",
        {"number": "+33612345699", "duration": "24h", "reason": "canular répété"},
        status=201,
    )


async def _supervisor_ready(page: Page) -> None:
    """The supervisor screen with its figures, lists and sections filled in."""
    await expect(page.locator("#conn-status")).to_have_text("Connecté")
    await expect(page.locator("#queues-body tr")).to_have_count(3)
    await expect(page.locator("#agents-body tr").first).to_be_visible()
    await expect(page.locator("#blocklist tr").first).to_contain_text("+33612345699")
    await expect(page.locator("#shifts-supervisor")).to_be_visible()
    await expect(page.locator("#shifts-supervisor table").first).to_be_visible()
    await expect(page.locator("#planner-table")).to_be_attached()


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_the_supervisor_screen_fits(
    new_page: Any, browser_hotline: Hotline, busy_line: dict[str, Any], size: tuple[int, int]
) -> None:
    hotline = browser_hotline
    page = await _page(new_page, hotline, SUPERVISOR, size)
    await _supervisor_ready(page)
    # The live figures are in: an answered call, a very short abandon, a caller waiting.
    row = page.locator(f'#queues-body tr[data-queue-id="{busy_line["id"]}"]')
    await expect(row.locator('[data-metric="sl"]')).to_have_attribute("data-level", "ok")
    await expect(row.locator('[data-metric="abandoned-short"]')).to_have_text("1 très court")
    await expect(row.locator('[data-metric="waiting"]')).to_have_text("1")
    heading = page.get_by_role("heading", name="Numéros bloqués et appels malveillants")
    await expect(heading).to_be_visible()
    await _check_fit(
        page,
        size,
        ["queues", "agents-table", "blocklist-card", "block-form", "alerts-card", "surge-card",
         "broadcast-text", "feed-title", "shifts-supervisor", "planner"],
    )  # fmt: skip
    if size == PHONE:
        # A wide table scrolls in its own box: its last column is reached there.
        wrap = page.locator("#queues").locator("xpath=..")
        assert await wrap.evaluate("(el) => getComputedStyle(el).overflowX") == "auto"
        await wrap.evaluate("(el) => { el.scrollLeft = el.scrollWidth; }")
        last = page.locator("#queues thead th").last
        await expect(last).to_be_in_viewport()


async def _organiser_ready(page: Page, admin: bool) -> None:
    await expect(page.locator("#tables section").first).to_be_visible()
    await expect(page.locator("#receipts-table")).to_be_visible()
    await expect(page.locator("#planner-table")).to_be_attached()
    if admin:
        await expect(page.locator("#roster")).to_be_visible()
        await expect(page.locator("#roster-sheet-site option").first).to_be_attached()
        await expect(page.locator("#shifts-admin")).to_be_visible()
        await expect(page.locator("#shifts-table tbody tr").first).to_be_visible()
        await expect(page.locator("#hours")).to_be_visible()


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("who", ["admin", "organiser"])
async def test_the_organiser_screen_fits(
    new_page: Any, browser_hotline: Hotline, busy_line: Any, size: tuple[int, int], who: str
) -> None:
    page = await _page(new_page, browser_hotline, ADMIN if who == "admin" else ORGANISER, size)
    if "/organiser" not in page.url:
        await page.goto(f"{browser_hotline.base_url}/organiser")
    await _organiser_ready(page, admin=who == "admin")
    keys = ["filters", "overall", "tables", "receipts", "reconciliation", "planner"]
    if who == "admin":
        keys += ["roster", "shifts-admin", "hours"]
    await _check_fit(page, size, keys)


async def test_each_queue_s_service_level_has_its_colour_and_its_words(
    new_page: Any, browser_hotline: Hotline, busy_line: dict[str, Any]
) -> None:
    """Green at or above the queue's target, amber down to its alarm level, red below,
    each with the figure said in French; the thresholds are the queue's own. One call
    answered in the pledges queue (``busy_line``): 100 % or 0 %, by the threshold."""
    hotline = browser_hotline
    pledges = busy_line

    page = await _page(new_page, hotline, SUPERVISOR, WIDE[0])
    row = page.locator(f'#queues-body tr[data-queue-id="{pledges["id"]}"]')
    level = row.locator('[data-metric="sl"]')
    note = row.locator('[data-metric="sl-note"]')

    async def thresholds(seconds: int, target: int, amber: int) -> None:
        r = await hotline.http.patch(
            f"/queues/{pledges['id']}",
            json={
                "sl_threshold_seconds": seconds,
                "sl_target_percent": target,
                "sl_amber_percent": amber,
            },
            headers=await hotline.admin_headers(),
        )
        assert r.status_code == 200, r.text

    # Answered within an hour: 100 % against a target of 90 %.
    await thresholds(3600, 90, 60)
    await expect(level).to_have_attribute("data-level", "ok")
    await expect(level).to_have_text("\u2714 100 % (objectif 90 %)")
    await expect(note).to_have_text("100 % répondus en 3600 s : objectif atteint (90 %)")
    # Within no time at all: 0 %, above an alarm level of 0 % -> amber.
    await thresholds(0, 90, 0)
    await expect(level).to_have_attribute("data-level", "warn")
    await expect(note).to_have_text("0 % répondus en 0 s : sous l'objectif de 90 %")
    # The same 0 % under an alarm level of 50 % -> red.
    await thresholds(0, 90, 50)
    await expect(level).to_have_attribute("data-level", "bad")
    await expect(level).to_have_text("\u2716 0 % (objectif 90 %)")
    await expect(note).to_have_text("0 % répondus en 0 s : sous le seuil d'alerte de 50 %")
    # The colours differ (green, amber, red backgrounds), the words carry the meaning.
    colours = set()
    for target, amber in ((0, 0), (90, 0), (90, 50)):
        await thresholds(0, target, amber)
        want = "ok" if target == 0 else ("warn" if amber == 0 else "bad")
        await expect(level).to_have_attribute("data-level", want)
        colours.add(await level.evaluate("(el) => getComputedStyle(el).backgroundColor"))
    assert len(colours) == 3, colours

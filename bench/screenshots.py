"""Screenshots of the screens for the docs, in French: ``docs/screenshots/{name}-1366.png``
(a 1366 x 768 laptop) and ``{name}-390.png`` (a 390 x 844 phone) for the volunteer's
(``agent``), supervisor's, organiser's screens and the public tote board (``board``).

Starts a real server on a fresh demo database with simulated callers and
volunteers (and the built-in directory), signs in a volunteer (the demo login), a
supervisor and an organiser in the system Chromium (headless, French: ``fr-FR``),
lets calls flow for a while, and saves each page at both sizes: the whole page at
1366 px for the volunteer's and organiser's screens, what the screen shows otherwise.
Elements are found by their ids, never by their words, so the script does not depend
on the texts. Run: ``.venv/bin/python -m bench.screenshots`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.browser import (
    AGENT,
    ORGANISER,
    SUPERVISOR,
    chromium_problem,
    context_options,
    launch_chromium,
    running_hotline,
    sign_in,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "screenshots"
SCREENS = ("agent", "supervisor", "organiser", "board")
# Suffix -> viewport. The first is the size the pages are opened at.
SIZES = {
    "1366": {"width": 1366, "height": 768},
    "390": {"width": 390, "height": 844},
}
FULL_PAGE = {("agent", "1366"), ("organiser", "1366")}
BROADCAST = (
    "Grand appel aux dons à l'antenne à 20 h 30 : attendez-vous à une vague d'appels. "
    "Merci à toutes et à tous !"
)


async def _settled(page: Any) -> None:
    """Fonts and layout done after a resize (the charts redraw on the next frames)."""
    await page.evaluate("document.fonts.ready.then(() => null)")
    await page.evaluate(
        "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )
    await page.wait_for_timeout(700)  # Chart.js's resize animation


async def shoot(page: Any, out: Path, name: str) -> list[Path]:
    """``{name}-{size}.png`` at every size; the page is left at the first size."""
    saved = []
    for suffix, viewport in SIZES.items():
        await page.set_viewport_size(viewport)
        await _settled(page)
        path = out / f"{name}-{suffix}.png"
        await page.screenshot(path=str(path), full_page=(name, suffix) in FULL_PAGE)
        saved.append(path)
    await page.set_viewport_size(next(iter(SIZES.values())))
    return saved


async def _new_page(browser: Any) -> Any:
    context = await browser.new_context(**context_options(viewport=next(iter(SIZES.values()))))
    context.set_default_timeout(30_000)
    return await context.new_page()


async def _take_a_call_with_a_pop(agent: Any, expect: Any) -> None:
    """The volunteer takes calls (auto-answered) until one comes from a number the
    directory lists, so the picture shows a screen pop and a pre-filled form."""
    await agent.locator("#ready-btn").click()
    badge = agent.locator("#state-badge")
    for _attempt in range(8):
        await expect(badge).to_have_attribute("data-state", "on_call", timeout=90_000)
        details = agent.locator("#caller-details")
        # The pop arrives a moment after the call (its note, with the look-up's status).
        note = details.locator(".pop-note")
        with contextlib.suppress(AssertionError):
            await expect(note).to_be_visible(timeout=10_000)
            if await note.get_attribute("data-status") == "found":
                return
        await agent.locator("#hangup-btn").click()
        await expect(badge).to_have_attribute("data-state", "wrap_up")
        await agent.locator('#dispositions input[value="no_pledge"]').check()
        await agent.locator("#end-wrapup-btn").click()
        await expect(badge).not_to_have_attribute("data-state", "wrap_up")


# Pledges saved through the API (as the volunteers' form saves them), so the
# organiser's totals and the board show figures: (first name, last name, postcode,
# amount in cents).
PLEDGES = [
    ("Marie", "Dupont", "75004", 5000),
    ("Jean", "Martin", "69003", 2500),
    ("Chloé", "Bernard", "13001", 10000),
    ("Louis", "Petit", "33000", 3000),
    ("Inès", "Robert", "59000", 1500),
    ("Hugo", "Richard", "44000", 7500),
]


async def _pledges(hotline: Any) -> None:
    headers = await hotline.admin_headers()
    for first, last, postcode, amount in PLEDGES:
        r = await hotline.http.post(
            "/pledges",
            json={
                "campaign_id": hotline.campaign_id,
                "first_name": first,
                "last_name": last,
                "postcode": postcode,
                "email": f"{first.lower()}.{last.lower()}@example.org",
                "amount_minor": amount,
            },
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        r.raise_for_status()


async def take(out: Path, warmup: float) -> list[Path]:
    from playwright.async_api import async_playwright, expect

    settings = {
        "simulate": True,
        "sim_seed": 7,
        "sim_rate_per_minute": 50,
        "sim_talk_seconds": 40,
        "sim_patience_seconds": 90,
        "sim_spike_every_seconds": 0,
    }
    saved: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="pledgeline-shots-") as tmp:
        async with (
            running_hotline(Path(tmp), settings=settings) as hotline,
            async_playwright() as pw,
        ):
            # The browser's own widgets (date pickers) in French too.
            browser = await launch_chromium(pw, ("--lang=fr-FR",))
            try:
                boss = await _new_page(browser)
                await sign_in(boss, hotline.base_url, *SUPERVISOR)
                await expect(boss.locator("#conn-status")).to_have_attribute("data-conn", "open")
                agent = await _new_page(browser)
                await sign_in(agent, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
                await expect(agent.locator("#conn-status")).to_have_attribute("data-conn", "open")

                # Let the simulated callers and volunteers fill the figures.
                started = time.monotonic()
                await asyncio.sleep(warmup)
                await boss.locator("#broadcast-text").fill(BROADCAST)
                await boss.locator("#broadcast-btn").click()
                await expect(boss.locator("#broadcast-status")).not_to_be_empty()
                await _take_a_call_with_a_pop(agent, expect)
                # The whole page: caller details, the pre-filled form and the script.
                saved += await shoot(agent, out, "agent")
                await expect(boss.locator("#queues-body tr").first).to_be_visible()
                saved += await shoot(boss, out, "supervisor")

                await _pledges(hotline)
                organiser = await _new_page(browser)
                await sign_in(organiser, hotline.base_url, *ORGANISER)
                await expect(organiser.locator("body")).to_have_attribute("data-loaded", "true")
                saved += await shoot(organiser, out, "organiser")
                board = await organiser.context.new_page()
                await board.goto(f"{hotline.base_url}/board?campaign={hotline.campaign_id}")
                total = board.locator("#board-total")
                await expect(total).to_have_attribute("data-minor", re.compile(r"^\d+$"))
                saved += await shoot(board, out, "board")
                print(
                    f"saved {len(saved)} PNGs in {out} "
                    f"after {time.monotonic() - started:.0f} s of simulated traffic"
                )
            finally:
                await browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    parser.add_argument(
        "--warmup", type=float, default=20.0, help="seconds of simulated traffic first"
    )
    args = parser.parse_args(argv)
    problem = chromium_problem()
    if problem is not None:
        print(f"cannot take screenshots: {problem}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(take(args.out, args.warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())

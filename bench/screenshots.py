"""Screenshots of the screens for the docs: ``docs/screenshots/{agent,supervisor,
organiser,board}.png``.

Starts a real server on a fresh demo database with simulated callers and
volunteers (and the built-in directory), signs in a volunteer (the demo login), a
supervisor and an organiser in the system Chromium (headless, 1280x800), lets
calls flow for a while, and saves the pages, plus the public tote board.
Run: ``.venv/bin/python -m bench.screenshots`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.browser import (
    AGENT,
    ORGANISER,
    SUPERVISOR,
    VIEWPORT,
    chromium_problem,
    launch_chromium,
    running_hotline,
    sign_in,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "screenshots"


async def take(out: Path, warmup: float) -> None:
    from playwright.async_api import async_playwright, expect

    settings = {
        "simulate": True,
        "sim_seed": 7,
        "sim_rate_per_minute": 50,
        "sim_talk_seconds": 40,
        "sim_patience_seconds": 90,
        "sim_spike_every_seconds": 0,
    }
    with tempfile.TemporaryDirectory(prefix="pledgeline-shots-") as tmp:
        async with (
            running_hotline(Path(tmp), settings=settings) as hotline,
            async_playwright() as pw,
        ):
            browser = await launch_chromium(pw)
            try:
                boss_ctx = await browser.new_context(viewport=VIEWPORT)
                boss = await boss_ctx.new_page()
                await sign_in(boss, hotline.base_url, *SUPERVISOR)
                agent_ctx = await browser.new_context(viewport=VIEWPORT)
                agent = await agent_ctx.new_page()
                await sign_in(agent, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
                await expect(agent.locator("#conn-status")).to_have_text("Connected")

                # Let the simulated callers and volunteers fill the figures.
                started = time.monotonic()
                await asyncio.sleep(warmup)
                await boss.get_by_label("Message", exact=True).fill(
                    "Big appeal on air at 20:30: expect a rush of calls. Thank you all!"
                )
                await boss.get_by_role("button", name="Send to volunteers").click()
                await expect(boss.locator("#broadcast-status")).to_contain_text("Sent")

                # The volunteer takes calls (auto-answered) until one comes from a number
                # the directory lists, so the picture shows a screen pop and a pre-filled form.
                await agent.get_by_role("button", name="Ready").click()
                for _attempt in range(8):
                    badge = agent.locator("#state-badge")
                    await expect(badge).to_have_text("On call", timeout=60_000)
                    await asyncio.sleep(2)
                    status = await agent.locator("#caller-details").get_attribute("data-status")
                    if status == "found":
                        break
                    await agent.get_by_role("button", name="Hang up").click()
                    await agent.get_by_role("radio", name="No pledge", exact=True).check()
                    await agent.get_by_role("button", name="End wrap-up").click()
                await asyncio.sleep(2)
                # The whole page: caller details, the pre-filled form and the script.
                await agent.screenshot(path=str(out / "agent.png"), full_page=True)
                await boss.screenshot(path=str(out / "supervisor.png"))

                org_ctx = await browser.new_context(viewport=VIEWPORT)
                organiser = await org_ctx.new_page()
                await sign_in(organiser, hotline.base_url, *ORGANISER)
                await organiser.goto(f"{hotline.base_url}/organiser")
                await asyncio.sleep(3)  # totals loaded, charts drawn
                await organiser.screenshot(path=str(out / "organiser.png"), full_page=True)
                board = await org_ctx.new_page()
                await board.goto(f"{hotline.base_url}/board?campaign={hotline.campaign_id}")
                await asyncio.sleep(2)
                await board.screenshot(path=str(out / "board.png"))
                print(
                    f"saved agent, supervisor, organiser and board PNGs in {out} "
                    f"after {time.monotonic() - started:.0f} s of simulated traffic"
                )
            finally:
                await browser.close()


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

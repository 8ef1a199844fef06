"""Screenshots of the live screens for the docs: ``docs/screenshots/{agent,supervisor}.png``.

Starts a real server on a fresh demo database with simulated callers and
volunteers, signs in a volunteer (the demo login) and a supervisor in the
system Chromium (headless, 1280x800), lets calls flow for a while, and saves
both pages. Run: ``.venv/bin/python -m bench.screenshots`` (``--help`` for options).
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

                # The volunteer takes a call (auto-answered) and is on it for a few seconds.
                await agent.get_by_role("button", name="Ready").click()
                await expect(agent.locator("#state-badge")).to_have_text("On call", timeout=60_000)
                await asyncio.sleep(4)
                await agent.screenshot(path=str(out / "agent.png"))
                await boss.screenshot(path=str(out / "supervisor.png"))
                print(
                    f"saved {out / 'agent.png'} and {out / 'supervisor.png'} "
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

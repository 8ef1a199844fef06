"""The staffing planner on the organiser and supervisor screens, in a real browser
(system Chromium, headless, through Playwright; ``tests/browser_fixtures.py``).

The organiser imports a rundown file and sees the plan's table and its chart (inline
SVG drawn by planner.js under the pages' strict CSP), then downloads the CSV; a bad
file's problems are listed line by line. The supervisor types a rundown in and
sees the seats scheduled beside the seats needed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.planning import erlang
from tests.browser import ORGANISER, SUPERVISOR, Hotline, context_options, sign_in

try:
    from playwright.async_api import expect
except ImportError:  # the shared browser fixture skips (or fails with CI=true)
    expect = None

RUNDOWN = (
    "start,end,calls_per_15min,label,seats\n"
    "20:00,20:30,50,Opening,14\n"
    "20:30,20:45,150,Appeal 1,20\n"
    "20:45,21:00,10,,6\n"
)


@pytest.fixture
async def hotline(browser_hotline: Hotline) -> Hotline:
    return browser_hotline


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(**context_options(accept_downloads=True))
    context.set_default_timeout(20_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def test_organiser_imports_a_rundown_and_sees_the_plan(hotline: Hotline, page: Any) -> None:
    assert expect is not None
    await sign_in(page, hotline.base_url, *ORGANISER)
    planner = page.locator("#planner")
    await expect(planner).to_have_attribute("data-ready", "true")
    await page.get_by_label("Secondes de conversation").fill("150")
    await page.get_by_label("Secondes de post-appel").fill("30")
    await page.get_by_label("Fichier du conducteur (CSV)").set_input_files(
        files=[{"name": "rundown.csv", "mimeType": "text/csv", "buffer": RUNDOWN.encode()}]
    )
    await expect(planner).to_have_attribute("data-planned", "true")
    rows = page.locator("#planner-table tbody tr")
    await expect(rows).to_have_count(4)
    first = rows.nth(0)
    await expect(first.locator('[data-col="interval"]')).to_have_text("20:00\u201320:15")
    await expect(first.locator('[data-col="needed"]')).to_have_text("14")
    await expect(first.locator('[data-col="scheduled"]')).to_have_text("14")
    appeal = rows.nth(2)
    needed = erlang.seats_needed(30, 180, target=0.8, threshold_seconds=20)
    await expect(appeal.locator('[data-col="needed"]')).to_have_text(str(needed))
    await expect(appeal.locator('[data-col="asa"]')).to_have_text("sans limite")
    await expect(appeal.locator('[data-col="gap"]')).to_have_text(f"{needed - 20} manquants")
    # The chart: one bar per interval, as tall as its seats needed; the scheduled seats.
    bars = page.locator("#planner-chart svg rect.planner-needed")
    await expect(bars).to_have_count(4)
    assert await bars.evaluate_all("bs => bs.map(b => Number(b.dataset.needed))") == [
        14,
        14,
        needed,
        erlang.seats_needed(10 / 900 * 180, 180, target=0.8, threshold_seconds=20),
    ]
    heights = await bars.evaluate_all("bs => bs.map(b => Number(b.getAttribute('height')))")
    assert heights[2] > heights[0] > heights[3] > 0
    marks = page.locator("#planner-chart svg .planner-scheduled-mark")
    assert await marks.evaluate_all("ms => ms.map(m => Number(m.dataset.scheduled))") == [
        14,
        14,
        20,
        6,
    ]
    await expect(page.locator("#planner-chart svg .planner-scheduled")).to_have_count(1)

    async with page.expect_download() as info:
        await page.get_by_role("button", name="Télécharger en CSV").click()
    download = await info.value
    assert download.suggested_filename == "staffing-plan.csv"
    body = await asyncio.to_thread(Path(await download.path()).read_bytes)
    lines = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    assert [(r["start"], r["seats_needed"], r["seats_scheduled"]) for r in lines][:2] == [
        ("20:00", "14", "14"),
        ("20:15", "14", "14"),
    ]

    # A bad file: nothing computed, the problems named by line.
    await page.get_by_label("Fichier du conducteur (CSV)").set_input_files(
        files=[
            {
                "name": "bad.csv",
                "mimeType": "text/csv",
                "buffer": b"start,end,calls_per_15min\n20:00,20:30,50\n20:05,20:30,x\n",
            }
        ]
    )
    problems = page.locator("#planner-problems li")
    await expect(problems).to_have_count(2)
    await expect(problems.nth(0)).to_contain_text("Ligne 3, start: pas sur un quart d'heure")
    await expect(page.locator("#planner-status")).to_contain_text("2 problèmes")
    assert not hotline.server_errors(), hotline.server_errors()


async def test_supervisor_types_a_rundown_in(hotline: Hotline, page: Any) -> None:
    assert expect is not None
    await sign_in(page, hotline.base_url, *SUPERVISOR, campaign_id=hotline.campaign_id)
    planner = page.locator("#planner")
    await expect(planner).to_have_attribute("data-ready", "true")
    await page.get_by_label("Conducteur (CSV, avec sa ligne d'en-tête)").fill(
        "start,end,calls_per_15min\n23:30,00:30,50\n"
    )
    await page.get_by_label("Secondes de conversation").fill("150")
    await page.get_by_label("Secondes de post-appel").fill("30")
    await page.get_by_label("Postes prévus").fill("13")
    await page.get_by_label("Attente moyenne maximale (s)").fill("5")
    await page.get_by_role("button", name="Calculer le plan").click()
    await expect(planner).to_have_attribute("data-planned", "true")
    rows = page.locator("#planner-table tbody tr")
    await expect(rows).to_have_count(4)
    await expect(rows.nth(2).locator('[data-col="interval"]')).to_have_text("00:00\u201300:15")
    # 10 erlangs: 14 seats for 80 % in 20 s, 15 for an average wait of 5 s at most.
    await expect(rows.nth(0).locator('[data-col="needed"]')).to_have_text("15")
    await expect(rows.nth(0).locator('[data-col="gap"]')).to_have_text("2 manquants")
    await expect(rows.nth(0).locator('[data-col="level"]')).to_have_text(re.compile(r"^79,6\s%$"))
    await expect(page.locator("#planner-chart svg rect.planner-needed")).to_have_count(4)
    await expect(page.locator("#planner-summary")).to_contain_text(
        "Pointe de 15 postes nécessaires"
    )
    assert not hotline.server_errors(), hotline.server_errors()

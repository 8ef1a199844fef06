"""Shift sign-up in a real browser (system Chromium, headless, through Playwright), on
one uvicorn process and a fresh demo-seeded SQLite file (``tests/browser_fixtures.py``;
the demo has shifts at Caen and Paris, and its volunteer sits at Caen).

The volunteer signs up to a Caen shift from their own page ("My shifts"); the
supervisor sees them on it, expected, on the supervisor screen; an admin sees the
sign-up counted on the organiser screen's shifts. Without ``/usr/bin/chromium`` the
module is skipped (it fails with ``CI=true``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser import ADMIN, AGENT, AGENT_NAME, SUPERVISOR, Hotline, sign_in

try:
    from playwright.async_api import expect
except ImportError:  # the shared browser fixture skips (or fails with CI=true)
    expect = None


@pytest.fixture
async def hotline(browser_hotline: Hotline) -> Hotline:
    return browser_hotline


async def test_a_volunteer_signs_up_and_the_supervisor_and_admin_see_it(
    hotline: Hotline, new_page: Any
) -> None:
    assert expect is not None
    sites = await hotline.get(f"/sites?campaign_id={hotline.campaign_id}")
    caen = next(s["id"] for s in sites if s["name"] == "Caen")
    paris = next(s["id"] for s in sites if s["name"] == "Paris")
    # In two hours, an hour long: on the supervisor's next-24-hours list, open to sign-ups.
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    body = {
        "campaign_id": hotline.campaign_id,
        "starts_at": start.isoformat(),
        "ends_at": (start + dt.timedelta(hours=1)).isoformat(),
        "seats": 2,
        "label": "Browser test",
    }
    shift = await hotline.post("/shifts", {**body, "site_id": caen}, status=201)
    elsewhere = await hotline.post("/shifts", {**body, "site_id": paris}, status=201)

    volunteer = await new_page()
    await sign_in(volunteer, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
    panel = volunteer.locator("#my-shifts")
    await expect(panel).to_be_visible()
    item = panel.locator(f'li[data-shift-id="{shift["id"]}"]')
    await expect(item).to_contain_text("Caen")
    await expect(item).to_contain_text("Browser test · 0/2")
    # Their own site's shifts only.
    await expect(panel.locator(f'li[data-shift-id="{elsewhere["id"]}"]')).to_have_count(0)
    await item.get_by_role("button", name="S'inscrire").click()
    await expect(panel.locator(".status-line")).to_contain_text("Vous êtes inscrit")
    await expect(item).to_contain_text("1/2")
    await expect(item.get_by_role("button", name="Se retirer")).to_be_visible()
    attendance = await hotline.get(f"/shifts/{shift['id']}/attendance")
    assert [(v["display_name"], v["source"]) for v in attendance["volunteers"]] == [
        (AGENT_NAME, "self")
    ]

    supervisor = await new_page()
    await sign_in(supervisor, hotline.base_url, *SUPERVISOR, campaign_id=hotline.campaign_id)
    await supervisor.goto(f"{hotline.base_url}/supervisor")
    block = supervisor.locator(f'#shifts-supervisor .shift-block[data-shift-id="{shift["id"]}"]')
    await expect(block).to_contain_text("1/2 inscrits")
    row = block.locator("tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(AGENT_NAME)
    await expect(row).to_have_attribute("data-status", "expected")
    await expect(block.locator(".shift-no-show")).to_contain_text("Absents : aucun")

    admin = await new_page()
    await sign_in(admin, hotline.base_url, *ADMIN)
    await admin.goto(f"{hotline.base_url}/organiser")
    shifts = admin.locator("#shifts-admin")
    await expect(shifts).to_be_visible()
    await expect(shifts.locator(f'tr[data-shift-id="{shift["id"]}"]')).to_contain_text("1/2")
    # The admin adds an evening at Paris, typed on Paris's clock: 20:00 to 00:00.
    tomorrow = (dt.datetime.now(ZoneInfo("Europe/Paris")) + dt.timedelta(days=1)).date()
    await admin.locator("#shift-site").select_option(label="Paris")
    await admin.locator("#shift-day").fill(tomorrow.isoformat())
    await admin.locator("#shift-start").fill("20:00")
    await admin.locator("#shift-end").fill("00:00")
    await admin.locator("#shift-seats").fill("3")
    await admin.locator("#shift-label").fill("Added here")
    await admin.locator("#shift-add-btn").click()
    await expect(admin.locator("#shifts-status")).to_contain_text("Créneau ajouté : Paris")
    added = [s for s in await hotline.get("/shifts") if s["label"] == "Added here"]
    evening = dt.datetime.combine(tomorrow, dt.time(20), ZoneInfo("Europe/Paris"))
    midnight = dt.datetime.combine(tomorrow + dt.timedelta(days=1), dt.time(0), evening.tzinfo)
    assert [(s["starts_local"], s["ends_local"], s["seats"]) for s in added] == [
        (evening.isoformat(), midnight.isoformat(), 3)
    ]
    await expect(shifts.locator(f'tr[data-shift-id="{added[0]["id"]}"]')).to_contain_text("0/3")

    # The volunteer withdraws; the supervisor's Refresh shows the shift empty.
    await item.get_by_role("button", name="Se retirer").click()
    await expect(item).to_contain_text("0/2")
    await supervisor.locator("#shifts-supervisor .shifts-refresh").click()
    await expect(block.locator("tbody tr")).to_have_count(0)
    assert hotline.server_errors() == []

"""Surge mode in a real browser: the supervisor's surge panel and the volunteer's page
banner with its "I'm coming" button.

One uvicorn process on a fresh SQLite file seeded with the demo campaign (its demo
volunteer on standby), the surge monitor looking every 0.3 s; the call comes in
through the signed telephony webhook. Waits are Playwright's ``expect``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import AGENT, AGENT_NAME, SUPERVISOR, Hotline, running_hotline, sign_in

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture says so: the tests skip, or fail with CI=true
    expect = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
async def hotline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hotline]:
    workdir: Path = tmp_path_factory.mktemp("browser-surge")
    async with running_hotline(workdir, settings={"surge_check_seconds": 0.3}) as running:
        yield running


async def test_surge_panel_and_page_banner(hotline: Hotline, new_page: Any) -> None:
    queues = await hotline.get(f"/queues?campaign_id={hotline.campaign_id}")
    pledges = next(q for q in queues if q["name"] == "pledges")
    boss = await new_page()
    await sign_in(boss, hotline.base_url, *SUPERVISOR)
    await expect(boss.locator("#conn-status")).to_have_text("Connecté")
    row = boss.locator(f'#surge-body tr[data-queue-id="{pledges["id"]}"]')
    await expect(row.locator(".surge-state")).to_have_text("normal")

    page = await new_page()
    await sign_in(page, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
    await expect(page.locator("#conn-status")).to_have_text("Connecté")

    r = await hotline.http.put(
        f"/queues/{pledges['id']}/surge",
        json={"enter_waiting": 1, "leave_waiting": 0},
        headers=await hotline.admin_headers(),
    )
    assert r.status_code == 200, r.text
    await hotline.incoming("web-surge-1")  # nobody is ready: the call waits

    banner = page.locator("#pages .banner.page")
    await expect(banner).to_contain_text(
        "Appel aux dons à l'antenne : des appels attendent, revenez s'il vous plaît"
    )
    await expect(row.locator(".surge-state")).to_contain_text("AFFLUX depuis")
    await expect(row.locator(".surge-state")).to_contain_text("appels en attente")
    you = boss.locator("#pages-body tr", has_text=AGENT_NAME)
    await expect(you).to_contain_text("pas encore de réponse")

    await banner.get_by_role("button", name="J'arrive").click()
    await expect(banner).to_contain_text("Merci")
    await expect(you).to_contain_text("arrive (")

    # By hand: a volunteer put on standby, then paged with the panel's button.
    await boss.locator("#surge-card summary").click()
    volunteer = boss.locator("#standby-body tr", has_text="Volunteer 05")
    await volunteer.get_by_role("button", name="Mettre d'astreinte").click()
    await expect(volunteer).to_contain_text("d'astreinte")
    await row.get_by_role("button", name="Appeler les bénévoles d'astreinte").click()
    await expect(boss.locator("#surge-status")).to_contain_text(
        "pledges : 1 bénévole(s) appelé(s), 1 appelé(s) récemment (délai de repos)."
    )
    await expect(boss.locator("#pages-body tr", has_text="Volunteer 05")).to_contain_text(
        "pas encore de réponse"
    )
    errors = hotline.server_errors()
    assert not errors, "the server logged errors:\n" + "\n---\n".join(errors)

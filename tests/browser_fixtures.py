"""Pytest fixtures shared by the browser test modules (``tests/test_browser*.py``).

``tests/conftest.py`` imports them, so every test module can ask for them.
``browser_hotline`` is one real server (``tests.browser.running_hotline``: uvicorn on a
fresh demo-seeded SQLite file, the built-in directory as its own process) for the
whole module; ``browser`` the system Chromium; ``new_page`` pages in contexts of
their own. Without ``/usr/bin/chromium`` the tests skip (they fail with ``CI=true``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    AGENT,
    Hotline,
    chromium_problem,
    context_options,
    launch_chromium,
    running_hotline,
    sign_in,
)

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # chromium_problem() says so: the tests skip, or fail with CI=true
    Page = async_playwright = expect = None  # type: ignore[assignment,misc]

IN_CI = os.environ.get("CI", "").lower() == "true"
# expect() waits for what it checks; on a loaded machine (two cores, several suites)
# a page can take more than Playwright's 5 s default to get there. A longer wait is
# not a slower test: expect returns as soon as the check holds.
if expect is not None:
    expect.set_options(timeout=15_000)
_problem = chromium_problem()


def need_chromium() -> None:
    if _problem is not None:
        if IN_CI:
            pytest.fail(f"browser tests cannot run: {_problem} (CI=true requires them)")
        pytest.skip(f"browser tests skipped: {_problem}")


@pytest.fixture(scope="module")
async def browser_hotline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hotline]:
    workdir: Path = tmp_path_factory.mktemp("browser")
    async with running_hotline(workdir) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    need_chromium()
    assert async_playwright is not None
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def new_page(browser: Any) -> AsyncIterator[Any]:
    """Pages in contexts of their own (separate cookies), closed after the test; in
    French (fr-FR) unless ``locale`` says otherwise."""
    contexts: list[Any] = []

    async def _new(init_script: str | None = None, locale: str | None = None) -> Page:
        options = context_options(locale) if locale else context_options()
        context = await browser.new_context(**options)
        context.set_default_timeout(20_000)
        contexts.append(context)
        if init_script:
            await context.add_init_script(init_script)
        page: Page = await context.new_page()
        return page

    yield _new
    for context in contexts:
        await context.close()


# --- steps the browser tests share ----------------------------------------------------


# How a call ended: the radio's label in English (the message id) -> its value.
DISPOSITIONS = {
    "Pledge": "pledge",
    "No pledge": "no_pledge",
    "Information only": "information",
    "Prank call": "prank",
    "Other": "other",
}


async def volunteer_ready(page: Page, hotline: Hotline) -> None:
    """Sign in as the demo volunteer and press Ready (the French screen)."""
    await sign_in(page, hotline.base_url, *AGENT, campaign_id=hotline.campaign_id)
    await expect(page.locator("#conn-status")).to_have_text("Connecté")
    await page.locator("#ready-btn").click()
    await expect(page.locator("#state-badge")).to_have_text("Prêt")


async def end_call(page: Page, disposition: str) -> None:
    """Hang up, choose how the call ended (its English label or its value), end the
    wrap-up: the volunteer is Ready again."""
    await page.locator("#hangup-btn").click()
    # In wrap-up first: the screen clears the choice as the wrap-up starts.
    await expect(page.locator("#state-badge")).to_have_attribute("data-state", "wrap_up")
    value = DISPOSITIONS.get(disposition, disposition)
    choice = page.locator(f'#dispositions input[name="disposition"][value="{value}"]')
    await choice.check()
    await expect(choice).to_be_checked()
    await page.locator("#end-wrapup-btn").click()
    await expect(page.locator("#state-badge")).to_have_text("Prêt")

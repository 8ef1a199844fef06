"""``GET /metrics``: the Prometheus exposition, who may read it, and that its figures
move with what happens (the app and the built-in directory as a real process)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

import httpx

from app.cti.directory_server import DirectoryProcess
from tests.conftest import Hotline, setup_campaign, wait_for

TOKEN = "scraper-token-0123456789"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition, or None."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        "^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def test_figures_follow_calls_and_look_ups(
    hotline_factory: Callable[..., Awaitable[Hotline]], directory: DirectoryProcess
) -> None:
    hotline = await hotline_factory(
        directory_url=directory.base_url, directory_budget_ms=5000, metrics_token=TOKEN
    )
    await setup_campaign(hotline, agents=2)
    for n, caller in enumerate(["01 23 45 67 89", "anonymous"]):
        r = await hotline.incoming(f"metrics-{n}", caller)
        assert r.status_code == 200, r.text

    async def looked_up() -> str | None:
        text = (await hotline.http.get("/metrics")).text
        return text if sample(text, "pledgeline_screen_pops_total", status="found") else None

    text = await wait_for(looked_up)
    assert sample(text, "pledgeline_directory_lookups_total", outcome="hit") == 1
    assert sample(text, "pledgeline_directory_lookups_total", outcome="timeout") == 0
    assert sample(text, "pledgeline_directory_breaker_open") == 0
    assert sample(text, "pledgeline_directory_latency_ms_count") == 1
    assert sample(text, "pledgeline_directory_latency_ms_bucket", le="+Inf") == 1
    campaign = re.search(
        r'pledgeline_queue_calls_waiting\{campaign="([^"]+)",queue="pledges"\}', text
    )
    assert campaign is not None
    assert (
        sample(text, "pledgeline_queue_calls_waiting", campaign=campaign[1], queue="pledges") == 2
    )
    assert sample(text, "pledgeline_agents", campaign=campaign[1], state="paused") == 2
    assert sample(text, "pledgeline_pledges", campaign=campaign[1]) is None  # none yet

    setup = await hotline.http.get("/campaigns")
    [campaign_id] = [c["id"] for c in setup.json() if c["name"] == campaign[1]]
    for amount in (2500, 10000):
        r = await hotline.http.post(
            "/pledges",
            json={
                "campaign_id": campaign_id,
                "last_name": "Curie",
                "email": "marie@example.org",
                "amount_minor": amount,
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 201, r.text
    text = (await hotline.http.get("/metrics")).text
    assert sample(text, "pledgeline_pledges", campaign=campaign[1]) == 2
    promised = {"campaign": campaign[1], "currency": "EUR", "kind": "promised"}
    assert sample(text, "pledgeline_pledged_minor", **promised) == 12500
    assert sample(text, "pledgeline_pledged_minor", **{**promised, "kind": "paid"}) == 0
    assert "# TYPE pledgeline_directory_latency_ms histogram" in text


async def test_only_admins_and_the_scraper_token(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await hotline_factory(metrics_token=TOKEN)
    admin = await hotline.http.get("/metrics")
    assert admin.status_code == 200
    assert admin.headers["content-type"].startswith("text/plain; version=0.0.4")
    # No directory configured: no look-up figures, the database gauges still.
    assert "pledgeline_directory_lookups_total" not in admin.text
    assert "# TYPE pledgeline_agents gauge" in admin.text

    transport = hotline.http._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
        wrong = await anonymous.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        scraper = await anonymous.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraper.status_code == 200
        assert scraper.text == admin.text

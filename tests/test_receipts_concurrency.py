"""Receipt numbers under concurrent issuing on PostgreSQL: two `pledgeline receipts
issue` processes and many batch requests at once, over two campaigns that share one
organisation (one sequence). Whatever interleaving the database chose, the numbers
are 1..N with no gap and no duplicate, and every pledge has exactly one receipt."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.conftest import Hotline, setup_campaign
from tests.procs import run_cli
from tests.receipt_helpers import paid_pledge, receipts_campaign

PLEDGES_PER_CAMPAIGN = 40
REQUESTS_PER_CAMPAIGN = 4


async def _cli_issue(database_url: str, campaign_id: int) -> tuple[int, str, str]:
    return await run_cli(database_url, "receipts", "issue", "--campaign-id", str(campaign_id))


@pytest.mark.pg_only
async def test_concurrent_batches_leave_no_gap_and_no_duplicate(hotline: Hotline) -> None:
    first = await receipts_campaign(hotline)
    organiser, organisation_id = first["organiser"], first["organisation"]["id"]
    number = f"+3380{uuid.uuid4().int % 10**7:07d}"
    second = await setup_campaign(hotline, agents=0, campaign={"dialled_numbers": [number]})
    r = await hotline.http.put(
        f"/receipts/campaigns/{second['campaign_id']}",
        json={"organisation_id": organisation_id},
        headers=organiser,
    )
    assert r.status_code == 200, r.text
    campaigns = [first["campaign_id"], second["campaign_id"]]
    for campaign_id in campaigns:
        for n in range(PLEDGES_PER_CAMPAIGN):
            await paid_pledge(hotline, campaign_id, organiser, amount_minor=1000 + n)

    async def request(campaign_id: int) -> dict[str, Any]:
        r = await hotline.http.post(
            "/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    url = hotline.settings.database_url
    processes = [asyncio.create_task(_cli_issue(url, c)) for c in campaigns]
    answers = await asyncio.gather(
        *(request(c) for c in campaigns for _ in range(REQUESTS_PER_CAMPAIGN))
    )
    finished = await asyncio.gather(*processes)

    total = PLEDGES_PER_CAMPAIGN * len(campaigns)
    by_cli = 0
    for returncode, out, err in finished:
        assert returncode == 0, err
        assert "100%" in err  # the progress bar (a line every 10 % off a terminal)
        by_cli += int(out.split(" receipts issued")[0])
    assert sum(a["issued"] for a in answers) + by_cli == total

    rows = await hotline.sql(
        "SELECT number, pledge_id, status, organisation_id FROM receipts ORDER BY number"
    )
    assert [row[0] for row in rows] == list(range(1, total + 1))
    assert len({row[1] for row in rows}) == total
    assert {(row[2], row[3]) for row in rows} == {("issued", organisation_id)}
    counter = await hotline.sql(
        "SELECT last_number FROM receipt_counters WHERE organisation_id = :o", o=organisation_id
    )
    assert counter == [(total,)]
    # And every receipt's printed number is the one in the answers and the CLI output.
    printed = sorted(n for a in answers for n in a["numbers"])
    for _, out, _ in finished:
        printed += [line.split()[0] for line in out.splitlines()[1:]]
    assert sorted(int(n.split("-")[1]) for n in printed) == list(range(1, total + 1))

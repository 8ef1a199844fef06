"""Each table of the organiser's totals as CSV and XLSX (app/pledges/totals_files.py,
``GET /pledges/totals.csv|xlsx``) over the real API, on both databases: the same
figures as ``GET /pledges/totals``, headers in the caller's language, names never a
formula, bad input refused."""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
import pytest

from tests.conftest import Hotline
from tests.pledge_helpers import key, pledge_body, pledge_setup

TABLES = ("by_slot", "by_hour", "by_queue", "by_agent", "by_partner", "by_departement")


async def _campaign_with_pledges(hotline: Hotline) -> dict[str, Any]:
    setup = await pledge_setup(hotline)
    # A name typed by a person, which a spreadsheet must not run.
    r = await hotline.http.patch(
        f"/agents/{setup['agent_id']}", json={"partner_org": '=HYPERLINK("x")'}
    )
    assert r.status_code == 200, r.text
    for amount, postcode in ((1000, "75002"), (3050, "20000")):
        r = await hotline.http.post(
            "/pledges",
            json=pledge_body(setup["call_id"], amount_minor=amount, postcode=postcode),
            headers={**setup["agent_headers"], **key()},
        )
        assert r.status_code == 201, r.text
    return setup


def _csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


@pytest.mark.parametrize("table", TABLES)
async def test_each_table_holds_the_pages_figures(hotline: Hotline, table: str) -> None:
    setup = await _campaign_with_pledges(hotline)
    campaign = setup["campaign_id"]
    figures = (await hotline.http.get("/pledges/totals", params={"campaign_id": campaign})).json()
    params = {"campaign_id": campaign, "table": table}

    r = await hotline.http.get(
        "/pledges/totals.csv", params=params, headers={"Accept-Language": "en"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].endswith('.csv"')
    assert r.content.endswith(b"\r\n")
    header, *rows = _csv_rows(r.content)
    assert header[1:] == ["pledges", "promised", "paid", "average", "paid_share", "currency"]
    assert [row[1] for row in rows] == [str(x["count"]) for x in figures[table]]
    assert sum(int(row[1]) for row in rows) == 2
    assert sorted(row[2] for row in rows) == sorted(
        f"{x['promised_minor'] // 100}.{x['promised_minor'] % 100:02d}" for x in figures[table]
    )

    r = await hotline.http.get("/pledges/totals.xlsx", params=params)
    assert r.status_code == 200, r.text
    sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).active
    cells = [list(row) for row in sheet.iter_rows(values_only=True)]
    # French headers by default; amounts are numbers in the sheet.
    assert list(cells[0][1:4]) == ["promesses", "promis", "payé"]
    assert sum(row[1] for row in cells[1:]) == 2
    assert sorted(float(row[2]) for row in cells[1:]) == sorted(
        x["promised_minor"] / 100 for x in figures[table]
    )


async def test_names_are_never_formulas(hotline: Hotline) -> None:
    setup = await _campaign_with_pledges(hotline)
    r = await hotline.http.get(
        "/pledges/totals.csv", params={"campaign_id": setup["campaign_id"], "table": "by_partner"}
    )
    _, row = _csv_rows(r.content)
    assert row[0] == '\'=HYPERLINK("x")'


async def test_bad_requests_are_refused(hotline: Hotline) -> None:
    setup = await _campaign_with_pledges(hotline)
    campaign = setup["campaign_id"]
    r = await hotline.http.get("/pledges/totals.csv", params={"campaign_id": campaign})
    assert (r.status_code, r.json()["field"]) == (422, "table")
    r = await hotline.http.get(
        "/pledges/totals.csv", params={"campaign_id": campaign, "table": "by_donor"}
    )
    assert (r.status_code, r.json()["field"]) == (422, "table")
    r = await hotline.http.get(
        "/pledges/totals.xlsx",
        params={"campaign_id": campaign, "table": "by_slot", "since": "2026-01-01T00:00:00"},
    )
    assert (r.status_code, r.json()["field"]) == (422, "since")
    r = await hotline.http.get(
        "/pledges/totals.csv", params={"campaign_id": campaign + 999, "table": "by_slot"}
    )
    assert r.status_code == 404, r.text

"""Pledge exports (CSV and XLSX) over HTTP and from ``pledgeline export``, on both databases.

Pledges are written straight into the real database (bulk inserts of the real
table) when a test needs values the API would not take at that volume or with
chosen times; the card-guard test goes through the real pledge API. Every export
is read back with a real reader: Python's ``csv`` module and openpyxl.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import itertools
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any, get_args

import httpx
import openpyxl
import pytest
from sqlalchemy import insert

from app.auth.service import Role, create_user
from app.auth.service import login as auth_login
from app.pledges import exports
from app.pledges import service as pledge_service
from app.pledges.export_formats import (
    CELL_SEPARATORS,
    DIALECTS,
    FORMULA_STARTS,
    LINE_SEPARATOR,
    RECORD_SEPARATOR,
    crlf_records,
    csv_from_block,
    csv_from_lines,
    neutralise,
    neutralise_after_separators,
    neutralise_csv_after_separators,
    sheet_name_for,
)
from app.pledges.models import CancelReason, Channel, Frequency, Pledge, PledgeStatus
from app.pledges.schemas import CancelReasonIn, ChannelIn, FrequencyIn
from tests.conftest import Hotline, setup_campaign
from tests.procs import ROOT, run_cli

T0 = dt.datetime(2026, 11, 23, 18, 0, tzinfo=dt.UTC)
HEADER = [c.header for c in exports.COLUMNS]


@pytest.fixture(autouse=True)
def _english_headers(request: pytest.FixtureRequest) -> None:
    """These tests read the columns by their English names (the French headers,
    the default, are tests/test_i18n_api.py's)."""
    if "hotline" in request.fixturenames:
        request.getfixturevalue("hotline").http.headers["Accept-Language"] = "en"


# Each text a spreadsheet would run as a formula, one per dangerous first character.
FORMULAS = {
    "=": '=HYPERLINK("http://evil.example","x")',
    "+": "+1+1",
    "-": "-2+3",
    "@": "@SUM(A1:A2)",
    "\t": "\t=1+1",
    "\r": "\r=1+1",
    "|": "|calc",
    "%": "%0A=1",
    # Full-width forms, which some spreadsheets read as the ASCII ones.
    "\uff1d": "\uff1dSUM(1,2)",
    "\uff0b": "\uff0b1",
    "\uff0d": "\uff0d1",
    "\uff20": "\uff20SUM(A1)",
}
assert set(FORMULAS) == set(FORMULA_STARTS)

# Texts with a formula after a separator inside them, and what the export writes.
INNER_FORMULAS = {
    'Dupont;=HYPERLINK("http://evil.example","x")': 'Dupont;\'=HYPERLINK("http://evil.example","x")',
    "12, rue;+1+1": "12, rue;'+1+1",
    "a,-2+3": "a,'-2+3",
    "tab\t@SUM(A1:A2)": "tab\t'@SUM(A1:A2)",
    "line one\n=1+1": "line one\n'=1+1",
    "cr\r|calc": "cr\r'|calc",
    "Martin;\uff1d1+1": "Martin;'\uff1d1+1",
    "=a;=b": "'=a;'=b",
    "a;;=b": "a;;'=b",
    "x\t\t=1": "x\t'\t'=1",
}
SEPARATORS = re.compile("[;,\t\r\n]")


def _no_piece_starts_a_formula(cell: str) -> bool:
    """What a spreadsheet splitting on any separator (a French Excel on ';') would see."""
    return not any(piece.startswith(FORMULA_STARTS) for piece in SEPARATORS.split(cell))


async def _organiser(hotline: Hotline, username: str = "org") -> dict[str, str]:
    async with hotline.db.unit_of_work() as uow:
        await create_user(
            uow, username=username, display_name="Org", role=Role.ORGANISER, secret="organiser-x"
        )
    async with hotline.db.unit_of_work() as uow:
        result = await auth_login(
            uow,
            username=username,
            secret="organiser-x",
            campaign_id=None,
            client="tests",
            kind="bearer",
            hours=1,
            max_failures=5,
        )
    assert result is not None
    return {"Authorization": f"Bearer {result[0]}"}


def _pledge(campaign_id: int, n: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "reference": f"T{uuid.uuid4().hex[:12].upper()}",
        "campaign_id": campaign_id,
        "first_name": f"Donor{n}",
        "last_name": "Martin",
        "postcode": "75011",
        "city": "Paris",
        "departement": "75",
        "email": f"donor{n}@example.org",
        "phone": "+33612345678",
        "amount_minor": 1000 + n,
        "currency": "EUR",
        "status": "promised",
        "created_at": T0 + dt.timedelta(seconds=n),
        "updated_at": T0 + dt.timedelta(seconds=n),
        **values,
    }
    return row


async def _insert(hotline: Hotline, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 1000):
        async with hotline.db.unit_of_work() as uow:
            await uow.session.execute(insert(Pledge), rows[start : start + 1000])


def _csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def _xlsx_rows(body: bytes) -> list[tuple[Any, ...]]:
    book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    try:
        return [tuple(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()


def _by_header(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


# --- unit: the neutralisation rule ---------------------------------------------------------


def test_neutralise_prefixes_only_the_dangerous_first_characters() -> None:
    for text in FORMULAS.values():
        assert neutralise(text).startswith("'" + text[0]), text
        assert _no_piece_starts_a_formula(neutralise(text)), text
    assert neutralise("\t=1+1") == "'\t'=1+1"  # the tab is a separator as well
    for text in (
        "Jean-Pierre",
        "Marie=Anne",
        "2 rue de la Paix",
        "O'Neil",
        "",
        "'=already",
        "12, rue Jean-Jaurès",
        "a; =b",  # a space first: a spreadsheet reads text
        "Paris;Lyon",
    ):
        assert neutralise(text) == text


def test_neutralise_puts_an_apostrophe_after_each_separator_before_a_formula() -> None:
    for text, expected in INNER_FORMULAS.items():
        assert neutralise(text) == expected, text
        assert neutralise(expected) == expected  # once is enough
        assert _no_piece_starts_a_formula(expected), expected


def test_the_pass_over_csv_bytes_agrees_with_the_cell_rule() -> None:
    # Every text of up to three characters from separators, formula starts and others:
    # the fast pass over encoded bytes (with its pre-check) gives the cell rule's text.
    alphabet = [*CELL_SEPARATORS, *FORMULA_STARTS, "a", "'", '"', " ", "é", "\uff21"]
    for size in (1, 2, 3):
        for chars in itertools.product(alphabet, repeat=size):
            text = "".join(chars)
            got = neutralise_csv_after_separators(text.encode()).decode()
            assert got == neutralise_after_separators(text), repr(text)


# --- HTTP: CSV ----------------------------------------------------------------------------


async def test_csv_export_reads_back_exactly(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    cid, queue_id, agent_id = setup["campaign_id"], setup["queue_id"], setup["agent_ids"][0]
    tricky = [
        _pledge(cid, 1, first_name='Anne, "la Grande"', note="line one\r\nline two"),
        _pledge(cid, 2, last_name="Ø Lefèvre — café", amount_minor=5, currency="EUR"),
        _pledge(cid, 3, amount_minor=1234, paid_minor=1234, status="paid", queue_id=queue_id),
        _pledge(cid, 4, agent_id=agent_id, time_slot="Prime time", currency="JPY"),
    ]
    formulas = [
        _pledge(cid, 10 + i, first_name=text, city=text, note=text)
        for i, text in enumerate([*FORMULAS.values(), *INNER_FORMULAS])
    ]
    await _insert(hotline, tricky + formulas)
    org = await _organiser(hotline)

    r = await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}", headers=org)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(
        rf'attachment; filename="pledges-campaign-{cid}-\d{{8}}T\d{{4}}Z\.csv"',
        r.headers["content-disposition"],
    )
    assert not r.content.startswith(b"\xef\xbb\xbf")  # no BOM unless asked
    assert b"\r\n" in r.content and r.content.endswith(b"\r\n")  # RFC 4180 line ends

    rows = _csv_rows(r.content)
    assert rows[0] == HEADER
    assert all(len(row) == len(HEADER) for row in rows), [len(row) for row in rows]
    by_ref = {row["reference"]: row for row in _by_header(rows)}
    assert len(by_ref) == len(tricky) + len(formulas)

    first = by_ref[tricky[0]["reference"]]
    assert first["first_name"] == 'Anne, "la Grande"'
    assert first["note"] == "line one\r\nline two"
    assert first["created_at_utc"] == "2026-11-23T18:00:01.000000Z"
    assert dt.datetime.fromisoformat(first["created_at_utc"]) == tricky[0]["created_at"]
    assert first["amount"] == "10.01" and first["amount_minor"] == "1001"
    assert first["currency"] == "EUR" and first["paid"] == "0.00"
    assert by_ref[tricky[1]["reference"]]["last_name"] == "Ø Lefèvre — café"
    assert by_ref[tricky[1]["reference"]]["amount"] == "0.05"
    # An empty last cell stays empty: the CR of the record's CRLF after its separator
    # is no formula (it once got an apostrophe, "'", in every such row).
    assert by_ref[tricky[1]["reference"]]["note"] == ""
    paid = by_ref[tricky[2]["reference"]]
    assert (paid["status"], paid["paid"], paid["paid_minor"]) == ("paid", "12.34", "1234")
    assert (paid["queue_id"], paid["queue"]) == (str(queue_id), "pledges")
    yen = by_ref[tricky[3]["reference"]]
    assert (yen["amount"], yen["currency"]) == ("1004", "JPY")  # no decimals in yen
    assert (yen["agent"], yen["time_slot"]) == ("Vol 0", "Prime time")

    for pledge, text in zip(formulas, [*FORMULAS.values(), *INNER_FORMULAS], strict=True):
        row = by_ref[pledge["reference"]]
        for column in ("first_name", "city", "note"):
            assert row[column] == neutralise(text), (column, text)
    # No cell of the file starts a formula, nor any piece of one split on a separator.
    for row in rows[1:]:
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row), row
        assert all(_no_piece_starts_a_formula(cell) for cell in row), row


async def test_csv_bom_is_optional(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    await _insert(hotline, [_pledge(cid, 1, first_name="Élodie")])
    r = await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}&bom=true")
    assert r.status_code == 200
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = _csv_rows(r.content)
    assert rows[0][0] == "pledge_id"  # the BOM is not glued to the first header
    assert _by_header(rows)[0]["first_name"] == "Élodie"


async def test_excel_fr_dialect_uses_semicolons_and_decimal_commas(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    pledges = [
        _pledge(cid, 1, first_name="Élodie", amount_minor=123456, paid_minor=50),
        _pledge(cid, 2, amount_minor=1004, currency="JPY"),
        _pledge(cid, 3, amount_minor=12345, currency="KWD", address="3, rue; bis"),
        *(
            _pledge(cid, 10 + i, note=text)
            for i, text in enumerate([*FORMULAS.values(), *INNER_FORMULAS])
        ),
    ]
    await _insert(hotline, pledges)
    fr = await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}&dialect=excel-fr")
    assert fr.status_code == 200, fr.text
    assert fr.content.startswith(b"\xef\xbb\xbf")  # French Excel reads UTF-8 after a BOM
    assert fr.content.endswith(b"\r\n")
    fr_rows = list(
        csv.reader(io.StringIO(fr.content.decode("utf-8-sig"), newline=""), delimiter=";")
    )
    assert fr_rows[0] == HEADER
    assert all(len(row) == len(HEADER) for row in fr_rows)
    by_ref = {row["reference"]: row for row in _by_header(fr_rows)}
    first = by_ref[pledges[0]["reference"]]
    assert (first["amount"], first["amount_minor"], first["paid"]) == ("1234,56", "123456", "0,50")
    assert first["first_name"] == "Élodie"
    assert by_ref[pledges[1]["reference"]]["amount"] == "1004"  # no decimals in yen
    kwd = by_ref[pledges[2]["reference"]]
    assert (kwd["amount"], kwd["address"]) == ("12,345", "3, rue; bis")
    for pledge, text in zip(pledges[3:], [*FORMULAS.values(), *INNER_FORMULAS], strict=True):
        assert by_ref[pledge["reference"]]["note"] == neutralise(text), text
    for row in fr_rows[1:]:
        assert all(_no_piece_starts_a_formula(cell) for cell in row), row

    # The same cells as the RFC 4180 file, but for the decimal mark of amounts.
    rfc = await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}")
    rfc_rows = _csv_rows(rfc.content)
    assert len(rfc_rows) == len(fr_rows)
    for rfc_row, fr_row in zip(rfc_rows, fr_rows, strict=True):
        for header, a, b in zip(HEADER, rfc_row, fr_row, strict=True):
            assert (a.replace(".", ",") if header in ("amount", "paid") else a) == b, header

    bad = await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}&dialect=excel-de")
    assert bad.status_code == 422 and bad.json()["field"] == "dialect"


# Cells that take each way through the SQLite lines (``csv_from_block``,
# ``csv_from_lines``): plain, quoted by the csv module, holding the line separator
# itself (read again cell by cell), or the record separator (the chunk read again a
# line a pledge).
AWKWARD_CELLS = [
    "plain",
    "12, rue du Port",
    'say "hi"',
    "two\r\nlines",
    "tab\there;=1",
    f"unit{LINE_SEPARATOR}separator",
    f"{LINE_SEPARATOR}=1+1",
    f"record{RECORD_SEPARATOR}separator",
    f"{RECORD_SEPARATOR}=1+1",
    "3; bis",
    "",
]


@pytest.mark.parametrize("dialect", ["rfc4180", "excel-fr"])
async def test_awkward_cells_read_back_exactly_among_plain_ones(
    hotline: Hotline, dialect: str
) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    pledges = [_pledge(cid, n) for n in range(40)]  # plain rows around the awkward ones
    for n, text in enumerate(AWKWARD_CELLS):
        pledges.insert(3 * n + 1, _pledge(cid, 100 + n, note=text, address=text))
    await _insert(hotline, pledges)
    org = await _organiser(hotline)
    r = await hotline.http.get(
        f"/pledges/export.csv?campaign_id={cid}&dialect={dialect}", headers=org
    )
    assert r.status_code == 200, r.text
    assert r.content.count(b"\r\n") == len(pledges) + 1 + 2  # records, and two cells
    delimiter = ";" if dialect == "excel-fr" else ","
    rows = list(
        csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline=""), delimiter=delimiter)
    )
    assert rows[0] == HEADER and all(len(row) == len(HEADER) for row in rows)
    got = _by_header(rows)
    assert [row["reference"] for row in got] == [p["reference"] for p in pledges]  # id order
    for pledge, row in zip(pledges, got, strict=True):
        for column in ("note", "address"):
            assert row[column] == neutralise(pledge.get(column, "") or ""), (column, pledge)
        assert row["email"] == pledge["email"] and row["phone"] == "'+33612345678"


def test_csv_from_lines_hands_back_the_lines_it_cannot_split() -> None:
    rfc = DIALECTS["rfc4180"]
    plain = LINE_SEPARATOR.join(["1", "a", "b"])
    assert csv_from_lines([plain, plain], 3, rfc) == [b"1,a,b\r\n1,a,b\r\n"]
    quoted = LINE_SEPARATOR.join(["2", "x,y", ""])
    split_wrong = LINE_SEPARATOR.join(["3", f"x{LINE_SEPARATOR}y", ""])
    assert csv_from_lines([plain, quoted, split_wrong, plain], 3, rfc) == [
        b"1,a,b\r\n",
        b'2,"x,y",\r\n',
        3,
        b"1,a,b\r\n",
    ]
    # A last empty cell: its separator and the record's CR are no formula.
    assert csv_from_lines([LINE_SEPARATOR.join(["4", "a", ""])], 3, rfc) == [b"4,a,\r\n"]


def test_csv_from_block_gives_the_bytes_of_csv_from_lines() -> None:
    def block(lines: list[str]) -> bytes:
        return RECORD_SEPARATOR.join(lines).encode()

    def line(*cells: str) -> str:
        return LINE_SEPARATOR.join(cells)

    # Cells as the database writes them: their first character already neutralised.
    plain = [line("1", "Zoë", "3;=bis", ""), line("2", "'\uff1d", "a\t@b", "x")]
    quoted = [*plain, line("3", "x,y", 'say "hi"', "two\nlines")]
    own_separator = [*plain, line("4", f"a{LINE_SEPARATOR}b", "")]
    for dialect in DIALECTS.values():
        for lines in (plain, quoted, own_separator, [line("5", "a;b", "c,d", "")]):
            # The plain chunk takes the passes over bytes, the others the lines' way:
            # the same bytes (apostrophes after separators included) either way.
            got = csv_from_block(block(lines), len(lines), 4, dialect)
            assert got == csv_from_lines(lines, 4, dialect), (dialect.name, lines)
    rfc = DIALECTS["rfc4180"]
    assert csv_from_block(block(plain), 2, 4, rfc) == [
        "1,Zoë,3;'=bis,\r\n2,'\uff1d,a\t'@b,x\r\n".encode()
    ]
    assert csv_from_block(b"", 0, 4, rfc) == []
    # A cell holding the record separator: the block does not split into its lines.
    assert (
        csv_from_block(block([*plain, line("6", f"a{RECORD_SEPARATOR}b", "", "")]), 3, 4, rfc)
        is None
    )


async def test_export_crosses_chunk_boundaries_in_id_order(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    other = (await setup_campaign(hotline, agents=0, campaign={"dialled_numbers": []}))[
        "campaign_id"
    ]
    # Past a chunk boundary of both ways of reading (rows; PostgreSQL's COPY).
    count = max(2 * exports.CHUNK_ROWS, exports.COPY_CHUNK_ROWS, exports.LINE_CHUNK_ROWS) + 1000
    rows = [_pledge(cid if n % 50 else other, n) for n in range(count)]
    await _insert(hotline, rows)
    expected = sorted(r["reference"] for r in rows if r["campaign_id"] == cid)

    r = await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}")
    assert r.status_code == 200
    assert r.headers["x-export-rows"] == str(len(expected))
    got = _by_header(_csv_rows(r.content))
    ids = [int(row["pledge_id"]) for row in got]
    assert ids == sorted(set(ids))  # id order, nothing twice
    assert sorted(row["reference"] for row in got) == expected

    x = await hotline.http.get(f"/pledges/export.xlsx?campaign_id={cid}")
    assert x.status_code == 200
    assert len(_xlsx_rows(x.content)) == len(expected) + 1


# --- HTTP: XLSX ---------------------------------------------------------------------------


async def test_xlsx_export_opens_in_openpyxl_with_the_same_cells(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=1))["campaign_id"]
    rows = [
        _pledge(cid, 1, first_name='Anne, "la Grande"', note="two\nlines", address=" 3 rue "),
        _pledge(cid, 2, first_name="Zoë\x01<b>&amp;</b>", amount_minor=123456),
        *(
            _pledge(cid, 10 + i, note=text)
            for i, text in enumerate([*FORMULAS.values(), *INNER_FORMULAS])
        ),
    ]
    await _insert(hotline, rows)
    r = await hotline.http.get(f"/pledges/export.xlsx?campaign_id={cid}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert r.headers["content-disposition"].endswith('.xlsx"')
    sheet = _xlsx_rows(r.content)
    assert list(sheet[0]) == HEADER
    by_ref = {row["reference"]: row for row in _by_header(sheet)}
    first = by_ref[rows[0]["reference"]]
    assert first["first_name"] == 'Anne, "la Grande"'
    assert first["note"] == "two\nlines"
    assert first["address"] == " 3 rue "  # outer spaces kept (xml:space="preserve")
    assert first["amount"] == pytest.approx(10.01) and first["amount_minor"] == 1001
    assert first["created_at_utc"] == "2026-11-23T18:00:01.000000Z"
    # A control character XML cannot hold is dropped; markup stays text.
    assert by_ref[rows[1]["reference"]]["first_name"] == "Zoë<b>&amp;</b>"
    assert by_ref[rows[1]["reference"]]["amount"] == pytest.approx(1234.56)
    for pledge, text in zip(rows[2:], [*FORMULAS.values(), *INNER_FORMULAS], strict=True):
        assert by_ref[pledge["reference"]]["note"] == neutralise(text), text
    # Strings are inline text, never formulas, and nothing in the sheet starts one.
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml

    # The CSV of the same pledges says the same thing, cell for cell (as text).
    c = await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}")
    csv_rows = _csv_rows(c.content)
    assert len(csv_rows) == len(sheet)
    for csv_row, xlsx_row in zip(csv_rows[1:], sheet[1:], strict=True):
        for header, text, value in zip(HEADER, csv_row, xlsx_row, strict=True):
            if header in ("amount", "paid"):
                assert float(text) == pytest.approx(value)
            elif header in ("note", "address", "first_name"):
                continue  # line ends, outer spaces and control characters differ by format
            else:
                assert text == ("" if value is None else str(value)), header


# --- filters and refusals ------------------------------------------------------------------


async def test_export_filters_by_time_status_slot_and_queue(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=0)
    cid, q1 = setup["campaign_id"], setup["queue_id"]
    q2 = (
        await hotline.http.post("/queues", json={"campaign_id": cid, "name": "specialists"})
    ).json()["id"]
    rows = [
        _pledge(cid, 0, status="promised", time_slot="Morning", queue_id=q1),
        _pledge(cid, 3600, status="paid", time_slot="Morning", queue_id=q2),
        _pledge(cid, 7200, status="cancelled", time_slot="Evening", queue_id=q1),
        _pledge(cid, 10800, status="link_sent", time_slot="Evening", queue_id=q2),
    ]
    await _insert(hotline, rows)
    names = {r["reference"]: n for n, r in enumerate(rows)}

    async def picked(**query: Any) -> list[int]:
        found: dict[str, list[int]] = {}
        for fmt in ("csv", "xlsx"):
            r = await hotline.http.get(
                f"/pledges/export.{fmt}", params={"campaign_id": cid, **query}
            )
            assert r.status_code == 200, (query, r.text)
            table = _csv_rows(r.content) if fmt == "csv" else _xlsx_rows(r.content)
            found[fmt] = sorted(names[row["reference"]] for row in _by_header(table))
        assert found["csv"] == found["xlsx"], query
        return found["csv"]

    assert await picked() == [0, 1, 2, 3]
    since = (T0 + dt.timedelta(hours=1)).isoformat()
    until = (T0 + dt.timedelta(hours=3)).isoformat()
    assert await picked(since=since) == [1, 2, 3]  # since is inclusive
    assert await picked(until=until) == [0, 1, 2]  # until is exclusive
    assert await picked(since=since, until=until) == [1, 2]
    paris = (T0 + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert await picked(since=paris.isoformat()) == [1, 2, 3]  # any zone, compared in UTC
    assert await picked(status="paid") == [1]
    assert await picked(status=["paid", "link_sent"]) == [1, 3]
    assert await picked(slot="Evening") == [2, 3]
    assert await picked(queue_id=q2) == [1, 3]
    assert await picked(queue_id=q1, slot="Evening", status="cancelled") == [2]
    assert await picked(slot="Night") == []


async def test_export_refusals_are_clear_json_errors(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    other = await hotline.http.post(
        "/campaigns", json={"name": "Other", "dialled_numbers": ["+33800000009"]}
    )
    foreign_queue = (
        await hotline.http.post(
            "/queues", json={"campaign_id": other.json()["id"], "name": "theirs"}
        )
    ).json()["id"]
    cases = {
        "status=lost": (422, "status"),
        "since=2026-11-23T20:00:00Z&until=2026-11-23T19:00:00Z": (422, "since"),
        "since=2026-11-23T20:00:00": (422, "since"),  # no zone: ambiguous
        "since=yesterday": (422, "since"),
        f"queue_id={foreign_queue}": (404, "queue_id"),
    }
    for fmt in ("csv", "xlsx"):
        for query, (status, field) in cases.items():
            r = await hotline.http.get(f"/pledges/export.{fmt}?campaign_id={cid}&{query}")
            assert r.status_code == status, (query, r.text)
            body = r.json()
            assert set(body) == {"code", "message", "field"} and body["field"] == field, body
        missing = await hotline.http.get(f"/pledges/export.{fmt}?campaign_id=999999")
        assert missing.status_code == 404 and missing.json()["field"] == "campaign_id"
        no_campaign = await hotline.http.get(f"/pledges/export.{fmt}")
        assert no_campaign.status_code == 422 and no_campaign.json()["field"] == "campaign_id"


async def test_only_organisers_and_admins_export(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    await _insert(hotline, [_pledge(cid, 1)])
    org = await _organiser(hotline)
    async with hotline.db.unit_of_work() as uow:
        await create_user(
            uow,
            username="sup",
            display_name="Sup",
            role=Role.SUPERVISOR,
            secret="supervisor-x",
            campaign_id=cid,
        )
    transport = hotline.http._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as anonymous:
        r = await anonymous.get(f"/pledges/export.csv?campaign_id={cid}")
        assert r.status_code == 401
        login = await anonymous.post(
            "/auth/login", json={"username": "sup", "secret": "supervisor-x", "mode": "bearer"}
        )
        sup = {"Authorization": f"Bearer {login.json()['token']}"}
        assert (
            await anonymous.get(f"/pledges/export.csv?campaign_id={cid}", headers=sup)
        ).status_code == 403
        ok = await anonymous.get(f"/pledges/export.xlsx?campaign_id={cid}", headers=org)
        assert ok.status_code == 200


async def test_an_export_is_the_set_present_when_it_started(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    await _insert(hotline, [_pledge(cid, n) for n in range(25)])
    export = await exports.prepare(hotline.db, exports.ExportFilter(campaign_id=cid))
    assert export.total == 25
    seen: list[int] = []
    async for chunk in export.chunks(hotline.db, chunk_rows=10):
        seen.extend(row[0] for row in chunk)  # pledge_id comes first
        # Pledges arriving while the export runs belong to the next one.
        await _insert(hotline, [_pledge(cid, 100 + len(seen))])
    assert len(seen) == 25 and seen == sorted(seen)


# --- the columns the app writes itself --------------------------------------------------------

# Written by the app from closed sets, so exported without a formula test (the "code"
# columns, ``export_sql.code_cell``): what each can hold is below, and no way in
# takes a formula there (the next test).
CODE_COLUMNS = {
    "reference",
    "status",
    "cancel_reason",
    "currency",
    "frequency",
    "channel",
    "departement",
    "country",
}


def test_the_code_columns_closed_sets_start_no_formula() -> None:
    assert {c.header for c in exports.COLUMNS if c.kind == "code"} == CODE_COLUMNS
    words = [
        *PledgeStatus,
        *CancelReason,
        *Frequency,
        *Channel,
        *get_args(FrequencyIn),
        *get_args(ChannelIn),
        *get_args(CancelReasonIn),
    ]
    assert words and not any(str(word).startswith(FORMULA_STARTS) for word in words)
    assert not set(pledge_service.REFERENCE_ALPHABET) & set(FORMULA_STARTS)
    for _ in range(200):
        assert re.fullmatch(r"[A-Z2-9]{3}-[A-Z2-9]{3}", pledge_service.new_reference())
    # The département comes from the postcode alone: digits, or 2A/2B for Corsica.
    found = {pledge_service.departement(f"{n:05d}") for n in range(100_000)}
    assert None in found and "2A" in found and "974" in found
    assert all(re.fullmatch(r"[0-9]{2,3}|2[AB]", d) for d in found if d is not None)


async def test_code_columns_cannot_hold_a_formula(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]

    async def save(**body: Any) -> httpx.Response:
        return await hotline.http.post(
            "/pledges",
            json={"campaign_id": cid, "amount_minor": 2500, "last_name": "Roux", **body},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )

    saved = await save(email="d@example.org", postcode="75011")
    assert saved.status_code == 201, saved.text
    reference = saved.json()["reference"]
    # Each formula start, and short ones a two- or three-letter field would take.
    for text in [*FORMULAS.values(), "=A", "+1", "-1", "@A", "|A", "%A", "=AB", "\uff1dA"]:
        for name in CODE_COLUMNS:
            r = await save(email="d@example.org", **{name: text})
            assert r.status_code == 422, ("create", name, text, r.text)
            r = await hotline.http.patch(f"/pledges/{reference}", json={name: text})
            assert r.status_code == 422, ("correct", name, text, r.text)
        r = await hotline.http.post(f"/pledges/{reference}/cancel", json={"reason": text})
        assert r.status_code == 422, ("cancel", text, r.text)
        # The currency of the pledges is their campaign's.
        r = await hotline.http.post(
            "/campaigns", json={"name": f"C {uuid.uuid4().hex[:6]}", "currency": text}
        )
        assert r.status_code == 422, ("campaign", text, r.text)
        r = await hotline.http.patch(f"/campaigns/{cid}", json={"currency": text})
        assert r.status_code == 422, ("campaign change", text, r.text)
    r = await hotline.http.post(f"/pledges/{reference}/cancel", json={"reason": "donor_request"})
    assert r.status_code == 200, r.text

    body = (await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}")).content
    [row] = _by_header(_csv_rows(body))
    assert {name: row[name] for name in CODE_COLUMNS} == {
        "reference": reference,
        "status": "cancelled",
        "cancel_reason": "donor_request",
        "currency": "EUR",
        "frequency": "one_off",
        "channel": "web_link",
        "departement": "75",
        "country": "FR",
    }


# --- the command line -----------------------------------------------------------------------


async def _cli(database_url: str, *args: str) -> tuple[int, str, str]:
    return await run_cli(database_url, "--lang", "en", "export", *args)


async def test_cli_export_writes_both_formats_with_progress(
    hotline: Hotline, database_url: str, tmp_path: Path
) -> None:
    setup = await setup_campaign(hotline, agents=0)
    cid = setup["campaign_id"]
    count = exports.CHUNK_ROWS + 7
    await _insert(
        hotline,
        [
            _pledge(cid, n, status="paid" if n % 2 else "promised", note="=1+1")
            for n in range(count)
        ],
    )

    out = tmp_path / "pledges.csv"
    code, stdout, stderr = await _cli(
        database_url, "--campaign-id", str(cid), "--format", "csv", "--out", str(out), "--bom"
    )
    assert code == 0, stderr
    assert f"{count} pledges written" in stdout
    assert "100%" in stderr and f"{count}/{count} pledges" in stderr
    rows = _by_header(_csv_rows(out.read_bytes()))
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert len(rows) == count and all(row["note"] == "'=1+1" for row in rows)

    fr = tmp_path / "pledges-fr.csv"
    code, _, stderr = await _cli(
        database_url, "--campaign-id", str(cid), "--out", str(fr), "--dialect", "excel-fr"
    )
    assert code == 0, stderr
    assert fr.read_bytes().startswith(b"\xef\xbb\xbf")  # excel-fr always has its BOM
    fr_text = fr.read_bytes().decode("utf-8-sig")
    fr_rows = _by_header(list(csv.reader(io.StringIO(fr_text, newline=""), delimiter=";")))
    assert len(fr_rows) == count
    assert {row["amount"] for row in fr_rows[:2]} == {"10,00", "10,01"}
    fr.unlink()

    xlsx = tmp_path / "paid.xlsx"
    code, stdout, stderr = await _cli(
        database_url,
        "--campaign-id",
        str(cid),
        "--format",
        "xlsx",
        "--out",
        str(xlsx),
        "--status",
        "paid",
        "--since",
        "2026-11-23T18:00:00",  # no zone on the command line: UTC
    )
    assert code == 0, stderr
    sheet = _by_header(_xlsx_rows(xlsx.read_bytes()))
    assert len(sheet) == count // 2 and {row["status"] for row in sheet} == {"paid"}

    missing = tmp_path / "none.csv"
    code, _, stderr = await _cli(
        database_url, "--campaign-id", "999999", "--out", str(missing), "--quiet"
    )
    assert code == 2 and "no campaign 999999" in stderr
    assert await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir())) == [
        "paid.xlsx",
        "pledges.csv",
    ]  # no half-written file left behind


def _python(code: str, *args: str) -> str:
    """``code`` run by a Python process of its own (what it prints)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_exporter_starts_without_the_web_framework_nor_other_commands() -> None:
    # What ``pledgeline export`` imports before it reads a pledge: its command's own
    # module and the tables, not FastAPI, Starlette, nor the other commands' modules.
    modules = (
        _python(
            "import sys\n"
            "from app.cli import main\n"
            "try:\n"
            "    main(['--lang', 'en', 'export', '--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "import app.models, app.db, app.pledges.exports\n"
            "print('MODULES', *sorted(sys.modules))\n"
        )
        .split("MODULES", 1)[1]
        .split()
    )
    assert "app.pledges.export_cli" in modules and "sqlalchemy" in modules
    unwanted = {
        "fastapi",
        "starlette",
        "httpx",
        "app.cti.directory_server",
        "app.planning.cli",
        "app.receipts.cli",
        "app.i18n.cli",
    }
    assert unwanted.isdisjoint(modules), unwanted & set(modules)
    # A command still has its own arguments (imported for it alone).
    assert "--talk-seconds" in _python("from app.cli import main; main(['plan', '--help'])")


# Run in a process of its own: it shuts SQLite down and starts it again.
_STATISTICS = """
import ctypes, sqlite3, sys
import _sqlite3
from app.pledges.export_cli import sqlite_memory_statistics_off
library = ctypes.CDLL(_sqlite3.__file__)
library.sqlite3_memory_used.restype = ctypes.c_int64
first = None
if sys.argv[1] == "connection open":
    first = sqlite3.connect(":memory:")
    first.execute("CREATE TABLE t (x)")
off, again = sqlite_memory_statistics_off(), sqlite_memory_statistics_off()
db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE u (x)")
db.execute("INSERT INTO u VALUES (printf('%s', 'works'))")
counted = library.sqlite3_memory_used() > 0
works = db.execute("SELECT x FROM u").fetchone()[0]
if first is not None:
    works += str(first.execute("SELECT count(*) FROM t").fetchone()[0])
print(off, again, counted, works)
"""


def test_sqlite_memory_statistics_are_turned_off_only_before_any_connection() -> None:
    # Off: SQLite counts nothing any more (no lock taken a cell by two reading threads).
    assert _python(_STATISTICS, "fresh").split() == ["True", "True", "False", "works"]
    # A connection open: SQLite is left as it is, counting, and the connection works.
    assert _python(_STATISTICS, "connection open").split() == [
        "False",
        "False",
        "True",
        "works0",
    ]


# --- the card guard: nothing card-like ever reaches an export --------------------------------

_RUN = re.compile(r"[0-9](?:[\s\-.]{0,2}[0-9])*")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card_like_runs(text: str) -> list[str]:
    """Every 13-19 digit window of a digit run (spaces, dashes, dots between) passing Luhn.
    Written here, apart from the guard under test, so the scan does not trust it."""
    found = []
    for match in _RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        for size in range(13, min(19, len(digits)) + 1):
            found += [
                digits[i : i + size]
                for i in range(len(digits) - size + 1)
                if _luhn(digits[i : i + size])
            ]
    return found


CARDS = ("4111 1111 1111 1111", "5500-0055-5555-5559", "378282246310005", "4012.8888.8888.1881")
TEXT_FIELDS = ("first_name", "last_name", "address", "postcode", "city", "email", "phone", "note")


async def test_refused_card_numbers_never_reach_an_export(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    assert _card_like_runs(f"call me {CARDS[0]} thanks")  # the scan finds what it looks for

    async def save(**body: Any) -> httpx.Response:
        return await hotline.http.post(
            "/pledges",
            json={"campaign_id": cid, "amount_minor": 2500, "email": "d@example.org", **body},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )

    codes = []
    for card in CARDS:
        for name in TEXT_FIELDS:
            for value in (card, f"paid by card {card} exp 12/29"):
                r = await save(**{name: value})
                assert r.status_code == 422, (name, value, r.text)
                # Refused by the guard, or before it by the field's length limit.
                assert r.json()["code"] in ("card_number", "invalid"), r.text
                assert r.json()["field"] == name
                codes.append(r.json()["code"])
                assert card not in r.text
    assert codes.count("card_number") >= len(CARDS) * len(TEXT_FIELDS)
    kept = [
        await save(first_name="Lucie", phone="06 12 34 56 78", postcode="13001", note="2026-11-23")
        for _ in range(3)
    ]
    assert all(r.status_code == 201 for r in kept), [r.text for r in kept]

    csv_body = (await hotline.http.get(f"/pledges/export.csv?campaign_id={cid}")).content
    xlsx_body = (await hotline.http.get(f"/pledges/export.xlsx?campaign_id={cid}")).content
    assert len(_csv_rows(csv_body)) == 4 and len(_xlsx_rows(xlsx_body)) == 4
    assert _card_like_runs(csv_body.decode("utf-8")) == []
    with zipfile.ZipFile(io.BytesIO(xlsx_body)) as archive:
        for part in archive.namelist():
            assert _card_like_runs(archive.read(part).decode("utf-8")) == [], part
    for row in _xlsx_rows(xlsx_body):
        for value in row:
            assert _card_like_runs("" if value is None else str(value)) == [], value


def test_crlf_records_changes_record_ends_only() -> None:
    assert crlf_records(b"a,b\nc,d\n") == b"a,b\r\nc,d\r\n"
    # A line break inside a quoted field is data; doubled quotes do not close it.
    data = b'1,"two\nlines",x\n2,"say ""hi""\nthere","a,\nb"\n3,,\n'
    fixed = crlf_records(data)
    assert fixed == b'1,"two\nlines",x\r\n2,"say ""hi""\nthere","a,\nb"\r\n3,,\r\n'
    rows = list(csv.reader(io.StringIO(fixed.decode(), newline="")))
    assert rows == [["1", "two\nlines", "x"], ["2", 'say "hi"\nthere', "a,\nb"], ["3", "", ""]]


def test_sheet_names_are_ones_excel_accepts() -> None:
    assert sheet_name_for("Telethon 2026: Paris/Lyon [live]?") == "Telethon 2026_ Paris_Lyon _live"
    assert sheet_name_for("'quoted'") == "quoted"
    assert sheet_name_for("") == "Pledges"
    assert len(sheet_name_for("x" * 40)) == 31

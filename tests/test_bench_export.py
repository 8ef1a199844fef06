"""The export benchmark (bench/export.py) and its XLSX candidate, xlsxwriter in
constant-memory mode (bench/export_xlsxwriter.py), against the project's own writer.

Both workbooks are opened with openpyxl and compared cell by cell: same headers (in the
language asked), same values, same types (numbers for ids, minor units and amounts,
ISO 8601 text for times), the same formulas neutralised; the sheet's layout (bold
frozen header row) as well.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from app.pledges import exports
from app.pledges.export_formats import neutralise
from bench import export as bench_export
from bench.export_xlsxwriter import write as xlsxwriter_write
from tests.conftest import Hotline, setup_campaign
from tests.test_pledges_export import FORMULAS, INNER_FORMULAS, T0, _insert, _pledge


def _sheet(data: bytes) -> tuple[list[tuple[Any, ...]], Any]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book.worksheets[0]
    return [tuple(row) for row in sheet.iter_rows(values_only=True)], sheet


async def test_xlsxwriter_candidate_writes_the_cells_our_writer_writes(
    hotline: Hotline, tmp_path: Path
) -> None:
    cid = (await setup_campaign(hotline, agents=1))["campaign_id"]
    texts = [*FORMULAS.values(), *INNER_FORMULAS]
    pledges = [
        _pledge(cid, 1, first_name='Anne, "la Grande"', note="two\nlines", address=" 3 rue "),
        _pledge(cid, 2, first_name="Zoë <b>&amp;</b>", amount_minor=123456, currency="KWD"),
        _pledge(cid, 3, amount_minor=1004, currency="JPY", paid_minor=1004, status="paid"),
        *(_pledge(cid, 10 + i, note=text, city=text) for i, text in enumerate(texts)),
    ]
    pledges[2]["paid_at"] = T0
    await _insert(hotline, pledges)

    ours = await hotline.http.get(
        f"/pledges/export.xlsx?campaign_id={cid}", headers={"Accept-Language": "fr"}
    )
    assert ours.status_code == 200, ours.text
    out = tmp_path / f"{uuid.uuid4().hex}.xlsx"
    written = await xlsxwriter_write(hotline.settings.database_url, cid, out, language="fr")
    assert written == len(pledges)

    our_rows, our_sheet = _sheet(ours.content)
    their_rows, their_sheet = _sheet(out.read_bytes())
    french = [c.header for c in exports.columns_in("fr")]
    assert list(our_rows[0]) == list(their_rows[0]) == french
    assert french != [c.header for c in exports.COLUMNS]  # the headers were translated
    assert len(our_rows) == len(their_rows) == len(pledges) + 1
    escaped = 0
    for ours_row, theirs_row in zip(our_rows, their_rows, strict=True):
        for header, a, b in zip(french, ours_row, theirs_row, strict=True):
            if isinstance(b, str) and "_x000D_" in b:
                # xlsxwriter writes a CR as the OOXML escape _x000D_ (Excel reads a CR,
                # openpyxl leaves the escape); ours writes the character itself.
                b, escaped = b.replace("_x000D_", "\r"), escaped + 1
            # A sheet keeps doubles: 25.00 may read back as 25 from one, 25.0 from the other.
            kind = (int, float) if isinstance(a, int | float) else type(a)
            assert a == b and isinstance(b, kind), (header, a, b)

    assert escaped == 2 * sum("\r" in text for text in texts)  # note and city

    # What both carry, read once from ours: numbers, ISO 8601 UTC text, neutralised text.
    by_column = [dict(zip(french, row, strict=True)) for row in our_rows[1:]]
    names = dict(zip([c.header for c in exports.COLUMNS], french, strict=True))
    first, kwd, yen = by_column[0], by_column[1], by_column[2]
    assert first[names["amount"]] == pytest.approx(10.01)
    assert first[names["amount_minor"]] == 1001 and isinstance(first[names["pledge_id"]], int)
    assert first[names["created_at_utc"]] == "2026-11-23T18:00:01.000000Z"
    assert first[names["address"]] == " 3 rue " and first[names["note"]] == "two\nlines"
    assert kwd[names["amount"]] == pytest.approx(123.456)
    assert yen[names["amount"]] == 1004  # no decimals in yen
    assert yen[names["paid_at_utc"]] == "2026-11-23T18:00:00.000000Z"
    for row, text in zip(by_column[3:], texts, strict=True):
        assert row[names["note"]] == row[names["city"]] == neutralise(text), text

    # The same layout: the header row bold and frozen.
    for sheet in (our_sheet, their_sheet):
        assert sheet.freeze_panes == "A2"
        assert sheet.cell(1, 1).font.b and not sheet.cell(2, 1).font.b


async def test_the_bench_exports_every_pledge_with_each_writer(tmp_path: Path) -> None:
    figures = await bench_export._run(
        bench_export.Options.parse(
            {"db": "sqlite", "rows": "300", "runs": "1", "before": str(bench_export.ROOT)}
        )
    )
    assert figures["all_rows_written"] is True
    assert set(figures["median"]) == {
        "csv",
        "xlsx",
        "xlsx_xlsxwriter",
        "before_csv",
        "before_xlsx",
    }
    for runs in figures["rounds"].values():
        assert [r["rows_in_file"] for r in runs] == [300]
        assert all(r["peak_rss_mb"] > 0 and r["cpu_s"] > 0 for r in runs)

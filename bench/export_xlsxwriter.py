"""The pledge export's XLSX written by xlsxwriter in constant-memory mode: the candidate
``bench export`` measures against the project's own writer (``XlsxEncoder``).

Same rows (``Export.chunks``: the cells formatted by the database), same columns and
headers, same sheet (name, bold frozen header row), same cell types as
``XlsxEncoder``: ids, minor units and amounts as numbers, the rest as text with the
apostrophes after separators put in (``neutralise_after_separators``), nothing for
NULL. ``tests/test_bench_export.py`` reads both files back with openpyxl and
compares them cell by cell.

xlsxwriter writes a finished workbook to a file (constant memory: the sheet goes to
a temporary file row by row, and the zip is built when the workbook closes), so
over HTTP its first byte could only be sent once the whole export is written.

``python -m bench.export_xlsxwriter --campaign-id N --out PATH [--lang en]``, on the
database of ``PLEDGELINE_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import xlsxwriter

from app.pledges.export_formats import neutralise, neutralise_after_separators, sheet_name_for


async def write(database_url: str, campaign_id: int, out: Path, language: str = "en") -> int:
    """The export of ``campaign_id`` written to ``out``; the number of pledges."""
    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.db import Database, make_engine
    from app.pledges import exports

    db = Database(make_engine(database_url, pool_size=2))
    try:
        export = await exports.prepare(db, exports.ExportFilter(campaign_id=campaign_id))
        columns = exports.columns_in(language)
        book = xlsxwriter.Workbook(str(out), {"constant_memory": True})
        sheet = book.add_worksheet(sheet_name_for(export.campaign_name or "Pledges"))
        bold = book.add_format({"bold": True})
        sheet.freeze_panes(1, 0)
        for c, column in enumerate(columns):
            sheet.write_string(0, c, neutralise(column.header), bold)
        numbers = [column.kind in ("int", "money") for column in columns]
        write_number, write_string = sheet.write_number, sheet.write_string
        r = 0
        async for rows in export.chunks(db):
            for row in rows:
                r += 1
                for c, value in enumerate(row[1:]):
                    if value is None:
                        continue
                    if numbers[c]:
                        # Amounts come as exact decimal text ("25.00"); a sheet keeps doubles.
                        write_number(r, c, value if isinstance(value, int) else float(value))
                    else:
                        write_string(r, c, neutralise_after_separators(value))
        book.close()
        return r
    finally:
        await db.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.export_xlsxwriter")
    parser.add_argument("--campaign-id", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lang", default="en")
    args = parser.parse_args(argv)
    url = os.environ["PLEDGELINE_DATABASE_URL"]
    count = asyncio.run(write(url, args.campaign_id, args.out, args.lang))
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

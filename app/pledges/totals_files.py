"""One table of the organiser's totals (by slot, hour, queue, volunteer, partner or
département) as a spreadsheet: CSV (RFC 4180) or XLSX with the pledge exports'
writers (formula neutralisation included), headers in the caller's language.

The figures are ``GET /pledges/totals``'s, so the file and the page always agree.
"""

from __future__ import annotations

from typing import Any, Literal

from app.i18n import N_, translate
from app.i18n.formats import major_units
from app.pledges.export_formats import Column, CsvEncoder, Kind, XlsxEncoder, neutralise

Table = Literal["by_slot", "by_hour", "by_queue", "by_agent", "by_partner", "by_departement"]

# Each table's key column (as the pledge export names its fields: snake_case ids).
KEY_HEADERS: dict[str, str] = {
    "by_slot": N_("time_slot"),
    "by_hour": N_("hour"),
    "by_queue": N_("queue"),
    "by_agent": N_("volunteer"),
    "by_partner": N_("partner"),
    "by_departement": N_("departement"),
}
_FIGURES: list[tuple[str, Kind]] = [
    (N_("pledges"), "int"),
    (N_("promised"), "money"),
    (N_("paid"), "money"),
    (N_("average"), "money"),
    (N_("paid_share"), "text"),
    (N_("currency"), "text"),
]


def columns(table: str, language: str) -> list[Column]:
    key = Column(translate(language, KEY_HEADERS[table]), "text")
    return [key, *(Column(translate(language, h), kind) for h, kind in _FIGURES)]


def cells(row: dict[str, Any], currency: str) -> list[Any]:
    rate = row["fulfilment_rate"]
    return [
        neutralise(str(row["label"])),  # names typed by people: never a formula
        row["count"],
        str(major_units(row["promised_minor"], currency)),
        str(major_units(row["paid_minor"], currency)),
        str(major_units(row["average_minor"], currency)),
        "" if rate is None else f"{rate:.4f}",
        currency,
    ]


def spreadsheet(totals: dict[str, Any], table: str, fmt: str, language: str) -> bytes:
    """The whole file: a totals table has a line per slot, hour, queue... (small)."""
    encoder = CsvEncoder() if fmt == "csv" else XlsxEncoder(sheet_name=table)
    currency = totals["currency"]
    # The writers take rows of (id, cell, cell...) and drop the id.
    rows = [(0, *cells(row, currency)) for row in totals[table]]
    return encoder.header(columns(table, language)) + encoder.rows(rows) + encoder.end()


def file_name(campaign_id: int, table: str, fmt: str, stamp: str) -> str:
    return f"totals-{campaign_id}-{table.removeprefix('by_')}-{stamp}.{fmt}"

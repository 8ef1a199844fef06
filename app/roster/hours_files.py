"""The hours report as a spreadsheet: CSV (RFC 4180) or XLSX, with the pledge
exports' writers (``app/pledges/export_formats.py``: formula neutralisation included)
and headers in the caller's language."""

from __future__ import annotations

from typing import Any

from app.i18n import N_, translate
from app.i18n.formats import major_units
from app.pledges.export_formats import Column, CsvEncoder, Kind, XlsxEncoder, neutralise
from app.roster.hours import Group, HoursReport, HoursRow, hh_mm

_KEYS: dict[str, list[tuple[str, Kind]]] = {
    "volunteer": [
        (N_("agent_id"), "int"),
        (N_("volunteer"), "text"),
        (N_("employer"), "text"),
        (N_("site"), "text"),
    ],
    "employer": [(N_("employer"), "text"), (N_("volunteers"), "int")],
    "site": [(N_("site_id"), "int"), (N_("site"), "text"), (N_("volunteers"), "int")],
}
_METRICS: list[tuple[str, Kind]] = [
    (N_("shifts"), "int"),
    (N_("shift_time"), "text"),
    (N_("logged_in"), "text"),
    (N_("logged_in_seconds"), "int"),
    (N_("on_calls"), "text"),
    (N_("on_calls_seconds"), "int"),
    (N_("calls"), "int"),
    (N_("pledges"), "int"),
    (N_("pledged"), "money"),
    (N_("pledged_minor"), "int"),
    (N_("currency"), "text"),
]


def columns(group: Group, language: str) -> list[Column]:
    return [Column(translate(language, h), kind) for h, kind in _KEYS[group] + _METRICS]


def text(value: str | None) -> str:
    """A name as a cell a spreadsheet will not run as a formula (``=HYPERLINK(...)``)."""
    return neutralise(value or "")


def cells(row: HoursRow, group: Group, currency: str) -> list[Any]:
    keys: list[Any]
    if group == "volunteer":
        keys = [row.agent_id, text(row.volunteer), text(row.employer), text(row.site)]
    elif group == "employer":
        keys = [text(row.employer), row.volunteers]
    else:
        keys = [row.site_id, text(row.site), row.volunteers]
    t = row.totals
    return [
        *keys,
        t.shifts,
        hh_mm(t.shift_seconds),
        hh_mm(t.logged_in_seconds),
        t.logged_in_seconds,
        hh_mm(t.call_seconds),
        t.call_seconds,
        t.calls,
        t.pledges,
        str(major_units(t.pledged_minor, currency)),
        t.pledged_minor,
        currency,
    ]


def spreadsheet(report: HoursReport, fmt: str, language: str) -> bytes:
    """The whole file (a report is one line per volunteer at most: small)."""
    encoder = CsvEncoder() if fmt == "csv" else XlsxEncoder(sheet_name=report.campaign)
    # The writers take rows of (id, cell, cell...) and drop the id.
    rows = [(0, *cells(row, report.group, report.currency)) for row in report.rows]
    return encoder.header(columns(report.group, language)) + encoder.rows(rows) + encoder.end()


def file_name(report: HoursReport, fmt: str) -> str:
    stamp = report.now.strftime("%Y%m%dT%H%MZ")
    return f"hours-{report.campaign_id}-{report.group}-{stamp}.{fmt}"

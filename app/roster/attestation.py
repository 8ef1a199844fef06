"""The attestation of a company's employees' hours (skills volunteering, for its CSR
report), as a printable PDF (reportlab): French by default, English on request.

The wording is message ids translated with the app's catalogues (app/i18n); dates
and times in the campaign's time zone, formatted for the language (Babel). Drawn
with DejaVu Sans when installed (the receipts' font setting), else Helvetica. The
table flows onto more pages for a company lending many employees.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from babel.dates import format_date
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from app.i18n import N_, translate
from app.i18n.formats import format_datetime, locale_of
from app.pdf_fonts import fonts
from app.roster.hours import HoursReport, hh_mm

log = logging.getLogger(__name__)

TITLE = N_("Skills volunteering certificate")


def _when(moment: dt.datetime, language: str, timezone: str) -> str:
    return format_datetime(moment, language, timezone)


def render(report: HoursReport, employer: str, language: str, *, font_path: str = "") -> bytes:
    """The attestation of ``report`` (grouped by volunteer, one company's) as PDF bytes."""
    regular, bold = fonts(font_path, "HoursSans")

    def t(message_id: str, **params: object) -> str:
        return translate(language, message_id, params)

    body = ParagraphStyle("body", fontName=regular, fontSize=10.5, leading=14)
    title = ParagraphStyle("title", fontName=bold, fontSize=16, leading=20, spaceAfter=6)
    strong = ParagraphStyle("strong", parent=body, fontName=bold)

    zone = report.timezone
    since = report.since or report.first_login or report.now
    until = min(report.until or report.now, report.now)
    issued = format_date(report.now.astimezone(ZoneInfo(zone)), "long", locale=locale_of(language))

    def para(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text), style)

    story = [
        para(t(TITLE), title),
        para(t(N_("Company: {employer}"), employer=employer), strong),
        para(t(N_("Campaign: {campaign}"), campaign=report.campaign)),
        para(
            t(
                N_("Period: from {since} to {until} ({timezone})"),
                since=_when(since, language, zone),
                until=_when(until, language, zone),
                timezone=zone,
            )
        ),
        Spacer(1, 5 * mm),
        para(
            t(
                N_(
                    "We certify that the employees of {employer} named below volunteered for "
                    "the campaign {campaign}, for the following times:"
                ),
                employer=employer,
                campaign=report.campaign,
            )
        ),
        Spacer(1, 4 * mm),
    ]
    header = [
        t(N_("Name")),
        t(N_("Site")),
        t(N_("Logged in")),
        t(N_("On calls")),
        t(N_("Calls handled")),
    ]
    lines: list[list[str]] = [header]
    for row in report.rows:
        lines.append(
            [
                row.volunteer or "",
                row.site or "",
                hh_mm(row.totals.logged_in_seconds),
                hh_mm(row.totals.call_seconds),
                str(row.totals.calls),
            ]
        )
    totals = report.totals
    lines.append(
        [
            t(N_("Total")),
            "",
            hh_mm(totals.logged_in_seconds),
            hh_mm(totals.call_seconds),
            str(totals.calls),
        ]
    )
    cell = ParagraphStyle("cell", parent=body, fontSize=9.5, leading=12)
    bold_cell = ParagraphStyle("bold_cell", parent=cell, fontName=bold)
    # Names and headers wrap (paragraphs); the header and the total row in bold.
    table_rows: list[list[Paragraph | str]] = [[Paragraph(escape(h), bold_cell) for h in header]]
    for n, line in enumerate(lines[1:], start=1):
        style = bold_cell if n == len(lines) - 1 else cell
        table_rows.append([Paragraph(escape(text), style) for text in line[:2]] + list(line[2:]))
    table = Table(
        table_rows,
        colWidths=[62 * mm, 40 * mm, 24 * mm, 24 * mm, 24 * mm],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), regular, 9.5),
                ("FONT", (0, 0), (-1, 0), bold, 9.5),
                ("FONT", (0, -1), (-1, -1), bold, 9.5),
                ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
                ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.Color(0.6, 0.6, 0.6)),
            ]
        )
    )
    story += [
        table,
        Spacer(1, 4 * mm),
        para(
            t(
                N_(
                    "Times are hours:minutes of real elapsed time: logged in is from login to "
                    "logout at a seat; on calls is from answering a call to the end of its "
                    "wrap-up."
                )
            )
        ),
        Spacer(1, 10 * mm),
        para(t(N_("Issued on {date}"), date=issued)),
        Spacer(1, 6 * mm),
        para(t(N_("Name, title, signature and stamp of the organiser:"))),
        Spacer(1, 18 * mm),
        para("_" * 48),
    ]
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"{t(TITLE)} - {employer}",
        author=report.campaign,
        lang=language,
    )
    doc.build(story)
    return out.getvalue()

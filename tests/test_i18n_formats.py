"""Money, numbers, percentages and times as people read them (app/i18n/formats.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from app.i18n.catalogues import translate
from app.i18n.formats import (
    format_datetime,
    format_decimal,
    format_money,
    format_percent,
    major_units,
    page_formats,
)

NNBSP, NBSP = "\u202f", "\xa0"  # what CLDR (and Babel) put in French numbers


def test_money_from_minor_units() -> None:
    assert format_money(123450, "EUR", "fr") == f"1{NNBSP}234,50{NBSP}€"
    assert format_money(123450, "EUR", "en") == "€1,234.50"
    assert format_money(5, "EUR", "fr") == f"0,05{NBSP}€"
    assert format_money(1004, "JPY", "fr") == f"1{NNBSP}004{NBSP}JPY"  # no decimals in yen
    assert major_units(123450, "EUR") == Decimal("1234.50")


def test_decimal_and_percent() -> None:
    assert format_decimal(1234.5, "fr") == f"1{NNBSP}234,5"
    assert format_decimal(1234.5, "en") == "1,234.5"
    assert format_percent(0.532, "fr") == f"53,2{NBSP}%"
    assert format_percent(0.53249, "fr") == f"53,2{NBSP}%"
    assert format_percent(0.5, "fr") == f"50{NBSP}%"
    assert format_percent(0.532, "en") == "53.2%"


def test_times_on_the_campaigns_clock() -> None:
    moment = dt.datetime(2026, 12, 6, 20, 5, tzinfo=dt.UTC)  # 21:05 in Paris (winter)
    assert format_datetime(moment, "fr") == "06/12/2026 21:05"
    assert format_datetime(moment, "en") == "06/12/2026, 21:05"
    assert format_datetime(moment, "fr", "America/Martinique") == "06/12/2026 16:05"
    summer = dt.datetime(2026, 7, 1, 20, 5, tzinfo=dt.UTC)
    assert format_datetime(summer, "fr") == "01/07/2026 22:05"


def test_page_formats_are_babels() -> None:
    fr = page_formats("fr")
    assert (fr["decimal"], fr["group"]) == (",", NNBSP)
    assert fr["currency_pattern"] == f"#,##0.00{NBSP}¤"
    assert fr["currencies"]["EUR"] == {"symbol": "€", "places": 2}
    assert (fr["date_pattern"], fr["time_pattern"], fr["datetime_pattern"]) == (
        "dd/MM/y",
        "HH:mm",
        "{1} {0}",
    )
    assert page_formats("en")["decimal"] == "."


def test_translate_fills_placeholders_and_falls_back_to_the_id() -> None:
    assert translate("fr", "queue {queue_id} not found", {"queue_id": 4}) == "file 4 introuvable"
    assert translate("en", "queue {queue_id} not found", {"queue_id": 4}) == "queue 4 not found"
    assert translate("fr", "not in the catalogue {x}", {"x": 1}) == "not in the catalogue 1"
    # Parameters that do not fit: the id unfilled rather than a failure (a 500).
    assert translate("fr", "queue {queue_id} not found", {"other": 1}) == (
        "queue {queue_id} not found"
    )
    assert translate("de", "log in first") == "log in first"

"""Numbers, money, percentages and times as people read them, per language (Babel).

French: ``1 234,50 €`` (narrow no-break space between thousands, no-break space
before the sign), ``53,2 %``, ``06/12/2026 21:05``. Times are shown in the
campaign's time zone (Europe/Paris unless the campaign says otherwise).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime as babel_format_datetime
from babel.numbers import format_currency, get_currency_precision, get_currency_symbol
from babel.numbers import format_decimal as babel_format_decimal
from babel.numbers import format_percent as babel_format_percent

from app.i18n.negotiation import supported

# The regional variant each language is formatted in: English as in Britain (day
# before month, 24-hour clock), the telethon's audience being European.
LOCALES = {"fr": "fr_FR", "en": "en_GB"}
DEFAULT_TIMEZONE = "Europe/Paris"
# The currencies whose symbol and decimals the pages get (a campaign's currency is one).
PAGE_CURRENCIES = ("EUR", "CHF", "GBP", "USD", "CAD", "XPF", "JPY")


def locale_of(language: str) -> str:
    return LOCALES[supported(language) or "fr"]


def major_units(amount_minor: int, currency: str) -> Decimal:
    """``123450`` EUR is ``Decimal("1234.50")`` (the currency's decimal places)."""
    return Decimal(amount_minor).scaleb(-get_currency_precision(currency))


def format_money(amount_minor: int, currency: str, language: str) -> str:
    return format_currency(
        major_units(amount_minor, currency), currency, locale=locale_of(language)
    )


def format_decimal(value: float | Decimal | int, language: str) -> str:
    return babel_format_decimal(value, locale=locale_of(language))


def format_percent(ratio: float | Decimal, language: str, places: int = 1) -> str:
    """``0.532`` is ``53,2 %``: at most ``places`` decimals of the percentage."""
    rounded = round(Decimal(str(ratio)), places + 2)
    return babel_format_percent(rounded, locale=locale_of(language), decimal_quantization=False)


def format_datetime(moment: dt.datetime, language: str, timezone: str | None = None) -> str:
    """A UTC moment as the campaign's clock shows it: ``06/12/2026 21:05``."""
    zone = ZoneInfo(timezone or DEFAULT_TIMEZONE)
    return babel_format_datetime(moment, "short", tzinfo=zone, locale=locale_of(language))


def page_formats(language: str) -> dict[str, Any]:
    """What the pages' script needs to format like the server (app/web/static/i18n.js)."""
    locale = Locale.parse(locale_of(language))
    symbols = locale.number_symbols.get("latn", locale.number_symbols)
    datetime_pattern = str(locale.datetime_formats["short"])
    return {
        "language": supported(language) or "fr",
        "locale": str(locale).replace("_", "-"),
        "decimal": symbols["decimal"],
        "group": symbols["group"],
        "percent_sign": symbols["percentSign"],
        "currency_pattern": locale.currency_formats["standard"].pattern,
        "percent_pattern": locale.percent_formats[None].pattern,
        "date_pattern": locale.date_formats["short"].pattern,
        "time_pattern": locale.time_formats["short"].pattern,
        "datetime_pattern": datetime_pattern,
        "timezone": DEFAULT_TIMEZONE,
        "currencies": {
            code: {
                "symbol": get_currency_symbol(code, locale=locale),
                "places": get_currency_precision(code),
            }
            for code in PAGE_CURRENCIES
        },
    }

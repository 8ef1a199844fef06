"""What a receipt says in French: amounts in figures and in words, dates in Paris time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.numbers import format_currency, get_currency_precision
from num2words import num2words

PARIS = ZoneInfo("Europe/Paris")
_CURRENCY_WORDS = {"EUR": ("euro", "euros", "centime", "centimes")}
PAYMENT_MODES = {
    "cheque": "Chèque",
    "bank_transfer": "Virement, prélèvement",
    "web_link": "Carte bancaire (paiement en ligne)",
}
# Spaces Babel puts in French amounts (narrow and plain no-break): plain spaces on paper,
# where every reader and copy-paste keeps them.
_SPACES = str.maketrans({"\u202f": " ", "\xa0": " "})


def major_and_minor(amount_minor: int, currency: str) -> tuple[int, int, int]:
    """(whole units, cents, decimal places) of an amount in minor units."""
    places = get_currency_precision(currency)
    whole, cents = divmod(amount_minor, 10**places) if places else (amount_minor, 0)
    return whole, cents, places


def amount_in_figures(amount_minor: int, currency: str) -> str:
    """``123450`` EUR is ``1 234,50 €``."""
    _, _, places = major_and_minor(amount_minor, currency)
    value = Decimal(amount_minor).scaleb(-places)
    return format_currency(value, currency, locale="fr_FR").translate(_SPACES)


def _units(count: int, singular: str, plural: str) -> str:
    words = num2words(count, lang="fr")
    # "un million d'euros", "deux milliards d'euros": de before the unit after a round million.
    if count >= 1_000_000 and count % 1_000_000 == 0:
        elided = "d'" if plural[0] in "aeiouéh" else "de "
        return f"{words} {elided}{plural}"
    return f"{words} {singular if count < 2 else plural}"


def amount_in_words(amount_minor: int, currency: str) -> str:
    """``123450`` EUR is ``mille deux cent trente-quatre euros et cinquante centimes``."""
    whole, cents, _ = major_and_minor(amount_minor, currency)
    one, many, cent, cents_word = _CURRENCY_WORDS.get(
        currency, (currency, currency, "centième", "centièmes")
    )
    text = _units(whole, one, many)
    if cents:
        text += f" et {_units(cents, cent, cents_word)}"
    return text


def paris_date(moment: dt.datetime) -> str:
    """A UTC time as the French date it was in Paris: ``06/12/2026``."""
    return moment.astimezone(PARIS).strftime("%d/%m/%Y")


def paris_year(moment: dt.datetime) -> int:
    return moment.astimezone(PARIS).year


def receipt_number(year: int, number: int) -> str:
    """The printed number: the year and the rank in that year's sequence."""
    return f"{year}-{number:06d}"


def payment_mode(channel: str) -> str:
    return PAYMENT_MODES.get(channel, channel)

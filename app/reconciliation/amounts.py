"""Amounts as written in exports, read exactly into integer minor units.

``"1 234,50"`` (French: decimal comma, spaces or dots between thousands) and
``"1,234.50"`` are read digit by digit, never through a float, so no cent is ever
lost or invented.
"""

from __future__ import annotations

import re

from app.i18n import Message
from app.text_files import BadValue

# ISO 4217 currencies without minor units (the pledges use the same list).
_ZERO_DECIMAL = frozenset({"BIF", "CLP", "ISK", "JPY", "KRW", "PYG", "UGX", "VND", "XAF", "XOF"})
# Spaces written between thousands: plain, no-break, narrow no-break, thin; and the
# Swiss apostrophe.
_GROUP_SPACES = " \u00a0\u202f\u2009'\u2019"
_SIGNS = {"-": -1, "\u2212": -1, "+": 1}
_CURRENCY_MARKS = re.compile(r"^(?:€|EUR|\$|USD|£|GBP|CHF)\s*|\s*(?:€|EUR|\$|USD|£|GBP|CHF)$")


class AmountError(BadValue):
    """Why a text is not an amount (the message never repeats the text)."""


def minor_digits(currency: str) -> int:
    return 0 if currency in _ZERO_DECIMAL else 2


def _grouped(whole: str, separators: str) -> str:
    """``whole`` without its thousands separators, which must sit every three digits."""
    parts = re.split(f"[{re.escape(separators)}]", whole)
    if len(parts) == 1:
        if not re.fullmatch(r"[0-9]+", whole):
            raise AmountError(Message("not a number"))
        return whole
    if not re.fullmatch(r"[0-9]{1,3}", parts[0]) or not all(
        re.fullmatch(r"[0-9]{3}", p) for p in parts[1:]
    ):
        raise AmountError(Message("thousands are not grouped by three"))
    return "".join(parts)


def parse_amount(text: str, *, decimal_separator: str, currency: str) -> int:
    """The amount in minor units of ``currency``; :class:`AmountError` if it is not one."""
    value = _CURRENCY_MARKS.sub("", text.strip()).strip()
    sign = 1
    if value[:1] in _SIGNS:
        sign, value = _SIGNS[value[0]], value[1:].lstrip()
    elif value[-1:] in ("-", "\u2212"):  # "12,50-": a debit in some bank exports
        sign, value = -1, value[:-1].rstrip()
    if not value:
        raise AmountError(Message("no amount"))
    thousands = _GROUP_SPACES + ("." if decimal_separator == "," else ",")
    whole, point, fraction = value.rpartition(decimal_separator)
    if not point:
        whole, fraction = value, ""
    elif not whole:
        whole = "0"  # ",50"
    whole = _grouped(whole, thousands)
    digits = minor_digits(currency)
    if fraction and not re.fullmatch(r"[0-9]+", fraction):
        raise AmountError(Message("not a number"))
    if len(fraction) > digits:
        raise AmountError(
            Message("more than {digits} decimals for {currency}", digits=digits, currency=currency)
        )
    scale: int = 10**digits
    return sign * (int(whole) * scale + int(fraction.ljust(digits, "0") or "0"))

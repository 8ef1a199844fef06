"""The card-number guard: refuse any text that looks like payment card data.

Volunteers must never take card details by phone (the donor pays on the
charity's website). Every text field of a pledge, notes included, goes through
:func:`check_fields` before anything is written. The value is never stored,
logged or echoed: the refusal names the field only.

What is refused:

* a run of 13 to 19 digits, possibly broken by spaces, dashes or dots, that
  passes the Luhn check; also when it is followed by more digits in the same
  run, as when a card number is typed together with its security code
  (``4111 1111 1111 1111 123`` or ``4111111111111111123``);
* a 3- or 4-digit value (a security code) or an ``MM/YY`` expiry next to card
  wording (card, carte, CB, Visa, CVV, cryptogramme, expiry...).

Checking the groups of a long run costs some false refusals on long numbers (an
IBAN typed in a note, for example). That is the intended side: a pledge never
needs such a number, and the volunteer can rephrase.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from app.errors import Invalid

MIN_DIGITS, MAX_DIGITS = 13, 19

# Digits with at most two separators between them (spaces, dashes, dots, slashes
# are how people group a card number when typing it).
_DIGIT_RUN = re.compile(r"[0-9](?:[\s\-.]{0,2}[0-9])*")

_CARD_WORDS = re.compile(
    r"\b(?:cards?|carte|cb|visa|master\s?card|maestro|amex|american\s+express|"
    r"cvv2?|cvc2?|cvn|cid|csc|crypto(?:gramme)?|security\s+code|code\s+de\s+s[ée]curit[ée]|"
    r"expir\w*|exp|valid\s+(?:thru|until))\b",
    re.IGNORECASE,
)
_SECURITY_CODE = re.compile(r"(?<![0-9])(?:[0-9]{3,4}|(?:0[1-9]|1[0-2])\s?/\s?[0-9]{2,4})(?![0-9])")
# How close (characters) a security-code-like value must be to card wording.
_NEAR = 40


class CardDataRefused(Invalid):
    code = "card_data_refused"


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _normalise(text: str) -> str:
    # Full-width and other compatibility digits become ASCII digits.
    return unicodedata.normalize("NFKC", text)


def _candidates(groups: list[str]) -> Iterable[str]:
    """The digit strings a typed card number may be among these groups.

    Consecutive groups joined (``4111 1111 1111 1111 123`` holds the number in its
    first four groups), and a long group without separators less a 3- or 4-digit
    security code glued to its end (``4111111111111111123``).
    """
    for first in range(len(groups)):
        joined = ""
        for group in groups[first:]:
            joined += group
            if len(joined) > MAX_DIGITS + 4:
                break
            if MIN_DIGITS <= len(joined) <= MAX_DIGITS:
                yield joined
            for code in (3, 4):
                if MIN_DIGITS <= len(joined) - code <= MAX_DIGITS:
                    yield joined[:-code]


def luhn_runs(text: str) -> Iterable[str]:
    """Each card-number-like digit string (13-19 digits, Luhn-valid) in the text."""
    for match in _DIGIT_RUN.finditer(_normalise(text)):
        groups = re.findall(r"[0-9]+", match.group())
        if sum(len(g) for g in groups) < MIN_DIGITS:
            continue
        for candidate in _candidates(groups):
            if luhn_valid(candidate):
                yield candidate


def has_card_number(text: str) -> bool:
    return next(iter(luhn_runs(text)), None) is not None


def has_security_code_near_card_words(text: str) -> bool:
    text = _normalise(text)
    for word in _CARD_WORDS.finditer(text):
        start = max(0, word.start() - _NEAR)
        end = min(len(text), word.end() + _NEAR)
        if _SECURITY_CODE.search(text, start, end):
            return True
    return False


def looks_like_card_data(text: str) -> bool:
    return has_card_number(text) or has_security_code_near_card_words(text)


def check_fields(fields: Mapping[str, object]) -> None:
    """Refuse (422, naming the field, never the value) the first field holding card data."""
    for name, value in fields.items():
        if isinstance(value, str) and value and looks_like_card_data(value):
            raise CardDataRefused(
                "this looks like payment card data: never take card details by phone,"
                " the donor pays on the website with the pledge reference",
                field=name,
            )

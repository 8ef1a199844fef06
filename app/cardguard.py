"""The card-number guard: find payment card data however it is written.

Volunteers must never take card details by phone (the donor pays on the
charity's website), and nothing the API or a screen receives may carry one into
the database, the events or a log. Every request body is checked here before it
is validated (:class:`CardGuarded`, the base of every request schema), the
screens' websocket commands too (:func:`find_card_data`), and every log line is
masked with the same finder (:func:`card_spans`, used by ``app/logs.py``).

**Normalisation.** Before looking for digits, text is put in one form: digits
of any script (Arabic-Indic, Persian, Devanagari, full-width, mathematical...)
become ASCII digits (NFKC, then ``unicodedata.digit``); invisible characters
(every format character, category Cf: zero-width space and joiner, soft hyphen,
word joiner...; combining marks; control characters; the Hangul fillers) are
dropped; every other space becomes a plain space and every line break ``\\n``.
In log lines, percent-encoded characters are decoded too.

**Runs.** Digit groups with a separator of at most five spaces and
punctuation marks between them (space, dash, dot, slash, comma, underscore,
colon, `` - ``...) form a run; letters and line breaks end it. A card number is
a stretch of consecutive groups of a run (or a run's last group without the 3-
or 4-digit security code typed straight after it) of 13 to 19 digits passing
the Luhn check. What keeps ordinary text passing:

* no card number starts with 0: national (``06 12 34 56 78``) and international
  (``0044 20...``) phone prefixes do;
* a number written after ``+`` with at most 15 digits is an international phone
  number (E.164 allows no more), not a card;
* a card number is typed in equal groups (``4111 1111 1111 1111``,
  ``41 11 11 ...``; the last may be shorter or hold the security code) or in a
  card's own grouping (4 digits; American Express 4-6-5); where separators are
  mixed (``12/05/2026 75011``, phone numbers listed as
  ``06 12 34 56 78, 06 98 76 54 32``) or a comma or semicolon (list
  punctuation) separates the groups, only a card's own grouping is read as one
  number;
* dates with a four-digit year (``2026-12-05``, ``05/12/2026``) and times
  (``14:30:00``) are never part of a number;
* no group of more than 8 digits is joined to another (identifiers such as
  ``1733412345.1234``);
* hexadecimal identifiers (UUIDs, digests, provider ids) are not read as
  numbers.

**Two fields.** A number typed across two adjacent text fields of one body
(first and last name, address and city), each holding only its part, is found
in their concatenation (joined as typed, with a space, or with the separator
the parts use).

Besides card numbers, a security code next to its name (``CVV 123``,
``cryptogramme 321``) and an expiry date next to expiry wording
(``exp 12/28``) are card data.

A refusal is ``422 {code: "card_number", message, field}``: it names the field
(``time_slots.0.name``; ``skills.<key>`` for a key; ``first_name+last_name`` for
a number split across two fields) and never contains the value.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, model_validator

from app.errors import Invalid
from app.i18n import N_

MIN_DIGITS, MAX_DIGITS = 13, 19
CODE = "card_number"
MESSAGE = N_(
    "this looks like payment card data: card details are never taken by phone,"
    " typed or stored (the donor pays on the website with the pledge reference)"
)
# The same, naming where (message ids of their own: a translation words them whole).
MESSAGE_ON_LINE = N_(
    "this looks like payment card data: card details are never taken by phone,"
    " typed or stored (the donor pays on the website with the pledge reference) (line {line})"
)
MESSAGE_SPLIT = N_(
    "this looks like payment card data: card details are never taken by phone,"
    " typed or stored (the donor pays on the website with the pledge reference);"
    " it is split across {first} and {second}"
)

# Phone numbers written after "+" have at most 15 digits (E.164).
_E164_MAX = 15
# Longest group joined to another: longer ones are identifiers, not typed groups.
_MAX_JOINED_GROUP = 8

# --- normalisation ---------------------------------------------------------------

# Invisible characters that are not format characters (Cf): Hangul fillers,
# braille blank, combining grapheme joiner (Mn, dropped with the other marks).
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_DROPPED_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Cc", "Co", "Cs", "Cn"})
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# ASCII text needs no Unicode work: tabs become spaces, other breaks newlines, the
# other control characters go.
_ASCII = {
    **{c: None for c in range(32) if chr(c) not in "\t\n\r\v\f\x1c\x1d\x1e"},
    ord("\t"): " ",
    **{ord(c): "\n" for c in "\r\v\f\x1c\x1d\x1e"},
    127: None,
}
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


class Normalised:
    """Text in the guard's one form, with where each character came from."""

    __slots__ = ("ends", "starts", "text")

    def __init__(self, text: str, starts: list[int] | None, ends: list[int] | None) -> None:
        self.text = text
        # None: the same positions as the original (nothing added or removed).
        self.starts = starts
        self.ends = ends

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of normalised characters ``start..end``."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


@functools.lru_cache(maxsize=4096)
def _normal_char(char: str) -> str:
    """One non-ASCII character in the guard's form ("" when it is invisible)."""
    if char in _LINE_BREAKS:
        return "\n"
    if char.isspace():
        return " "
    if char in _INVISIBLE or unicodedata.category(char) in _DROPPED_CATEGORIES:
        return ""
    out = []
    for part in unicodedata.normalize("NFKC", char):
        if part.isascii():
            out.append(part)
            continue
        digit = unicodedata.digit(part, None)
        if digit is not None:
            out.append(str(digit))
        elif part.isspace():
            out.append(" ")
        elif unicodedata.category(part) not in _DROPPED_CATEGORIES:
            out.append(part)
    return "".join(out)


def _normal_char_any(char: str) -> str:
    return char.translate(_ASCII) if char.isascii() else _normal_char(char)


class _NormalTable(dict[int, str]):
    """Every character's normal form, for ``str.translate``: filled as characters are
    met (a volunteer's accented letters), so a text of known characters is put in
    one form by one C call instead of a Python call per character."""

    def __missing__(self, code: int) -> str:
        value = _normal_char_any(chr(code))
        if len(self) < _NORMAL_TABLE_MAX:  # a flood of distinct characters stays bounded
            self[code] = value
        return value


_NORMAL_TABLE_MAX = 8192
_NORMAL = _NormalTable()


def normalise(text: str, *, percent_encoded: bool = False) -> Normalised:
    """``text`` with digits in ASCII, invisible characters dropped, spaces plain.

    ``percent_encoded`` (log lines: request paths and query strings) decodes
    ``%XX`` sequences too.
    """
    if text.isascii() and not (percent_encoded and "%" in text):
        translated = text.translate(_ASCII)
        if len(translated) == len(text):  # nothing dropped: the positions hold
            return Normalised(translated, None, None)
    return _normalise_slow(text, percent_encoded=percent_encoded)


def _normalise_slow(text: str, *, percent_encoded: bool) -> Normalised:
    if not (percent_encoded and "%" in text):
        normal = text.translate(_NORMAL)
        # Positions hold when every character stays one character (the usual
        # accented letter); only then is the translated text enough.
        if all(len(_NORMAL[ord(char)]) == 1 for char in set(text)):
            return Normalised(normal, None, None)
        pieces = list(map(_normal_char_any, text))
        starts = [i for i, piece in enumerate(pieces) for _ in piece]
        return Normalised(normal, starts, [i + 1 for i in starts])
    chars: list[str] = []
    starts = []
    ends: list[int] = []
    index, length = 0, len(text)
    while index < length:
        match = _PERCENT_RUN.match(text, index) if text[index] == "%" else None
        if match:
            decoded = bytes.fromhex(match.group().replace("%", "")).decode("utf-8", "replace")
            value, end = "".join(map(_normal_char_any, decoded)), match.end()
        else:
            value, end = _normal_char_any(text[index]), index + 1
        for char in value:
            chars.append(char)
            starts.append(index)
            ends.append(end)
        index = end
    return Normalised("".join(chars), starts, ends)


# --- finding card numbers in normalised text ---------------------------------------

# A separator: up to five spaces and punctuation marks (underscore included);
# never a letter or a line break.
_PUNCT = r"(?:[^\w\s]|_)"
_SEPARATOR = rf"(?: |{_PUNCT}){{1,5}}"
_RUN = re.compile(rf"[0-9]+(?:{_SEPARATOR}[0-9]+)*")
_GROUP = re.compile(r"[0-9]+")
_LIST_MARKS = frozenset(",;")
# Identifiers: UUIDs, and hexadecimal tokens of 16+ characters whose letters and
# digits alternate (digests, provider ids), unlike a word typed next to a number.
# A token of 32+ characters with a letter is one whatever its stretches: a UUID
# written without dashes can hold one letter pair between two long digit runs
# ("0438034002454ca39910161821721682", an event id a platform sent).
_UUID = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"(?![0-9A-Za-z])"
)
_HEX_TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{16,}(?![0-9A-Za-z])")
_STRETCHES = re.compile(r"[0-9]+|[A-Fa-f]+")
_LONG_IDENTIFIER = 32
# Dates with a four-digit year (19xx, 20xx) and times: never part of a card number
# (whose groups are not 4-2-2 or 2-2-4), often next to other numbers.
_DAY, _MONTH, _YEAR = r"(?:0?[1-9]|[12][0-9]|3[01])", r"(?:0?[1-9]|1[0-2])", r"(?:19|20)[0-9]{2}"
_DATE_OR_TIME = re.compile(
    r"(?<![0-9])(?<![0-9][-/.:])"
    rf"(?:{_YEAR}([-/.]){_MONTH}\1{_DAY}|{_DAY}([-/.]){_MONTH}\2{_YEAR}"
    r"|(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]{1,6})?)?)"
    r"(?![0-9])(?![-/.:][0-9])"
)


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


def _blank(match: re.Match[str]) -> str:
    return "x" * len(match.group())


def _blank_identifier(match: re.Match[str]) -> str:
    token = match.group()
    if len(token) >= _LONG_IDENTIFIER and not token.isdigit():
        return "x" * len(token)
    stretches = _STRETCHES.findall(token)
    letters = sum(1 for s in stretches if not s[0].isdigit())
    if letters >= 2 and len(stretches) - letters >= 2:
        return "x" * len(token)
    return token


def _without_identifiers(text: str) -> str:
    """``text`` with identifiers, dates and times blanked out (same length: positions
    hold)."""
    if "-" in text:
        text = _UUID.sub(_blank, text)
    text = _DATE_OR_TIME.sub(_blank, text)
    return _HEX_TOKEN.sub(_blank_identifier, text)


def _window_allowed(groups: Sequence[str], kinds: set[str]) -> bool:
    """May these consecutive groups, with these separator kinds, be one card number?"""
    if len(groups) == 1:
        return True
    if any(len(g) > _MAX_JOINED_GROUP for g in groups):
        return False
    sizes = [len(g) for g in groups[:-1]]  # the last may hold a security code
    card_grouping = all(size == 4 for size in sizes) or sizes == [4, 6]  # Amex 4-6-5
    if len(kinds) > 1:  # mixed separators: a card's own grouping only
        return card_grouping and not any("+" in kind for kind in kinds)
    if _LIST_MARKS & set(next(iter(kinds))):  # a list: a card's own grouping only
        return card_grouping
    return card_grouping or len(set(sizes)) == 1  # typed in equal groups


def _phone_extents(
    text: str, positions: Sequence[tuple[int, int]], groups: Sequence[str]
) -> list[tuple[int, int]]:
    """Groups (first, last) of international phone numbers: from ``+``, ``00`` or ``011``,
    as many groups as hold at most 15 digits (E.164 allows no more)."""
    extents = []
    for first, group in enumerate(groups):
        begins = positions[first][0]
        if begins > 0 and text[begins - 1] == "+":
            counted_from, digits = first, 0
        elif group.startswith("00"):
            counted_from, digits = first + 1, len(group) - 2
        elif group == "011":  # the North American international prefix
            counted_from, digits = first + 1, 0
        else:
            continue
        last = first if counted_from > first else first - 1
        for index in range(counted_from, len(groups)):
            digits += len(groups[index])
            if digits > _E164_MAX:
                break
            last = index
        if last >= first:
            extents.append((first, last))
    return extents


def _run_has_card(text: str, start: int, end: int) -> bool:
    positions = [(m.start(), m.end()) for m in _GROUP.finditer(text, start, end)]
    groups = [text[a:b] for a, b in positions]
    kinds = [
        text[positions[k][1] : positions[k + 1][0]].replace(" ", "")
        for k in range(len(positions) - 1)
    ]
    phones = _phone_extents(text, positions, groups)
    remaining = sum(len(g) for g in groups)
    for first in range(len(groups)):
        if first:
            remaining -= len(groups[first - 1])
        if remaining < MIN_DIGITS:
            break
        if groups[first][0] == "0":
            continue  # no card number starts with 0; phone prefixes do
        joined = ""
        seen: set[str] = set()
        for last in range(first, len(groups)):
            if last > first:
                seen.add(kinds[last - 1])
            joined += groups[last]
            if len(joined) > MAX_DIGITS + 4:
                break
            if len(joined) < MIN_DIGITS:
                continue
            if not _window_allowed(groups[first : last + 1], seen):
                continue
            if any(a <= first and last <= b for a, b in phones):
                continue  # within an international phone number
            candidates = [joined] if MIN_DIGITS <= len(joined) <= MAX_DIGITS else []
            if len(groups[last]) >= 5:
                # A security code typed straight after the number.
                candidates += [
                    joined[:-code] for code in (3, 4) if 14 <= len(joined) - code <= MAX_DIGITS
                ]
            if any(luhn_valid(candidate) for candidate in candidates):
                return True
    return False


def _digits_in(normalised: str) -> int:
    """How many digits a normalised text holds (all ASCII by then)."""
    return sum(map(normalised.count, "0123456789"))


def card_runs_in(normalised: str) -> Iterator[tuple[int, int]]:
    """Spans (in the normalised text) of the digit runs that hold a card number."""
    if _digits_in(normalised) < MIN_DIGITS:
        return  # too few digits for any card number: most fields of a form
    text = _without_identifiers(normalised)
    for match in _RUN.finditer(text):
        if match.end() - match.start() < MIN_DIGITS:
            continue
        if sum(map(str.isdigit, match.group())) >= MIN_DIGITS and _run_has_card(
            text, match.start(), match.end()
        ):
            yield match.start(), match.end()


def card_spans(text: str, *, percent_encoded: bool = False) -> list[tuple[int, int]]:
    """Spans of ``text`` (its own positions) holding a card number."""
    if not any(map(str.isdigit, text)) and not (percent_encoded and "%" in text):
        return []
    normal = normalise(text, percent_encoded=percent_encoded)
    return [normal.span(a, b) for a, b in card_runs_in(normal.text)]


def _has_card_number(normal: str) -> bool:
    return next(card_runs_in(normal), None) is not None


def has_card_number(text: str) -> bool:
    if not any(map(str.isdigit, text)):
        return False
    return _has_card_number(normalise(text).text)


def luhn_runs(text: str) -> Iterator[str]:
    """The digits of each run of ``text`` holding a card number."""
    normal = normalise(text).text
    for start, end in card_runs_in(normal):
        yield "".join(_GROUP.findall(normal, start, end))


# --- security codes and expiry dates ------------------------------------------------

# A security code (3 or 4 digits) next to its name, and an expiry date (MM/YY)
# next to expiry wording. Plain "card" or "Visa" next to a number is no card data
# ("a thank-you card for gifts over 150 €"); the last four digits of a card are
# not secret either.
_CODE_WORDS = re.compile(
    r"\b(?:cvv2?|cvc2?|cvn|csc|crypto(?:gramme)?|card\s+verification|security\s+code|"
    r"code\s+(?:de\s+s[ée]curit[ée]|au\s+dos))\b",
    re.IGNORECASE,
)
_EXPIRY_WORDS = re.compile(
    r"\b(?:expir\w*|exp|valid\s+(?:thru|until)|date\s+de\s+validit[ée])\b", re.IGNORECASE
)
_EXPIRY = r"(?:0[1-9]|1[0-2]) ?/ ?(?:[0-9]{2}|20[0-9]{2})"
_SECURITY_CODE = re.compile(rf"(?<![0-9/])(?:[0-9]{{3,4}}|{_EXPIRY})(?![0-9/])")
_EXPIRY_DATE = re.compile(rf"(?<![0-9/]){_EXPIRY}(?![0-9/])")
# Pledge references (K7Q-4M2) may spell a word (EXP-789, CVV-R3C): not wording.
_REFERENCE = re.compile(
    r"(?<![\w-])[A-HJKMNP-TV-Z2-9]{3}-[A-HJKMNP-TV-Z2-9]{3}(?![\w-])", re.IGNORECASE
)
# How close (characters) the value must be to the wording.
_NEAR = 40


def _near(words: re.Pattern[str], values: re.Pattern[str], text: str) -> bool:
    for word in words.finditer(text):
        start = max(0, word.start() - _NEAR)
        end = min(len(text), word.end() + _NEAR)
        if values.search(text, start, end):
            return True
    return False


def _has_security_code(normal: str) -> bool:
    if not (_CODE_WORDS.search(normal) or _EXPIRY_WORDS.search(normal)):
        return False  # no wording (blanking references below only removes some)
    normal = _REFERENCE.sub(_blank, normal)
    return _near(_CODE_WORDS, _SECURITY_CODE, normal) or _near(_EXPIRY_WORDS, _EXPIRY_DATE, normal)


def has_security_code_near_card_words(text: str) -> bool:
    """A security code or an expiry date next to its name (``CVV 123``, ``exp 12/28``)."""
    if not any(map(str.isdigit, text)):
        return False
    return _has_security_code(normalise(text).text)


def looks_like_card_data(text: str) -> bool:
    if not any(map(str.isdigit, text)):
        return False
    normal = normalise(text).text
    return _has_card_number(normal) or _has_security_code(normal)


# --- request bodies -------------------------------------------------------------------


class CardDataRefused(Invalid):
    code = CODE


def _line_of(text: str) -> int | None:
    """Where the card data is in a text of several lines (a rules file): its line."""
    if "\n" not in text.strip():
        return None
    normal = normalise(text)
    for start, end in card_runs_in(normal.text):
        return text.count("\n", 0, normal.span(start, end)[0]) + 1
    return None


def _scalar_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a number sent as a JSON number is stored just the same
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_NUMBER_PART = re.compile(rf"{_PUNCT}*\s*([0-9]+(?:{_SEPARATOR}[0-9]+)*)\s*{_PUNCT}*")
_INNER_SEPARATOR = re.compile(r"[0-9]([^0-9]+)[0-9]")


def _number_part(text: str) -> str | None:
    """The digits (with their separators) of a value that holds nothing else: a part
    of a number typed across two fields. None for anything with words."""
    match = _NUMBER_PART.fullmatch(normalise(text).text.strip())
    return match.group(1) if match else None


def is_split_card_number(first: str, second: str) -> bool:
    """Is a card number typed across these two values, each holding only its part
    (split inside a group, or between two groups: then joined with the separator
    the parts use)?"""
    if first.lstrip().startswith("+") or second.lstrip().startswith("+"):
        return False  # phone numbers
    left = _number_part(first)
    if left is None or left[0] == "0":
        return False  # no card number starts with 0
    right = _number_part(second)
    if right is None or _digits_in(left) + _digits_in(right) < MIN_DIGITS:
        return False
    joints = {"", " "}
    for part in (left, right):
        inner = _INNER_SEPARATOR.search(part)
        if inner:
            joints.add(inner.group(1))
    return any(_has_card_number(left + joint + right) for joint in joints)


def find_card_data(value: object, path: str = "", *, pairs: bool = True) -> CardDataRefused | None:
    """The refusal for the first card data anywhere in ``value`` (a parsed JSON body:
    strings, numbers, keys, nested objects and lists), or None.

    With ``pairs``, a number split across two adjacent text values of one object
    or list is found too (a person typing into a form); the refusal then names
    both (``first_name+last_name``).
    """
    text = _scalar_text(value)
    if text is not None:
        if text and looks_like_card_data(text):
            line = _line_of(text)
            if line is not None:
                return CardDataRefused(MESSAGE_ON_LINE, field=path or None, line=line)
            return CardDataRefused(MESSAGE, field=path or None)
        return None
    items: list[tuple[str, object]]
    if isinstance(value, Mapping):
        for key in value:
            if isinstance(key, str) and looks_like_card_data(key):
                return CardDataRefused(MESSAGE, field=_join(path, "<key>"))
        items = [(_join(path, str(k)), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(_join(path, str(n)), v) for n, v in enumerate(value)]
    else:
        return None
    for name, item in items:
        refused = find_card_data(item, name, pairs=pairs)
        if refused is not None:
            return refused
    if not pairs:
        return None
    for (name_a, a), (name_b, b) in itertools.pairwise(items):
        if isinstance(a, str) and isinstance(b, str) and is_split_card_number(a, b):
            return CardDataRefused(
                MESSAGE_SPLIT, field=f"{name_a}+{name_b}", first=name_a, second=name_b
            )
    return None


def check_value(value: object, path: str = "", *, pairs: bool = True) -> None:
    """Raise :class:`CardDataRefused` (422) for the first card data in ``value``."""
    refused = find_card_data(value, path, pairs=pairs)
    if refused is not None:
        raise refused


def check_fields(fields: Mapping[str, object]) -> None:
    """Refuse (422, naming the field, never the value) the first field holding card data.

    Field by field: ``fields`` is often a selection (the pledge's text fields, a
    body's strings), whose neighbours were not neighbours in the form; numbers
    split across two fields are the body models' check (:class:`CardGuarded`).
    """
    check_value(fields, pairs=False)


class CardGuarded(BaseModel):
    """Base of every request body: card data anywhere in the raw input is refused
    with :class:`CardDataRefused` before any field is validated, so the refusal is
    the same whatever else is wrong with the value (too long, unknown field).

    Bodies that machines write (telephony events) set ``card_guard_pairs`` False:
    their fields are checked one by one, not joined (an identifier next to a
    caller number is no card split across two form fields).
    """

    card_guard_pairs: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _no_card_data(cls, data: Any) -> Any:
        # Not a ValueError: pydantic lets it through, and the error handler answers
        # {code: "card_number", message, field} (a validation error would echo).
        check_value(data, pairs=cls.card_guard_pairs)
        return data

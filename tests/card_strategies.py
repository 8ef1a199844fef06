"""Hypothesis strategies for the card-guard tests: card numbers written every way
people (and the guard's auditors) write them, and ordinary text that must pass.

Card numbers are Luhn-valid, 13 to 19 digits, starting with 1-9 (no card
number starts with 0), in random scripts, grouped as people group them (none,
fours, American Express 4-6-5, pairs, two halves), with random separators and
random invisible characters anywhere. Ordinary text is phone numbers of every
region in every format (from ``phonenumbers``' own metadata), postcodes, pledge
references, dates, times, amounts and words.

``examples(strategy, n)`` draws ``n`` values deterministically, for the tests
that run the real app (async, with fixtures) and loop over examples.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any, TypeVar

import phonenumbers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.pledges.service import REFERENCE_ALPHABET

T = TypeVar("T")

# The zero of each script's digits (the others follow it).
DIGIT_SCRIPTS = [
    0x30,  # ASCII
    0x660,  # Arabic-Indic
    0x6F0,  # Persian (extended Arabic-Indic)
    0x966,  # Devanagari
    0x9E6,  # Bengali
    0xE50,  # Thai
    0xFF10,  # full-width
    0x1D7CE,  # mathematical bold
    0x1D7D8,  # mathematical double-struck
    0x1D7EC,  # mathematical sans-serif bold
    0x1D7F6,  # mathematical monospace
]
SEPARATORS = [
    " ",
    "-",
    ".",
    "/",
    "_",
    ":",
    " - ",
    " / ",
    " . ",
    "  ",
    "\t",
    "\u00a0",
    "\u2009",
    "\u202f",
    "\u2013",
    " \u2014 ",
    "(",
    ")",
    "*",
    "|",
    "\\",
]
# List punctuation: the guard reads it between a card's own groups only.
LIST_SEPARATORS = [",", ", ", ";", " ; "]
INVISIBLE = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u00ad",
    "\u2060",
    "\ufeff",
    "\u200e",
    "\u200f",
    "\u202a",
    "\u202c",
    "\u2066",
    "\u2069",
    "\u180e",
    "\u061c",
    "\u3164",
]
WORDS = [
    "donateur",
    "appeler",
    "merci",
    "pour",
    "le",
    "don",
    "mensuel",
    "rue",
    "avenue",
    "Marie",
    "Curie",
    "Paris",
    "Lyon",
    "note",
    "soir",
    "matin",
    "thanks",
    "call",
    "back",
    "after",
    "école",
    "Ōsaka",
    "München",
    "Zürich",
    "Jean-Luc",
    "O'Brien",
]


def luhn_digit(body: str) -> str:
    """The check digit that makes ``body`` + it Luhn-valid."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


@st.composite
def card_digits(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    first = draw(st.sampled_from("123456789"))
    body = first + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=length - 2, max_size=length - 2))
    )
    return body + luhn_digit(body)


def _groups(digits: str, kind: str) -> list[str]:
    if kind == "fours":
        return [digits[i : i + 4] for i in range(0, len(digits), 4)]
    if kind == "amex":
        return [digits[:4], digits[4:10], digits[10:]]
    if kind == "pairs":
        return [digits[i : i + 2] for i in range(0, len(digits), 2)]
    if kind == "halves":
        half = (len(digits) + 1) // 2
        return [digits[:half], digits[half:]]
    return [digits]


@st.composite
def written_card(draw: st.DrawFn, digits: str | None = None) -> tuple[str, str]:
    """(the digits, the number as typed): grouped, separated, in some script, with
    invisible characters."""
    digits = digits or draw(card_digits())
    kinds = ["none", "fours", "pairs"]
    if len(digits) == 15:
        kinds.append("amex")
    if len(digits) <= 16:
        kinds.append("halves")  # halves of at most 8 digits
    kind = draw(st.sampled_from(kinds))
    groups = _groups(digits, kind)
    if kind == "fours" or kind == "amex":
        # A card's own grouping: separators may be mixed, list punctuation too.
        separators = draw(
            st.lists(
                st.sampled_from(SEPARATORS + LIST_SEPARATORS),
                min_size=len(groups) - 1,
                max_size=len(groups) - 1,
            )
        )
    else:
        separators = [draw(st.sampled_from(SEPARATORS))] * (len(groups) - 1)
    text = groups[0] + "".join(
        sep + group for sep, group in zip(separators, groups[1:], strict=True)
    )
    scripts = draw(st.lists(st.sampled_from(DIGIT_SCRIPTS), min_size=1, max_size=3))
    chars = [chr(draw(st.sampled_from(scripts)) + int(c)) if c.isdigit() else c for c in text]
    for _ in range(draw(st.integers(0, 4))):
        chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(INVISIBLE)))
    return digits, "".join(chars)


@st.composite
def card_in_text(draw: st.DrawFn) -> tuple[str, str]:
    """(the digits, a text holding the typed number, maybe with its security code)."""
    digits, typed = draw(written_card())
    before = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=3)))
    after = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=3)))
    if draw(st.booleans()):
        typed += " " + "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=3, max_size=3))
        )
    text = f"{before}{' ' if before else ''}{typed}{' ' if after else ''}{after}"
    return digits, text


@st.composite
def split_card(draw: st.DrawFn) -> tuple[str, str, str]:
    """(the digits, the first part, the second part): a number typed across two fields."""
    digits, typed = draw(written_card())
    positions = [
        i
        for i in range(1, len(typed))
        if any(c.isdigit() for c in typed[:i]) and any(c.isdigit() for c in typed[i:])
    ]
    cut = draw(st.sampled_from(positions))
    return digits, typed[:cut], typed[cut:]


# --- ordinary text ------------------------------------------------------------------

_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
_PHONE_TYPES = [
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
]


@st.composite
def phone_number(draw: st.DrawFn) -> str:
    """A valid phone number of any region, in any format people write."""
    region = draw(st.sampled_from(_REGIONS))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(_PHONE_TYPES)))
    if example is None:
        example = phonenumbers.example_number(region) or phonenumbers.parse("+33612345678")
    number = example
    national = str(example.national_number)
    keep = draw(st.integers(max(1, len(national) - 6), len(national)))
    tail = "".join(
        draw(
            st.lists(
                st.sampled_from("0123456789"),
                min_size=len(national) - keep,
                max_size=len(national) - keep,
            )
        )
    )
    candidate = phonenumbers.PhoneNumber(
        country_code=example.country_code, national_number=int(national[:keep] + tail)
    )
    if phonenumbers.is_valid_number(candidate):
        number = candidate
    style = draw(st.sampled_from(["e164", "international", "national", "rfc3966", "abroad"]))
    if style == "abroad":
        return phonenumbers.format_out_of_country_calling_number(
            number, draw(st.sampled_from(["FR", "US", "GB", "DE", "CN", "BR"]))
        )
    formats = {
        "e164": phonenumbers.PhoneNumberFormat.E164,
        "international": phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        "national": phonenumbers.PhoneNumberFormat.NATIONAL,
        "rfc3966": phonenumbers.PhoneNumberFormat.RFC3966,
    }
    return phonenumbers.format_number(number, formats[style])


@st.composite
def date_or_time(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(dt.datetime(1930, 1, 1), dt.datetime(2060, 12, 31)))
    pattern = draw(
        st.sampled_from(
            [
                "%d/%m/%Y",
                "%Y-%m-%d",
                "%d.%m.%Y",
                "%d-%m-%Y",
                "%d/%m/%y",
                "%Y-%m-%d %H:%M:%S",
                "%d/%m/%Y %H:%M",
                "%H:%M",
                "%H:%M:%S",
                "%Y-%m-%dT%H:%M:%SZ",
                "%d %B %Y",
                "%A %d %B %Y, %Hh%M",
                "%m/%y",
            ]
        )
    )
    return moment.strftime(pattern)


@st.composite
def amount(draw: st.DrawFn) -> str:
    minor = draw(st.integers(1, 10**9))
    major = minor // 100
    return draw(
        st.sampled_from(
            [
                f"{major},{minor % 100:02d} €",
                f"{major:,} EUR".replace(",", " "),
                f"€{major:,}.{minor % 100:02d}",
                f"{major} €",
                f"{minor / 100:.2f}",
                f"£{major:,}",
            ]
        )
    )


@st.composite
def postcode(draw: st.DrawFn) -> str:
    n = draw(st.integers(0, 99999))
    return draw(
        st.sampled_from(
            [
                f"{n:05d}",
                f"{n % 10000:04d}",
                f"SW1A {n % 10}AA",
                f"{n:05d}-{n % 1000:03d}",
                f"{n % 1000:03d} {n % 100:02d}",
                f"H{n % 10}A {n % 10}B{n % 10}",
            ]
        )
    )


@st.composite
def pledge_reference(draw: st.DrawFn) -> str:
    chars = "".join(draw(st.lists(st.sampled_from(REFERENCE_ALPHABET), min_size=6, max_size=6)))
    return f"{chars[:3]}-{chars[3:]}"


def ordinary_value() -> st.SearchStrategy[str]:
    return st.one_of(
        phone_number(),
        date_or_time(),
        amount(),
        postcode(),
        pledge_reference(),
        st.sampled_from(WORDS),
        st.integers(0, 10**6).map(str),
    )


@st.composite
def ordinary_text(draw: st.DrawFn) -> str:
    """A note as a volunteer writes one: values and words, with words between them."""
    parts = draw(st.lists(ordinary_value(), min_size=1, max_size=5))
    parts.insert(draw(st.integers(0, len(parts))), draw(st.sampled_from(WORDS)))
    joints = draw(
        st.lists(
            st.sampled_from([" et ", " ou ", ", tel ", " puis le ", "\n", ". Rappeler ", " — "]),
            min_size=len(parts),
            max_size=len(parts),
        )
    )
    text = "".join(p + j for p, j in zip(parts, joints, strict=True)).strip()
    return unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD"])), text)


@st.composite
def ordinary_pledge(draw: st.DrawFn) -> dict[str, Any]:
    """The text fields of a pledge form, ordinary values in each (adjacent fields)."""
    return {
        "first_name": draw(st.sampled_from(WORDS)),
        "last_name": draw(st.sampled_from(WORDS)),
        "address": f"{draw(st.integers(1, 300))} rue {draw(st.sampled_from(WORDS))}",
        "postcode": draw(postcode()),
        "city": draw(st.sampled_from(WORDS)),
        "country": "FR",
        "email": f"{draw(st.sampled_from(WORDS)).lower()}{draw(st.integers(0, 99))}@example.org",
        "phone": draw(phone_number()),
        "note": draw(ordinary_text()),
    }


def examples(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` values of ``strategy``, the same ones on every run."""
    found: list[T] = []

    @settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        found.append(value)

    collect()
    return found[:count]

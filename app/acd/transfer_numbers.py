"""The outside numbers a campaign's volunteers may transfer a caller to.

A campaign lists them in ``transfer_numbers``; each entry is either

- an exact number, in E.164 (``+33142000000``) or in the campaign's national form
  (``01 42 00 00 00``), stored in E.164; or
- a pattern: an E.164 prefix followed by ``*`` (``+3314*``: every number starting
  with +3314; spaces allowed, ``+33 1 4*``).

An empty list (the default) allows no transfer out at all. A premium-rate or other
special number (``app/special_numbers.py``) is refused even when a pattern covers
it: only an exact entry for that very number allows it. A refused transfer is
``422 transfer_number_not_allowed`` on ``number`` and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.errors import Invalid
from app.phone_numbers import normalise
from app.special_numbers import short_number, special_kind

_PATTERN = re.compile(r"\+[1-9][0-9]{0,14}\*")
NOT_ALLOWED = "transfer_number_not_allowed"


def is_pattern(entry: str) -> bool:
    return entry.endswith("*")


def parse_entries(entries: Sequence[str], region: str) -> list[str]:
    """The entries as stored: exact numbers in E.164, patterns without spaces, each once."""
    out: list[str] = []
    for index, raw in enumerate(entries):
        field = f"transfer_numbers.{index}"
        text = raw.strip()
        if is_pattern(text):
            entry = re.sub(r"[\s.\-]", "", text)
            if not _PATTERN.fullmatch(entry):
                raise Invalid(
                    "a pattern is an E.164 prefix followed by *, e.g. +3314*", field=field
                )
        elif short_number(text):
            raise Invalid(
                "a short number (3xxx, 118xxx, 10xx) cannot be reached from outside,"
                " so a call cannot be transferred to it",
                field=field,
            )
        else:
            number = normalise(text, region)
            if number.e164 is None:
                raise Invalid(
                    "not a valid phone number (give +33142000000, 01 42 00 00 00 or +3314*)",
                    field=field,
                )
            entry = number.e164
        if entry not in out:
            out.append(entry)
    return out


def check(number: str, entries: Sequence[str], region: str) -> str:
    """The E.164 number to transfer to, or ``Invalid`` when the campaign does not allow it."""
    e164 = normalise(number, region).e164
    if e164 is None:
        raise Invalid("not a valid phone number", code=NOT_ALLOWED, field="number")
    if e164 in entries:
        return e164  # listed exactly: allowed, even a premium-rate number
    kind = special_kind(e164)
    if kind is not None:
        raise Invalid(
            "a {kind} cannot be a transfer target unless the campaign lists it exactly",
            code=NOT_ALLOWED,
            field="number",
            kind=kind,
        )
    if any(is_pattern(entry) and e164.startswith(entry[:-1]) for entry in entries):
        return e164
    raise Invalid(
        "this campaign does not allow transfers to this number", code=NOT_ALLOWED, field="number"
    )

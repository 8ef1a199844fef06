"""Caller numbers to E.164, with the reason when there is no usable number."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

# What platforms send for a number the caller chose to hide.
_WITHHELD = {"", "anonymous", "withheld", "private", "restricted", "unknown", "unavailable"}


@dataclass(frozen=True)
class CallerNumber:
    e164: str | None
    issue: str | None  # withheld | invalid, when e164 is None


def normalise(raw: str | None, default_region: str) -> CallerNumber:
    text = (raw or "").strip()
    if text.lower() in _WITHHELD:
        return CallerNumber(None, "withheld")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return CallerNumber(None, "invalid")
    if not phonenumbers.is_valid_number(parsed):
        return CallerNumber(None, "invalid")
    return CallerNumber(
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None
    )

"""Caller numbers to E.164, with the reason when there is no usable number."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

# What platforms send for a number the caller chose to hide.
_WITHHELD = {"", "anonymous", "withheld", "private", "restricted", "unknown", "unavailable"}


# Regions dialled with the same national prefix as a campaign's own: a French
# campaign hears callers from Réunion or Guadeloupe as "0262…" or "0590…", numbers
# that are valid only in their own region. Tried in this order after the default.
_SHARED_NUMBERING = {
    "FR": ("RE", "YT", "GP", "BL", "MF", "MQ", "GF", "PM"),
}


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
    regions: tuple[str, ...] = (default_region,)
    if not text.startswith("+"):
        regions += _SHARED_NUMBERING.get(default_region.upper(), ())
    for region in regions:
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            return CallerNumber(None, "invalid")
        if phonenumbers.is_valid_number(parsed):
            return CallerNumber(
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None
            )
    return CallerNumber(None, "invalid")

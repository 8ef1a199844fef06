"""The card-number guard of the pledges: the shared guard of ``app/cardguard.py``.

It lives at the app root because every request body and every log line goes
through it, not only the pledge's; this module keeps the pledge code's imports.
"""

from __future__ import annotations

from app.cardguard import (
    MAX_DIGITS,
    MIN_DIGITS,
    CardDataRefused,
    check_fields,
    has_card_number,
    has_security_code_near_card_words,
    looks_like_card_data,
    luhn_runs,
    luhn_valid,
)

__all__ = [
    "MAX_DIGITS",
    "MIN_DIGITS",
    "CardDataRefused",
    "check_fields",
    "has_card_number",
    "has_security_code_near_card_words",
    "looks_like_card_data",
    "luhn_runs",
    "luhn_valid",
]

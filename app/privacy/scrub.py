"""Removing personal data from values: pseudonyms for numbers, blanks for the rest.

Pure functions, no I/O: the purge (``retention``) and the erasure (``erasure``)
decide which rows; these decide what each value becomes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

import phonenumbers

ERASED = "[erased]"
# Every pseudonym starts so: a pseudonymised row is never pseudonymised twice, and
# a reader can tell it from a number. 2 + 20 characters fit every number column.
PSEUDONYM_PREFIX = "p:"

# Keys whose values are about the caller or donor, wherever they are in a JSON
# value of a row that is about them: pledge snapshots (audit before/after),
# screen pops, call events, filled-in scripts, idempotent answers.
PERSONAL_KEYS = frozenset(
    {
        "first_name",
        "last_name",
        "address",
        "address_lines",
        "lines",
        "postcode",
        "city",
        "email",
        "phone",
        "phone_e164",
        "display",
        "caller",
        "caller_raw",
        "caller_number",
        "number",
        "note",
        "text",
        "title",
        "items",
        "label",
        "fields",
        "screen_pop",
        "name",
    }
)

# The donor's details on a pledge and the blanks they become. Amounts, status,
# consents, country and département stay: totals and statistics are built on them.
PLEDGE_PERSONAL_FIELDS: dict[str, Any] = {
    "first_name": "",
    "last_name": "",
    "address": "",
    "postcode": "",
    "city": "",
    "email": "",
    "phone": "",
    "phone_e164": None,
    "caller_number": None,
    "note": "",
}

# Top-level keys of an event payload that carry personal data, and what the
# retention purge leaves of them (``None``: the key is kept, its value dropped).
EVENT_PAYLOAD_KEYS = ("caller", "screen_pop", "fields", "history", "note", "text", "number")


def pseudonym(secret: str, number: str) -> str:
    """A stable stand-in for a phone number: the same number always gives the same
    pseudonym (counts per number stay right), which cannot be turned back into it
    without the key."""
    if number.startswith(PSEUDONYM_PREFIX):
        return number
    digest = hmac.new(secret.encode(), number.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:20]


def phone_forms(e164: str) -> set[str]:
    """The ways a number may have been written: E.164, international and national
    formats, digits only, with dots or dashes."""
    forms = {e164}
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return forms
    for fmt in (
        phonenumbers.PhoneNumberFormat.NATIONAL,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    ):
        written = phonenumbers.format_number(parsed, fmt)
        forms |= {
            written,
            written.replace(" ", ""),
            written.replace(" ", "."),
            written.replace(" ", "-"),
        }
    forms.add(e164.lstrip("+"))
    forms.add("00" + e164.lstrip("+"))
    return {f for f in forms if sum(c.isdigit() for c in f) >= 6}


def json_escaped(text: str) -> str:
    """``text`` as it appears inside a JSON document written with ASCII escapes
    (SQLite's JSON columns): ``é`` as ``\\u00e9``."""
    return json.dumps(text)[1:-1]


def _contains_any(value: str, needles: Iterable[str]) -> bool:
    lowered = value.casefold()
    return any(needle in lowered for needle in needles)


def scrub_text(value: str, needles: Iterable[str]) -> str:
    """``value`` with every occurrence of a needle (any case) replaced by ``[erased]``."""
    needles = sorted({n.casefold() for n in needles if n}, key=len, reverse=True)
    lowered = value.casefold()
    if len(lowered) != len(value):  # case folding changed lengths: blank it whole
        return ERASED if _contains_any(value, needles) else value
    out, i = [], 0
    while i < len(value):
        for needle in needles:
            if lowered.startswith(needle, i):
                out.append(ERASED)
                i += len(needle)
                break
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def scrub_json(value: Any, needles: Iterable[str], keys: frozenset[str] = frozenset()) -> Any:
    """A copy of a JSON value with the values under ``keys`` and every string holding
    a needle (any case) replaced by ``[erased]``; empty values stay empty."""
    folded = [n.casefold() for n in needles if n]

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {
                k: (ERASED if k in keys and item_has_value(v) else walk(v)) for k, v in item.items()
            }
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, str) and folded and _contains_any(item, folded):
            return ERASED
        return item

    return walk(value)


def item_has_value(value: Any) -> bool:
    return value not in (None, "", [], {})


def scrub_event_payload(type: str, data: dict[str, Any], secret: str) -> dict[str, Any]:
    """An event payload without the caller's data (the retention purge): the caller's
    number and screen pop, filled-in texts go; a blocklist number becomes its
    pseudonym (strikes per number still add up) and its typed reason goes; a
    script keeps its name."""
    out = dict(data)
    keys = (*EVENT_PAYLOAD_KEYS, "reason") if type.startswith("number.") else EVENT_PAYLOAD_KEYS
    for key in keys:
        value = out.get(key)
        if not item_has_value(value):
            continue
        if key == "number" and isinstance(value, str):
            out[key] = pseudonym(secret, value)
        else:
            out[key] = None
    script = out.get("script")
    if isinstance(script, dict) and set(script) - {"name", "version"}:
        out["script"] = {"name": script.get("name"), "version": script.get("version")}
    # A screen pop as the whole payload (call.cti_ready): only its status stays.
    if "returning_donor" in out or "cached" in out:
        out = {"status": out.get("status")}
    return out

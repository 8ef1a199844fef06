"""Opening hours in the campaign's own time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def is_open(opening_hours: dict[str, list[list[str]]], timezone: str, now: dt.datetime) -> bool:
    """True when ``now`` falls in one of the day's ``[start, end)`` ranges.

    An empty table means the line is always open (the usual setting during a show).
    """
    if not opening_hours:
        return True
    local = now.astimezone(ZoneInfo(timezone))
    hhmm = local.strftime("%H:%M")
    return any(start <= hhmm < end for start, end in opening_hours.get(DAYS[local.weekday()], []))


def describe(opening_hours: dict[str, list[list[str]]]) -> str:
    """Opening hours as a short sentence for the closed message."""
    parts = []
    for day in DAYS:
        ranges = opening_hours.get(day) or []
        if ranges:
            parts.append(f"{day} " + ", ".join(f"{a}-{b}" for a, b in ranges))
    return "; ".join(parts) if parts else "always open"

"""Caches holding personal data, dropped when a donor is erased.

The erasing process drops its own at once; every other process hears of the
erasure through the event feed (``privacy.erased``) and drops its own then. The
CTI directory cache holds directory answers (names, addresses) by number: it is
emptied whole, since it is only a cache (the next look-ups ask the directory).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EVENT_PREFIX = "privacy.erased"


def drop(state: Any) -> None:
    """Empty the caches of the app whose ``app.state`` this is."""
    lookup = getattr(state, "caller_lookup", None)
    if lookup is not None:
        lookup.directory.cache.clear()


def on_events(state: Any, messages: Iterable[dict[str, Any]]) -> None:
    if any(str(m.get("type", "")).startswith(EVENT_PREFIX) for m in messages):
        drop(state)

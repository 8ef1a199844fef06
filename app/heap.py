"""The cyclic garbage collector of a server process: told once that start-up is over.

A server's requests make almost no cyclic garbage: their objects are freed by
reference counting as each request ends. With Python's defaults the collector
still ran about 40 times a second under load, because 32 requests in flight hold
more than 700 new objects at once, and each of its full collections walked the
whole start-up heap (about 230,000 objects: the routes, the models, the table
definitions, the phone-number metadata). Measured under `pledgeline bench
pledges` (docs/benchmarks.md): 7 to 8 % of a server's CPU spent in collections,
against under 0.1 % once the start-up heap is frozen and a young collection
waits for 10,000 new objects.

Once per process: in-process tests build an app per test, and only the first
start-up's heap is frozen (the others stay collectable).
"""

from __future__ import annotations

import gc

# New objects (allocations less deallocations) before a young collection: above what
# the requests in flight hold at once, so it runs when garbage may have built up.
YOUNG_THRESHOLD = 10_000

_done: list[bool] = []


def settle_after_start() -> None:
    """Freeze what start-up built (collections stop walking it) and let the young
    generation grow to :data:`YOUNG_THRESHOLD`. Only the first call does anything."""
    if _done:
        return
    _done.append(True)
    gc.collect()  # the start-up's own garbage goes first: frozen objects are never collected
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

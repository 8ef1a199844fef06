"""The collector told once that start-up is over (``app/heap.py``)."""

from __future__ import annotations

import gc
import weakref

from app import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_start_up_is_frozen_once_and_later_cycles_are_still_collected() -> None:
    heap.settle_after_start()  # the first call of this process, or a repeat
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    frozen = gc.get_freeze_count()
    assert frozen > 0

    # A later call freezes nothing more: only the first start-up's heap stays for good.
    kept = [_Node() for _ in range(100)]
    heap.settle_after_start()
    assert gc.get_freeze_count() == frozen

    # Garbage made after start-up (a cycle) is still collected.
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
    assert len(kept) == 100

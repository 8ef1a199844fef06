"""The expected-wait formula (app/acd/expected_wait.py, docs/surge.md#expected-wait):
a table of cases, and the announcement's wording of a figure."""

from __future__ import annotations

import pytest

from app.acd.callbacks import wait_prompt
from app.acd.expected_wait import DEFAULT_HANDLE_SECONDS, QueueLoad, estimate_wait_seconds


@pytest.mark.parametrize(
    ("position", "free", "serving", "handle", "expected"),
    [
        (1, 1, 1, 180.0, 0.0),  # a free volunteer takes the next caller at once
        (3, 3, 5, 180.0, 0.0),  # as many free as the callers ahead, and this one
        (4, 3, 5, 180.0, 36.0),  # (4 - 3) * 180 / 5
        (1, 0, 1, 180.0, 180.0),  # one volunteer, busy: one handle time
        (5, 0, 2, 120.0, 300.0),  # (5 - 0) * 120 / 2
        (10, 2, 4, 90.0, 180.0),  # (10 - 2) * 90 / 4
        (1, 0, 0, 180.0, None),  # nobody serving: unknown
        (7, 0, 0, 60.0, None),
        (0, 0, 0, 180.0, 0.0),  # position 0 never happens; k <= f comes first
        (2, 5, 0, 180.0, 0.0),  # more free than the place (f counts free before n)
    ],
)
def test_formula(
    position: int, free: int, serving: int, handle: float, expected: float | None
) -> None:
    assert estimate_wait_seconds(position, free, serving, handle) == expected


def test_the_default_handle_time_is_three_minutes() -> None:
    assert DEFAULT_HANDLE_SECONDS == 180.0


def test_a_queue_load_gives_each_place_its_wait() -> None:
    load = QueueLoad(
        queue_id=1, waiting=3, serving=2, free=0, handle_seconds=100.0, expected_wait_seconds=200.0
    )
    assert [load.wait_at(k) for k in (1, 2, 3, 4)] == [50.0, 100.0, 150.0, 200.0]
    assert load.wait_at(4) == load.expected_wait_seconds  # E(waiting + 1)


@pytest.mark.parametrize(
    ("seconds", "prompt"),
    [
        (None, {"prompt": "expected_wait_unknown"}),
        (0.0, {"prompt": "expected_wait", "seconds": 0, "minutes": 0}),
        (36.0, {"prompt": "expected_wait", "seconds": 36, "minutes": 1}),
        (120.0, {"prompt": "expected_wait", "seconds": 120, "minutes": 2}),
        (120.4, {"prompt": "expected_wait", "seconds": 120, "minutes": 2}),
        (121.0, {"prompt": "expected_wait", "seconds": 121, "minutes": 3}),  # rounded up
    ],
)
def test_the_announcement_says_the_figure_in_seconds_and_whole_minutes(
    seconds: float | None, prompt: dict[str, object]
) -> None:
    assert wait_prompt(seconds) == prompt

"""A staffing plan: the rundown's intervals with their load, seats needed and gap. Pure.

For each 15-minute interval with ``c`` calls expected: the arrival rate is
``λ = c / 900 s``, the offered load ``A = λ·h`` erlangs with ``h`` the handle time
(talk + wrap-up); the seats needed are Erlang C's fewest seats meeting the
service-level target and the maximum average wait (``erlang.seats_needed``); with
the seats scheduled ``S`` (when known) come the expected service level, the
probability of waiting and the average wait on ``S`` seats, and the gap
``needed - S`` (positive: seats missing). Each interval is treated as a steady
state of its own, the usual simplification of interval planning (it ignores the
queue carried from one interval into the next).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.planning import erlang
from app.planning.rundown import INTERVAL_MINUTES, Interval, Segment, clock, intervals

INTERVAL_SECONDS = INTERVAL_MINUTES * 60
DEFAULT_TARGET = 0.80
DEFAULT_THRESHOLD_SECONDS = 20.0


@dataclass(frozen=True)
class Targets:
    """What the plan must meet: ``target`` of callers answered within
    ``threshold_seconds``, and an average wait of at most ``max_average_wait``."""

    target: float = DEFAULT_TARGET
    threshold_seconds: float = DEFAULT_THRESHOLD_SECONDS
    max_average_wait: float | None = None


@dataclass(frozen=True)
class PlannedInterval:
    start: int  # minutes after the show's first midnight
    label: str
    calls: float
    load: float
    seats_needed: int
    scheduled: int | None
    probability_waiting: float | None
    service_level: float | None
    average_wait: float | None  # None: unbounded (load at or over the seats scheduled)
    gap: int | None

    @property
    def start_clock(self) -> str:
        return clock(self.start)

    @property
    def end_clock(self) -> str:
        return clock(self.start + INTERVAL_MINUTES)


@dataclass(frozen=True)
class Plan:
    handle_seconds: float
    targets: Targets
    intervals: list[PlannedInterval]

    @property
    def peak_seats_needed(self) -> int:
        return max((i.seats_needed for i in self.intervals), default=0)

    @property
    def seat_hours_needed(self) -> float:
        return sum(i.seats_needed for i in self.intervals) * INTERVAL_MINUTES / 60

    @property
    def total_calls(self) -> float:
        return sum(i.calls for i in self.intervals)

    @property
    def intervals_short(self) -> int:
        """Intervals where fewer seats are scheduled than needed."""
        return sum(1 for i in self.intervals if i.gap is not None and i.gap > 0)


def scheduled_per_interval(
    planned: Sequence[Interval], scheduled: int | Sequence[int] | None
) -> list[int | None]:
    """The seats scheduled in each interval: one number for all, one per interval, or
    (when none is given) the rundown's own ``seats`` of each segment, if any.

    Raises ``ValueError`` when a list's length is not the number of intervals."""
    if scheduled is None:
        return [i.seats for i in planned]
    if isinstance(scheduled, int):
        return [scheduled] * len(planned)
    if len(scheduled) != len(planned):
        raise ValueError(
            f"{len(scheduled)} numbers of seats for {len(planned)} intervals: "
            "give one number, or one per interval"
        )
    return list(scheduled)


def plan_interval(
    interval: Interval, scheduled: int | None, handle_seconds: float, targets: Targets
) -> PlannedInterval:
    load = erlang.offered_load(interval.calls, INTERVAL_SECONDS, handle_seconds)
    needed = erlang.seats_needed(
        load,
        handle_seconds,
        target=targets.target,
        threshold_seconds=targets.threshold_seconds,
        max_average_wait=targets.max_average_wait,
    )
    waiting = level = wait = None
    gap = None
    if scheduled is not None:
        waiting = erlang.erlang_c(load, scheduled)
        level = erlang.service_level(load, scheduled, handle_seconds, targets.threshold_seconds)
        mean_wait = erlang.average_wait(load, scheduled, handle_seconds)
        wait = None if math.isinf(mean_wait) else mean_wait
        gap = needed - scheduled
    return PlannedInterval(
        start=interval.start,
        label=interval.label,
        calls=interval.calls,
        load=load,
        seats_needed=needed,
        scheduled=scheduled,
        probability_waiting=waiting,
        service_level=level,
        average_wait=wait,
        gap=gap,
    )


def make_plan(
    segments: Sequence[Segment],
    *,
    handle_seconds: float,
    targets: Targets,
    scheduled: int | Sequence[int] | None = None,
) -> Plan:
    """The plan of a rundown (``ValueError`` for inputs the formulas cannot take)."""
    if not (math.isfinite(handle_seconds) and handle_seconds > 0):
        raise ValueError("the handle time (talk + wrap-up) must be longer than 0 seconds")
    planned = intervals(segments)
    seats = scheduled_per_interval(planned, scheduled)
    return Plan(
        handle_seconds=handle_seconds,
        targets=targets,
        intervals=[
            plan_interval(interval, count, handle_seconds, targets)
            for interval, count in zip(planned, seats, strict=True)
        ],
    )

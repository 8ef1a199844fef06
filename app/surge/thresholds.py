"""Whether a queue switches into or out of surge: a pure decision, with hysteresis.

A queue enters surge when **any** enter threshold is crossed; it leaves only when
**every** measure is back past its leave threshold, and has stayed there for
``leave_after_seconds``. Leave thresholds sit on the calm side of the enter ones
(checked when they are set), so a measure hovering around an enter threshold does
not make the queue flap.

Measures: calls waiting, the queue's expected wait (``app/acd/expected_wait.py``;
unknown when nobody serves the queue) and the service level over the last five
minutes (answered within the queue's threshold / answered; unknown without calls).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

SERVICE_LEVEL_WINDOW = dt.timedelta(minutes=5)


class Reason(enum.StrEnum):
    WAITING = "waiting"
    EXPECTED_WAIT = "expected_wait"
    SERVICE_LEVEL = "service_level"


@dataclass(frozen=True)
class Thresholds:
    enter_waiting: int | None = None
    leave_waiting: int | None = None
    enter_wait_seconds: float | None = None
    leave_wait_seconds: float | None = None
    enter_service_level: float | None = None
    leave_service_level: float | None = None
    leave_after_seconds: int = 0

    @classmethod
    def of(cls, row: Any) -> Thresholds:
        return cls(
            enter_waiting=row.enter_waiting,
            leave_waiting=row.leave_waiting,
            enter_wait_seconds=row.enter_wait_seconds,
            leave_wait_seconds=row.leave_wait_seconds,
            enter_service_level=row.enter_service_level,
            leave_service_level=row.leave_service_level,
            leave_after_seconds=row.leave_after_seconds,
        )


@dataclass(frozen=True)
class Measures:
    waiting: int
    expected_wait_seconds: float | None  # None: nobody serves the queue
    service_level: float | None  # None: no call answered in the window

    def as_dict(self) -> dict[str, Any]:
        return {
            "waiting": self.waiting,
            "expected_wait_seconds": (
                None if self.expected_wait_seconds is None else round(self.expected_wait_seconds, 1)
            ),
            "service_level": (None if self.service_level is None else round(self.service_level, 4)),
        }


def crossed(t: Thresholds, m: Measures) -> Reason | None:
    """The first enter threshold crossed, if any."""
    if t.enter_waiting is not None and m.waiting >= t.enter_waiting:
        return Reason.WAITING
    # Callers waiting with nobody to serve them (no expected wait): as long as can be.
    if (
        t.enter_wait_seconds is not None
        and m.waiting > 0
        and (m.expected_wait_seconds is None or m.expected_wait_seconds >= t.enter_wait_seconds)
    ):
        return Reason.EXPECTED_WAIT
    if (
        t.enter_service_level is not None
        and m.service_level is not None
        and m.service_level < t.enter_service_level
    ):
        return Reason.SERVICE_LEVEL
    return None


def calm(t: Thresholds, m: Measures) -> bool:
    """Every measure past its leave threshold (an unset pair does not hold it back)."""
    if t.leave_waiting is not None and m.waiting > t.leave_waiting:
        return False
    if (
        t.leave_wait_seconds is not None
        and m.waiting > 0
        and (m.expected_wait_seconds is None or m.expected_wait_seconds > t.leave_wait_seconds)
    ):
        return False
    return not (
        t.leave_service_level is not None
        and m.service_level is not None
        and m.service_level < t.leave_service_level
    )


class Move(enum.StrEnum):
    START = "start"  # into surge
    END = "end"  # out of surge
    CALM = "calm"  # in surge, calm begins: remember since when
    UNCALM = "uncalm"  # in surge, calm broken: forget it


@dataclass(frozen=True)
class Decision:
    move: Move
    reason: Reason | None = None


def decide(
    t: Thresholds,
    m: Measures,
    *,
    in_surge: bool,
    calm_since: dt.datetime | None,
    now: dt.datetime,
) -> Decision | None:
    """What to write for this queue now; None: nothing changes (no write)."""
    if not in_surge:
        reason = crossed(t, m)
        return Decision(Move.START, reason) if reason is not None else None
    if not calm(t, m):
        return Decision(Move.UNCALM) if calm_since is not None else None
    if t.leave_after_seconds <= 0:
        return Decision(Move.END)
    if calm_since is None:
        return Decision(Move.CALM)
    if (now - calm_since).total_seconds() >= t.leave_after_seconds:
        return Decision(Move.END)
    return None

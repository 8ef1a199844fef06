"""Request and response bodies of the planning API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.cardguard import CardGuarded
from app.errors import ErrorOut
from app.planning import rundown

# A clock time; the quarter-hour rule is checked with the rest of the rundown.
Clock = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]
Seats = Annotated[int, Field(ge=0, le=rundown.MAX_SEATS)]
# At most 24 hours of 15-minute intervals.
MAX_INTERVALS = 24 * 60 // rundown.INTERVAL_MINUTES
Source = Literal["typed", "measured", "default"]


class Strict(CardGuarded):
    # Strict: JSON true is no number of seats or calls (pydantic's lax mode takes it).
    model_config = ConfigDict(extra="forbid", strict=True)


class SegmentIn(Strict):
    """A part of the show: clock times on quarter hours in the campaign's time zone
    (an earlier time than the segment before means the next day), the calls expected
    per 15 minutes, and optionally a label and the seats scheduled."""

    start: Clock
    end: Clock
    calls_per_15min: float = Field(ge=0, le=rundown.MAX_CALLS_PER_INTERVAL)
    label: Annotated[str, StringConstraints(max_length=rundown.MAX_LABEL)] = ""
    seats: Seats | None = None


class SegmentOut(BaseModel):
    start: str
    end: str
    calls_per_15min: float
    label: str
    seats: int | None


class RundownOut(BaseModel):
    segments: list[SegmentOut]


class RundownRefusedOut(ErrorOut):
    """A rundown file refused whole (``bad_file``): its first problems, and how many
    more. Other refusals of the route have no problems."""

    problems: list[dict[str, str | int | None]] = Field(default_factory=list)
    more_problems: int = 0


class PlanIn(Strict):
    """A rundown and what the plan must meet. Talk and wrap-up seconds left out come
    from the campaign's answered calls (``campaign_id``), else the defaults
    (docs/surge.md, "The staffing planner"). ``scheduled_seats``: one number for every
    interval, one per interval, or none (then the segments' own ``seats``)."""

    segments: list[SegmentIn] = Field(min_length=1, max_length=rundown.MAX_SEGMENTS)
    campaign_id: int | None = None
    talk_seconds: float | None = Field(default=None, gt=0, le=36_000)
    wrapup_seconds: float | None = Field(default=None, ge=0, le=36_000)
    service_level_target: float = Field(default=0.8, ge=0, lt=1)
    threshold_seconds: float = Field(default=20.0, ge=0, le=3_600)
    max_average_wait_seconds: float | None = Field(default=None, gt=0, le=36_000)
    scheduled_seats: Seats | list[Seats] | None = Field(default=None)


class HandleTimesOut(BaseModel):
    talk_seconds: float
    wrapup_seconds: float
    handle_seconds: float
    answered_calls: int = Field(description="the campaign's answered calls measured (0: defaults)")
    source: Literal["measured", "default"]


class PlanHandleOut(BaseModel):
    talk_seconds: float
    wrapup_seconds: float
    handle_seconds: float
    talk_source: Source
    wrapup_source: Source
    answered_calls: int


class TargetsOut(BaseModel):
    service_level_target: float
    threshold_seconds: float
    max_average_wait_seconds: float | None


class IntervalOut(BaseModel):
    start: str
    end: str
    label: str
    calls_per_15min: float
    offered_load_erlangs: float
    seats_needed: int
    seats_scheduled: int | None
    probability_waiting: float | None
    service_level: float | None
    average_wait_seconds: float | None = Field(
        description="with the seats scheduled; null when none are, or when the load "
        "reaches them (the wait grows without bound: see `overloaded`)"
    )
    overloaded: bool
    gap: int | None = Field(description="seats needed minus seats scheduled")


class SummaryOut(BaseModel):
    total_calls: float
    peak_seats_needed: int
    seat_hours_needed: float
    intervals_short: int


class PlanOut(BaseModel):
    handle: PlanHandleOut
    targets: TargetsOut
    intervals: list[IntervalOut]
    summary: SummaryOut

"""Bodies of the shifts API (docs/roster.md, Shifts): shifts, sign-ups, attendance."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from app.acd.schemas import Strict
from app.errors import ErrorOut
from app.roster.schemas import RefusedRowOut

Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Seats = Annotated[int, Field(ge=1, le=100_000)]


class ShiftIn(Strict):
    """A time slot at a site. Times carry their offset (``2026-12-05T20:00:00+01:00``)
    and are stored in UTC; a slot may cross midnight."""

    campaign_id: int
    site_id: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    seats: Seats = 1
    label: Label = ""


class ShiftPatch(Strict):
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    seats: Seats | None = None
    label: Label | None = None


class ShiftOut(BaseModel):
    id: int
    campaign_id: int
    site_id: int
    site_name: str
    timezone: str = Field(description="the site's time zone, in which the local fields read")
    starts_at: dt.datetime = Field(description="UTC")
    ends_at: dt.datetime = Field(description="UTC")
    starts_local: dt.datetime = Field(description="the start in the site's time zone")
    ends_local: dt.datetime = Field(description="the end in the site's time zone")
    local_range: str = Field(description="`20:00-00:00` (an en dash), as the site reads it")
    crosses_midnight: bool
    seats: int
    label: str
    signed_up: int = Field(description="how many volunteers signed up")
    created_at: dt.datetime


class MyShiftOut(ShiftOut):
    """A shift as a volunteer's page lists it: whether they are on it, whether it is full."""

    mine: bool
    full: bool


class SignupOut(BaseModel):
    shift_id: int
    agent_id: int
    source: str
    created_at: dt.datetime
    created: bool = Field(description="false: they were already signed up (nothing changed)")


Status = Literal["expected", "on_time", "late", "no_show"]


class AttendeeOut(BaseModel):
    agent_id: int
    display_name: str
    login: str
    site_id: int | None
    source: str
    status: Status = Field(
        description=(
            "expected: not in yet, the shift has not started (plus the grace); on_time / "
            "late: checked in before / after the start plus the grace; no_show: no login "
            "during the shift once it has started (plus the grace)"
        )
    )
    checked_in_at: dt.datetime | None = Field(description="their first login overlapping the shift")
    checked_out_at: dt.datetime | None = Field(
        description="the logout ending their last session of the shift; null while logged in"
    )
    logged_in: bool
    late_seconds: int | None


class AttendanceOut(BaseModel):
    shift: ShiftOut
    now: dt.datetime
    late_grace_seconds: int
    started: bool
    ended: bool
    volunteers: list[AttendeeOut]
    late: list[AttendeeOut]
    no_show: list[AttendeeOut]


class SignupsImportOut(BaseModel):
    campaign_id: int
    added: int
    already: int = Field(description="rows of volunteers already signed up (left as they were)")


class SignupsRefusedOut(ErrorOut):
    """A sign-up file refused whole: every refused row, and nothing written."""

    rows: list[RefusedRowOut] = Field(default_factory=list)
